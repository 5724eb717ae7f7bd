"""The SQL engine seam of the aggregation stage.

Aggregation SQL is written once (the files under ``mochi_assets/aggregation/sql``) and run by an
engine chosen by configuration: DuckDB in process for the embedded default, Trino on the cluster
later, both behind :class:`SqlEngine`. An engine takes named input tables (Arrow or polars) and
returns polars frames.

Multi-step aggregations are run as a *script*: an ordered list of ``(name, select)`` statements,
each materialized with ``CREATE TABLE name AS select`` so later statements read earlier results.
This is how the Trino engine will run the same SQL (CREATE TABLE AS in a scratch schema) instead of
deep CTE chains that its planner handles poorly.
"""

from __future__ import annotations

import re
from typing import Protocol, runtime_checkable

import duckdb
import polars as pl
import pyarrow as pa

from mochi_resources.errors import MochiError

TableLike = pa.Table | pl.DataFrame

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@runtime_checkable
class SqlEngine(Protocol):
    """What the aggregation stage needs from a SQL engine."""

    name: str

    def query(self, sql: str, tables: dict[str, TableLike]) -> pl.DataFrame:
        """Run one SELECT against the given tables (visible under their dict keys)."""
        ...

    def run_script(
        self, statements: list[tuple[str, str]], tables: dict[str, TableLike]
    ) -> dict[str, pl.DataFrame]:
        """Materialize each ``(name, select)`` in order as table ``name``; return all by name."""
        ...


def _as_arrow(name: str, table: TableLike) -> pa.Table:
    if isinstance(table, pl.DataFrame):
        return table.to_arrow()
    if isinstance(table, pa.Table):
        return table
    raise MochiError(
        f"SQL input table {name!r}: expected a pyarrow Table or polars DataFrame, "
        f"got {type(table).__name__}"
    )


def _check_identifier(kind: str, name: str) -> None:
    if not _IDENTIFIER.match(name):
        raise MochiError(f"SQL {kind} name {name!r} is not a plain identifier ([A-Za-z_][A-Za-z0-9_]*)")


class DuckDBEngine:
    """DuckDB in process: every call gets a fresh in-memory connection with the inputs as views.

    Inputs are registered zero-copy (Arrow), so only the columns a query reads are scanned.
    ``threads`` and ``memory_limit`` (e.g. ``"2GB"``) bound the connection; DuckDB spills larger
    intermediate results to a temporary directory instead of failing.
    """

    name = "duckdb"

    def __init__(self, threads: int | None = None, memory_limit: str | None = None) -> None:
        if threads is not None and threads < 1:
            raise MochiError(f"DuckDBEngine threads: must be at least 1, got {threads}")
        self.threads = threads
        self.memory_limit = memory_limit

    def _connect(self, tables: dict[str, TableLike]) -> duckdb.DuckDBPyConnection:
        con = duckdb.connect(":memory:")
        try:
            if self.threads is not None:
                con.execute(f"SET threads = {int(self.threads)}")
            if self.memory_limit is not None:
                con.execute("SET memory_limit = ?", [self.memory_limit])
            for table_name, table in tables.items():
                _check_identifier("input table", table_name)
                con.register(table_name, _as_arrow(table_name, table))
        except BaseException:
            con.close()
            raise
        return con

    @staticmethod
    def _fetch(con: duckdb.DuckDBPyConnection, sql: str) -> pl.DataFrame:
        result = pl.from_arrow(con.sql(sql).to_arrow_table())
        assert isinstance(result, pl.DataFrame)
        return result

    def query(self, sql: str, tables: dict[str, TableLike]) -> pl.DataFrame:
        """Run one SELECT against ``tables`` (registered as views under their keys)."""
        con = self._connect(tables)
        try:
            return self._fetch(con, sql)
        except duckdb.Error as exc:
            raise MochiError(f"SQL query failed on DuckDB: {exc}") from exc
        finally:
            con.close()

    def run_script(
        self, statements: list[tuple[str, str]], tables: dict[str, TableLike]
    ) -> dict[str, pl.DataFrame]:
        """Run ``CREATE TABLE name AS select`` for each statement in order in one connection.

        Returns every materialized table by name, as polars frames. A statement name must be a
        plain identifier and may not shadow an input table or an earlier statement.
        """
        seen: set[str] = set()
        for stmt_name, _ in statements:
            _check_identifier("statement", stmt_name)
            if stmt_name in tables or stmt_name in seen:
                raise MochiError(
                    f"SQL statement name {stmt_name!r} is used twice (input table or earlier statement)"
                )
            seen.add(stmt_name)
        con = self._connect(tables)
        try:
            for stmt_name, sql in statements:
                try:
                    con.execute(f"CREATE TABLE {stmt_name} AS {sql.strip().rstrip(';')}")
                except duckdb.Error as exc:
                    raise MochiError(f"SQL statement {stmt_name!r} failed on DuckDB: {exc}") from exc
            return {stmt_name: self._fetch(con, f"SELECT * FROM {stmt_name}") for stmt_name, _ in statements}
        finally:
            con.close()
