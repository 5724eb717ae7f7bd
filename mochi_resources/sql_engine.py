"""The SQL engine seam of the aggregation stage.

Aggregation SQL is written once (the files under ``mochi_assets/aggregation/sql``, DuckDB dialect)
and run by an engine chosen by configuration: DuckDB in process for the embedded default, Trino on
the cluster (:mod:`mochi_resources.trino_engine`), both behind :class:`SqlEngine`.

An engine works in a *session* opened over named input tables. An input is an in-memory table
(Arrow or polars), a :class:`LakePartition` (one ticker x scenario partition of a lake table) or a
:class:`ParquetFile` (a local Parquet file). DuckDB takes in-memory tables (zero-copy) and local
Parquet files, which it reads itself, statement by statement, under its memory limit (nothing of
the file is held in this process between statements); Trino cannot see this process's memory or
files, so it reads large inputs where they lie in the lake and takes only small in-memory ones
(sent as VALUES).
``SqlEngine.lake_inputs`` says which kind the engine wants for large inputs.

Multi-step aggregations run as a *script*: an ordered list of ``(name, select)`` statements, each
materialized with ``CREATE TABLE name AS select`` so later statements read earlier results, instead
of deep CTE chains (Trino re-runs a CTE at every reference).
"""

from __future__ import annotations

import math
import os
import re
import tempfile
from pathlib import Path
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


@dataclass(frozen=True)
class ParquetFile:
    """A Parquet file on this machine that DuckDB reads itself, as a view of ``columns``.

    ``path`` may be a pinned version of a lake table (``/proc/self/fd/N`` of a handle this process
    holds open: every statement then reads that version, whatever is committed meanwhile);
    ``label`` names the table in errors (its lake URI), default the path.
    """

    path: str
    columns: tuple[str, ...]
    label: str = ""

    @property
    def name(self) -> str:
        return self.label or self.path


TableLike = pa.Table | pl.DataFrame
TableInput = pa.Table | pl.DataFrame | LakePartition | ParquetFile


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


CGROUP_ROOT = Path("/sys/fs/cgroup")


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None


def cpu_limit(cgroup_root: Path | None = None) -> int:
    """How many CPUs this process may use: the pod's (container's) CPU limit, at least 1.

    The smallest of: the CPUs the process may run on (``os.sched_getaffinity``, which follows a
    cpuset; ``os.cpu_count()`` where that does not exist), and the CFS quota of its cgroup
    rounded up (a Kubernetes ``limits.cpu`` of 1500m is 2): ``cpu.max`` ("quota period", or
    "max" for none) under cgroup v2, ``cpu/cpu.cfs_quota_us`` and ``cpu/cpu.cfs_period_us``
    (quota -1 for none) under cgroup v1. Inside a container ``/sys/fs/cgroup`` is the container's
    own cgroup. A missing or unreadable file means no limit from that source.
    """
    cgroup_root = CGROUP_ROOT if cgroup_root is None else cgroup_root
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    quota = period = None
    v2 = _read(cgroup_root / "cpu.max")
    if v2 is not None:
        parts = v2.split()
        if len(parts) == 2 and parts[0] != "max":
            quota, period = parts
    else:
        for folder in ("cpu", "cpu,cpuacct"):
            q = _read(cgroup_root / folder / "cpu.cfs_quota_us")
            if q is not None:
                quota, period = q, _read(cgroup_root / folder / "cpu.cfs_period_us")
                break
    try:
        if quota is not None and period is not None and int(quota) > 0 and int(period) > 0:
            cpus = min(cpus, math.ceil(int(quota) / int(period)))
    except ValueError:
        pass
    return max(1, cpus)


def memory_limit_bytes(cgroup_root: Path | None = None) -> int | None:
    """The pod's (container's) memory limit in bytes, or None without one.

    ``memory.max`` under cgroup v2 ("max" for none), ``memory/memory.limit_in_bytes`` under
    cgroup v1 (a huge number, beyond 2**60, for none).
    """
    cgroup_root = CGROUP_ROOT if cgroup_root is None else cgroup_root
    for path in (cgroup_root / "memory.max", cgroup_root / "memory" / "memory.limit_in_bytes"):
        text = _read(path)
        if text is None:
            continue
        if text.isdigit() and 0 < int(text) < 2**60:
            return int(text)
        return None
    return None


# DuckDB's working memory by default, at most: beyond it DuckDB spills to its private temporary
# folder. The aggregation of 12.5 M trades (5,000 traders x 10 years, the trades in memory)
# peaked at 2,401-2,806 MB with DuckDB unbounded (the (trader, day) grouping alone holds about
# 1 GB) and at 2,207-2,339 MB with this cap, for 4-7% more CPU; 5 M trades stay below it.
DUCKDB_MEMORY_CAP = 2**30


def default_memory_limit(cgroup_root: Path | None = None) -> str:
    """DuckDB's memory limit as a setting: ``DUCKDB_MEMORY_CAP``, or 80% of the pod's memory limit
    (DuckDB's own default share of a machine) when that is smaller."""
    limit = memory_limit_bytes(cgroup_root)
    cap = DUCKDB_MEMORY_CAP if limit is None else min(DUCKDB_MEMORY_CAP, limit * 8 // 10)
    return f"{cap // 2**20}MiB"


def _parquet_view(con: duckdb.DuckDBPyConnection, name: str, source: ParquetFile) -> None:
    """Register ``source`` as the view ``name`` of its ``columns`` (DuckDB scans the file per
    statement, reading only the columns and row groups the statement needs)."""
    for column in source.columns:
        check_identifier("column", column)
    try:
        relation = con.read_parquet(source.path)
    except duckdb.Error as exc:
        raise MochiError(f"SQL input table {name!r}: {source.name} is not a readable Parquet file ({exc})") from None
    missing = [c for c in source.columns if c not in relation.columns]
    if missing:
        raise MochiError(f"SQL input table {name!r}: {source.name} has no column(s) {', '.join(missing)}")
    con.register(name, relation.select(", ".join(source.columns)))  # a temporary view


@contextmanager
def _memory_connection() -> Iterator[duckdb.DuckDBPyConnection]:
    con = duckdb.connect(":memory:")
    try:
        yield con
    finally:
        con.close()


class DuckDBEngine(OneShotEngine):
    """DuckDB in process: every session is a fresh in-memory connection with the inputs as views.

    Inputs are registered zero-copy (Arrow), so only the columns a query reads are scanned; a
    ``ParquetFile`` is a view over the file, which DuckDB reads itself at each statement.
    ``threads`` and ``memory_limit`` (e.g. ``"2GB"``) bound the connection; DuckDB spills larger
    intermediate results to a temporary directory instead of failing. By default they follow the
    pod: ``threads`` is ``cpu_limit()`` (the cgroup CPU quota rounded up, or the CPUs the process
    may run on), ``memory_limit`` 1 GiB or 80% of the cgroup memory limit when smaller
    (``default_memory_limit()``). Results do not depend on the thread count or on spilling (exact
    DECIMAL sums, see the aggregation SQL).
    """

    name = "duckdb"
    lake_inputs = False

    def __init__(self, threads: int | None = None, memory_limit: str | None = None,
                 connect: Callable[[], AbstractContextManager] | None = None) -> None:
        if threads is not None and threads < 1:
            raise MochiError(f"DuckDBEngine threads: must be at least 1, got {threads}")
        self.threads = cpu_limit() if threads is None else threads
        self.memory_limit = default_memory_limit() if memory_limit is None else memory_limit
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
                con.execute(f"SET threads = {int(self.threads)}")
                con.execute("SET memory_limit = ?", [self.memory_limit])
                for table_name, table in tables.items():
                    if isinstance(table, ParquetFile):
                        _parquet_view(con, table_name, table)
                    else:
                        con.register(table_name, as_arrow(table_name, table))
                yield _DuckDBSession(con, set(tables))
        finally:
            spill.cleanup()
