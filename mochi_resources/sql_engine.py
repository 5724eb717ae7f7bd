"""The SQL engine seam of the aggregation stage.

Aggregation SQL is written once (the files under ``mochi_assets/aggregation/sql``, DuckDB dialect)
and run by an engine chosen by configuration: DuckDB in process for the embedded default, Trino on
the cluster (:mod:`mochi_resources.trino_engine`), both behind :class:`SqlEngine`.

An engine works in a *session* opened over named input tables. An input is either an in-memory
table (Arrow or polars) or a :class:`LakePartition`, one ticker x scenario partition of a lake
table. DuckDB takes in-memory tables (zero-copy); Trino cannot see this process's memory, so it
reads large inputs where they lie in the lake and takes only small in-memory ones (sent as VALUES).
``SqlEngine.lake_inputs`` says which kind the engine wants for large inputs.

Multi-step aggregations run as a *script*: an ordered list of ``(name, select)`` statements, each
materialized with ``CREATE TABLE name AS select`` so later statements read earlier results, instead
of deep CTE chains (Trino re-runs a CTE at every reference).
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import ContextManager, Protocol, runtime_checkable

import duckdb
import polars as pl
import pyarrow as pa

from mochi_resources.errors import MochiError

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class LakePartition:
    """One Hive partition of a lake table, ``{prefix}{bucket}/{table}/ticker=T/scenario=S/``.

    ``columns`` are (name, Trino type) pairs of the table contract, partition columns excluded;
    ``select`` are the columns the query reads (default: all of ``columns``).
    """

    bucket: str
    table: str
    ticker: str
    scenario: str
    columns: tuple[tuple[str, str], ...]
    select: tuple[str, ...] = ()

    @property
    def selected(self) -> tuple[str, ...]:
        return self.select or tuple(name for name, _ in self.columns)


TableLike = pa.Table | pl.DataFrame
TableInput = pa.Table | pl.DataFrame | LakePartition


@runtime_checkable
class SqlSession(Protocol):
    """Statements run against one set of input tables (and the results of earlier scripts)."""

    def query(self, sql: str) -> pl.DataFrame:
        """Run one SELECT; the inputs are visible under their names."""
        ...

    def run_script(
        self, statements: list[tuple[str, str]], fetch: Iterable[str] | None = None
    ) -> dict[str, pl.DataFrame]:
        """Materialize each ``(name, select)`` in order as table ``name``; return ``fetch`` (default all)."""
        ...


@runtime_checkable
class SqlEngine(Protocol):
    """What the aggregation stage needs from a SQL engine."""

    name: str
    lake_inputs: bool  # True: pass large inputs as LakePartition (the engine reads the lake itself)

    def session(self, tables: dict[str, TableInput]) -> ContextManager[SqlSession]:
        """A session over ``tables``; everything it created is dropped when it closes."""
        ...

    def query(self, sql: str, tables: dict[str, TableInput]) -> pl.DataFrame:
        """Run one SELECT against the given tables (visible under their dict keys)."""
        ...

    def run_script(
        self,
        statements: list[tuple[str, str]],
        tables: dict[str, TableInput],
        fetch: Iterable[str] | None = None,
    ) -> dict[str, pl.DataFrame]:
        """Materialize each ``(name, select)`` in order as table ``name``; return ``fetch`` (default all)."""
        ...


def as_arrow(name: str, table: TableInput) -> pa.Table:
    """An in-memory input as Arrow; a clear error for anything else."""
    if isinstance(table, pl.DataFrame):
        return table.to_arrow()
    if isinstance(table, pa.Table):
        return table
    raise MochiError(
        f"SQL input table {name!r}: expected a pyarrow Table or polars DataFrame, "
        f"got {type(table).__name__}"
    )


def check_identifier(kind: str, name: str) -> None:
    """Refuse names that are not plain SQL identifiers (they are pasted into SQL text)."""
    if not isinstance(name, str) or not _IDENTIFIER.match(name):
        raise MochiError(f"SQL {kind} name {name!r} is not a plain identifier ([A-Za-z_][A-Za-z0-9_]*)")


def check_script(
    statements: list[tuple[str, str]], taken: Iterable[str], fetch: Iterable[str] | None
) -> list[str]:
    """Validate statement names (plain, unique, not an input) and return the names to fetch."""
    seen: set[str] = set()
    taken = set(taken)
    for stmt_name, _ in statements:
        check_identifier("statement", stmt_name)
        if stmt_name in taken or stmt_name in seen:
            raise MochiError(
                f"SQL statement name {stmt_name!r} is used twice (input table or earlier statement)"
            )
        seen.add(stmt_name)
    names = [n for n, _ in statements] if fetch is None else list(fetch)
    unknown = [n for n in names if n not in seen]
    if unknown:
        raise MochiError(f"SQL fetch: {', '.join(map(repr, unknown))} is not a statement of the script")
    return names


class _DuckDBSession:
    def __init__(self, con: duckdb.DuckDBPyConnection, inputs: set[str]) -> None:
        self._con = con
        self._taken = set(inputs)

    def _fetch(self, sql: str) -> pl.DataFrame:
        result = pl.from_arrow(self._con.sql(sql).to_arrow_table())
        assert isinstance(result, pl.DataFrame)
        return result

    def query(self, sql: str) -> pl.DataFrame:
        try:
            return self._fetch(sql)
        except duckdb.Error as exc:
            raise MochiError(f"SQL query failed on DuckDB: {exc}") from exc

    def run_script(
        self, statements: list[tuple[str, str]], fetch: Iterable[str] | None = None
    ) -> dict[str, pl.DataFrame]:
        names = check_script(statements, self._taken, fetch)
        for stmt_name, sql in statements:
            try:
                self._con.execute(f"CREATE TABLE {stmt_name} AS {sql.strip().rstrip(';')}")
            except duckdb.Error as exc:
                raise MochiError(f"SQL statement {stmt_name!r} failed on DuckDB: {exc}") from exc
            self._taken.add(stmt_name)
        return {stmt_name: self._fetch(f"SELECT * FROM {stmt_name}") for stmt_name in names}


class OneShotEngine:
    """`query` and `run_script` as one session each, for engines that define `session`."""

    def query(self, sql: str, tables: dict[str, TableInput]) -> pl.DataFrame:
        """Run one SELECT against ``tables`` in a session of its own."""
        with self.session(tables) as session:
            return session.query(sql)

    def run_script(
        self,
        statements: list[tuple[str, str]],
        tables: dict[str, TableInput],
        fetch: Iterable[str] | None = None,
    ) -> dict[str, pl.DataFrame]:
        """``CREATE TABLE name AS select`` for each statement in order, in one session.

        Returns the materialized tables named in ``fetch`` (default: every one), as polars frames.
        A statement name must be a plain identifier and may not shadow an input table or an
        earlier statement.
        """
        check_script(statements, tables, fetch)
        with self.session(tables) as session:
            return session.run_script(statements, fetch)


@contextmanager
def _memory_connection() -> Iterator[duckdb.DuckDBPyConnection]:
    con = duckdb.connect(":memory:")
    try:
        yield con
    finally:
        con.close()


class DuckDBEngine(OneShotEngine):
    """DuckDB in process: every session is a fresh in-memory connection with the inputs as views.

    Inputs are registered zero-copy (Arrow), so only the columns a query reads are scanned.
    ``threads`` and ``memory_limit`` (e.g. ``"2GB"``) bound the connection; DuckDB spills larger
    intermediate results to a temporary directory instead of failing.
    """

    name = "duckdb"
    lake_inputs = False

    def __init__(self, threads: int | None = None, memory_limit: str | None = None,
                 connect: Callable[[], AbstractContextManager] | None = None) -> None:
        if threads is not None and threads < 1:
            raise MochiError(f"DuckDBEngine threads: must be at least 1, got {threads}")
        self.threads = threads
        self.memory_limit = memory_limit
        # where connections come from: dagster-duckdb's DuckDBResource.get_connection in a run
        # (sql_resource.py), a private in-memory database otherwise
        self.connect = connect or _memory_connection

    @contextmanager
    def session(self, tables: dict[str, TableInput]) -> Iterator[_DuckDBSession]:
        """A connection with ``tables`` registered as views under their keys (closed at the end)."""
        for table_name, table in tables.items():
            check_identifier("input table", table_name)
            if isinstance(table, LakePartition):
                raise MochiError(
                    f"SQL input table {table_name!r}: DuckDB reads in-memory tables; load the lake "
                    f"partition {table.table}/ticker={table.ticker}/scenario={table.scenario} first"
                )
        # spill to a private scratch folder, never to `.tmp` in whatever directory the run started in
        spill = tempfile.TemporaryDirectory(prefix="mochi-duckdb-")
        try:
            with self.connect() as con:
                con.execute("SET temp_directory = ?", [spill.name])
                if self.threads is not None:
                    con.execute(f"SET threads = {int(self.threads)}")
                if self.memory_limit is not None:
                    con.execute("SET memory_limit = ?", [self.memory_limit])
                for table_name, table in tables.items():
                    con.register(table_name, as_arrow(table_name, table))
                yield _DuckDBSession(con, set(tables))
        finally:
            spill.cleanup()
