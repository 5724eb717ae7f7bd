"""Trino behind the SqlEngine seam: the aggregation SQL run on a cluster, over the lake on S3.

Selected by ``MOCHI_TRINO_URL`` (see :func:`parse_trino_url`), e.g.
``http://mochi@trino.mochi.svc:8080/hive/mochi``: user, host, port, catalog (a Hive connector
over the lake's S3 API) and schema. ``https://user:password@...`` adds basic authentication.
Options as query parameters: ``scratch_schema`` (default ``<schema>_scratch``), ``partitions``
(``register``, the default, or ``sync``) and ``location`` (the URI scheme Trino uses for the
lake's buckets, default ``s3a://``).

What a session does, in order (every statement is logged to the ``mochi.trino`` logger):

1. DDL: ``CREATE SCHEMA IF NOT EXISTS`` the scratch schema (located under the aggregates bucket,
   ``_trino_scratch/``, hidden from lake readers), and for each lake input a Hive external table
   over the lake's Hive layout, ``CREATE TABLE IF NOT EXISTS <catalog>.<schema>.<table> (...)
   WITH (external_location = 's3a://{prefix}{bucket}/{table}/', format = 'PARQUET',
   partitioned_by = ARRAY['ticker', 'scenario'])``. Lake table names are unique across buckets,
   so the external table is named after the lake table.
2. Partition registration for the input's ticker and scenario: with ``partitions=register``,
   ``CALL <catalog>.system.register_partition(...)`` unless the partition is already listed in
   ``"<table>$partitions"`` (needs ``hive.allow-register-partition-procedure=true``); with
   ``partitions=sync``, ``CALL <catalog>.system.sync_partition_metadata(..., 'ADD')``.
3. Inputs become scratch tables with per-session unique names (``m<12 hex>_<name>``): a lake input
   is ``CREATE TABLE AS SELECT`` its columns from the external table filtered by ticker and
   scenario; a small in-memory input (traders, the session calendar) is ``CREATE TABLE`` plus
   ``INSERT ... VALUES`` in batches.
4. Queries and scripts: the DuckDB-dialect SQL files are transpiled to Trino by sqlglot, with the
   input and statement names rewritten to the scratch tables; each script statement is a
   ``CREATE TABLE AS`` (no deep CTE chains: Trino re-runs a CTE at every reference).
5. Fetch the asked-for results (``SELECT *``), then ``DROP TABLE IF EXISTS`` every scratch table,
   also when something failed.

Types: Parquet timestamps are declared ``TIMESTAMP(3)`` (the Hive connector's default precision;
the SQL only orders trades by ``entry_ts``, and a trader's entries are minutes apart).

NOT RUN AGAINST A LIVE TRINO. No Trino server could run where this was written (offline, no
Java). What the tests do check: every statement this engine sends (DDL, CALL arguments, CTAS,
INSERT, SELECT, DROP) parses as Trino with sqlglot; the whole aggregation, run through this
engine against a stand-in connection that transpiles each statement back to DuckDB and executes
it over a Hive-layout Parquet folder, gives the same tables as the DuckDB engine; and the order
of the statements and the error messages (an unreachable server is a real connection attempt on
loopback). What is therefore unverified: Trino's own acceptance of the DDL table properties and
of the CALL procedures on a real Hive metastore and S3 (permissions, ``s3a://`` vs ``s3://``
locations, the register-partition switch), Trino's planner and numeric results on the
transpiled SQL (integer/decimal typing is made explicit in the SQL files, but not executed by
Trino), the DBAPI type names of real results, authentication, and the speed of fetching large
results through the Python client.
"""

from __future__ import annotations

import logging
import math
import re
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

import polars as pl

if TYPE_CHECKING:
    from sqlglot import exp

from mochi_resources.errors import MochiError
from mochi_resources.lake import partition_path
from mochi_resources.sql_engine import (
    LakePartition,
    OneShotEngine,
    TableInput,
    as_arrow,
    check_identifier,
    check_script,
)

log = logging.getLogger("mochi.trino")

ENV_VAR = "MOCHI_TRINO_URL"
MAX_VALUES_ROWS = 100_000  # larger inputs belong in the lake (LakePartition), not in SQL text
VALUES_BATCH = 1_000
PARTITION_COLUMNS = ("ticker", "scenario")

_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
_ERRNO = re.compile(r"\[Errno -?\d+\] [^'\")]+")


@dataclass(frozen=True)
class TrinoTarget:
    """Where Trino is and how Mochi uses it, parsed from ``MOCHI_TRINO_URL``."""

    scheme: str
    host: str
    port: int
    user: str
    password: str | None
    catalog: str
    schema: str
    scratch_schema: str
    partitions: str = "register"
    location: str = "s3a://"

    @property
    def safe_url(self) -> str:
        """The URL for messages: never the password."""
        return f"{self.scheme}://{self.user}@{self.host}:{self.port}/{self.catalog}/{self.schema}"


def parse_trino_url(url: str) -> TrinoTarget:
    """``http(s)://user[:password]@host[:port]/catalog/schema[?options]`` -> TrinoTarget."""
    shown = re.sub(r"//([^:/@]*):[^@/]*@", r"//\1:***@", url or "")
    try:
        parts = urlsplit(url or "")
        port = parts.port
    except ValueError as exc:
        raise MochiError(f"{ENV_VAR}: {shown!r} is not a URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise MochiError(
            f"{ENV_VAR}: {shown!r} is not an http(s):// URL (e.g. http://mochi@trino:8080/hive/mochi)"
        )
    path = [unquote(p) for p in parts.path.split("/") if p]
    if len(path) != 2:
        raise MochiError(f"{ENV_VAR}: {shown!r} must end in /<catalog>/<schema> (e.g. /hive/mochi)")
    catalog, schema = (p.lower() for p in path)
    options = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    unknown = sorted(set(options) - {"scratch_schema", "partitions", "location"})
    if unknown:
        raise MochiError(f"{ENV_VAR}: unknown option(s) {', '.join(unknown)} (scratch_schema, partitions, location)")
    scratch = options.get("scratch_schema", f"{schema}_scratch").lower()
    for what, name in (("catalog", catalog), ("schema", schema), ("scratch_schema", scratch)):
        if not _NAME.match(name):
            raise MochiError(f"{ENV_VAR}: {what} {name!r} is not a plain name (lower-case letters, digits, '_')")
    if scratch == schema:
        raise MochiError(f"{ENV_VAR}: scratch_schema must differ from the schema {schema!r}")
    partitions = options.get("partitions", "register")
    if partitions not in ("register", "sync"):
        raise MochiError(f"{ENV_VAR}: partitions={partitions!r}: use register or sync")
    location = options.get("location", "s3a://")
    if not re.match(r"^[a-z][a-z0-9]*://$", location):
        raise MochiError(f"{ENV_VAR}: location={location!r}: a URI scheme like s3a:// or s3://")
    password = unquote(parts.password) if parts.password is not None else None
    if password is not None and parts.scheme != "https":
        raise MochiError(f"{ENV_VAR}: {shown!r}: a password needs https:// (Trino refuses basic auth over http)")
    return TrinoTarget(
        scheme=parts.scheme,
        host=parts.hostname,
        port=port or (443 if parts.scheme == "https" else 8080),
        user=unquote(parts.username) if parts.username else "mochi",
        password=password,
        catalog=catalog,
        schema=schema,
        scratch_schema=scratch,
        partitions=partitions,
        location=location,
    )


# ---------------------------------------------------------------- SQL text


def quote_literal(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def sql_literal(value: Any, trino_type: str) -> str:
    """A Python value as a Trino literal of ``trino_type`` (exact for doubles: shortest repr)."""
    if value is None:
        return "NULL"
    if trino_type == "DOUBLE":
        v = float(value)
        if math.isnan(v):
            return "nan()"
        if math.isinf(v):
            return "infinity()" if v > 0 else "-infinity()"
        text = repr(v).upper()
        return text if "E" in text else f"{text}E0"  # an exponent makes it DOUBLE, not DECIMAL
    if trino_type == "BIGINT":
        return str(int(value))
    if trino_type == "BOOLEAN":
        return "TRUE" if value else "FALSE"
    if trino_type == "DATE":
        return f"DATE '{value.isoformat()}'"
    if trino_type.startswith("TIMESTAMP"):
        return f"TIMESTAMP '{value.strftime('%Y-%m-%d %H:%M:%S.%f')}'"
    return quote_literal(value)


def _trino_type(dtype: pl.DataType, name: str) -> str:
    if dtype.is_integer():
        return "BIGINT"
    if dtype.is_float():
        return "DOUBLE"
    if dtype == pl.Boolean:
        return "BOOLEAN"
    if dtype == pl.Date:
        return "DATE"
    if isinstance(dtype, pl.Datetime):
        return "TIMESTAMP(3)"
    if dtype in (pl.Utf8, pl.Categorical):
        return "VARCHAR"
    raise MochiError(f"SQL input table column {name!r}: type {dtype} cannot be sent to Trino")


def _exact_percentile(value: exp.Expression, fraction: exp.Expression, source: exp.Expression) -> exp.Expression:
    """Trino form of DuckDB's exact ``PERCENTILE_CONT`` / ``QUANTILE_CONT`` of ``value`` at ``fraction``.

    Trino has only approximate percentiles (sqlglot would write APPROX_PERCENTILE), so the
    group's non-NULL values are collected and sorted, ``S = ARRAY_SORT(ARRAY_AGG(x) FILTER (WHERE
    x IS NOT NULL))``, and the value at 0-based position ``h = q * (n - 1)`` is interpolated
    between its neighbours ``lo = S[FLOOR(h) + 1]`` and ``hi = S[CEIL(h) + 1]`` as
    ``lo + (hi - lo) * (h - FLOOR(h))``: the definition DuckDB and NumPy (``linear``) use. A group
    without values gives NULL (S is NULL). Memory: one sorted array per group, in Trino's workers.
    """
    import sqlglot  # imported on use: only the Trino engine needs it
    from sqlglot import exp

    if not isinstance(fraction, exp.Literal) or fraction.is_string or not 0 <= float(fraction.name) <= 1:
        raise MochiError(
            f"SQL for Trino: a percentile needs literal fractions in [0, 1], got {source.sql('duckdb')}"
        )
    x = value.sql("trino")
    values = f"ARRAY_SORT(ARRAY_AGG({x}) FILTER (WHERE {x} IS NOT NULL))"
    h = f"(CAST({fraction.name} AS DOUBLE) * (CARDINALITY({values}) - 1))"
    lo = f"ELEMENT_AT({values}, CAST(FLOOR({h}) AS BIGINT) + 1)"
    hi = f"ELEMENT_AT({values}, CAST(CEIL({h}) AS BIGINT) + 1)"
    return sqlglot.parse_one(f"({lo} + ({hi} - {lo}) * ({h} - FLOOR({h})))", read="trino")


def _exact_percentiles(tree: exp.Expression) -> None:
    """Rewrite, in place, every exact continuous percentile for Trino (see ``_exact_percentile``).

    Forms: ``PERCENTILE_CONT(q) WITHIN GROUP (ORDER BY x)``, ``QUANTILE_CONT(x, q)`` and
    ``QUANTILE_CONT(x, [q1, q2, ...])`` (a list of values, in DuckDB one pass over the group;
    in Trino an ARRAY). Other percentile forms are refused rather than made approximate.
    """
    from sqlglot import exp  # imported on use: only the Trino engine needs sqlglot

    for node in list(tree.find_all(exp.WithinGroup)):
        if not isinstance(node.this, exp.PercentileCont):
            continue
        order = node.expression.expressions if isinstance(node.expression, exp.Order) else []
        if len(order) != 1 or order[0].args.get("desc"):
            raise MochiError(
                f"SQL for Trino: PERCENTILE_CONT needs WITHIN GROUP (ORDER BY one ascending expression), "
                f"got {node.sql('duckdb')}"
            )
        node.replace(_exact_percentile(order[0].this, node.this.this, node))
    for node in list(tree.find_all(exp.PercentileCont)):
        fractions = node.expression
        if node.this is None or fractions is None:
            continue
        if isinstance(fractions, exp.Array):
            node.replace(exp.Array(expressions=[_exact_percentile(node.this, q, node) for q in fractions.expressions]))
        else:
            node.replace(_exact_percentile(node.this, fractions, node))
    left = next(tree.find_all(exp.PercentileCont, exp.PercentileDisc, exp.Quantile, exp.Median), None)
    if left is not None:
        raise MochiError(
            f"SQL for Trino: {left.sql('duckdb')} would become an approximate percentile on Trino; "
            f"write PERCENTILE_CONT(q) WITHIN GROUP (ORDER BY x) or QUANTILE_CONT(x, q)"
        )


def to_trino(sql: str, names: dict[str, str]) -> str:
    """DuckDB-dialect SQL as Trino SQL, with table ``names`` (plain name -> qualified) rewritten.

    Only unqualified references that are not CTE names are rewritten; a rewritten table keeps
    its old name as alias so that ``name.column`` references still resolve. Exact percentiles
    stay exact (see ``_exact_percentiles``).
    """
    import sqlglot  # imported on use: only the Trino engine needs it
    from sqlglot import exp

    try:
        tree = sqlglot.parse_one(sql.strip().rstrip(";"), read="duckdb")
    except sqlglot.errors.ParseError as exc:
        raise MochiError(f"SQL could not be parsed for Trino: {exc}") from None
    _exact_percentiles(tree)
    ctes = {cte.alias for cte in tree.find_all(exp.CTE)}
    for table in list(tree.find_all(exp.Table)):
        if table.args.get("db") or table.name not in names or table.name in ctes:
            continue
        catalog, schema, name = names[table.name].split(".")
        alias = table.alias or table.name
        table.set("this", exp.to_identifier(name))
        table.set("db", exp.to_identifier(schema))
        table.set("catalog", exp.to_identifier(catalog))
        table.set("alias", exp.TableAlias(this=exp.to_identifier(alias)))
    return tree.sql(dialect="trino")


# ---------------------------------------------------------------- results


def _polars_type(type_code: Any) -> pl.DataType:
    code = str(type_code or "").lower()
    if code in ("bigint", "integer", "smallint", "tinyint"):
        return pl.Int64
    if code in ("double", "real") or code.startswith("decimal"):
        return pl.Float64
    if code == "boolean":
        return pl.Boolean
    if code == "date":
        return pl.Date
    if code.startswith("timestamp"):
        return pl.Datetime("us")
    if code.startswith(("varchar", "char")):
        return pl.Utf8
    raise MochiError(f"Trino result type {code!r} is not one Mochi reads")


def _frame(description: list, rows: list) -> pl.DataFrame:
    names = [d[0] for d in description]
    types = [_polars_type(d[1]) for d in description]
    columns = {}
    for i, (name, dtype) in enumerate(zip(names, types)):
        values = [row[i] for row in rows]
        if dtype == pl.Float64:
            values = [float(v) if isinstance(v, Decimal) else v for v in values]
        columns[name] = pl.Series(name, values, dtype=dtype)
    return pl.DataFrame(columns, schema=dict(zip(names, types)))


# ---------------------------------------------------------------- engine


def _reason(exc: BaseException) -> str:
    text = str(exc)
    found = _ERRNO.search(text)
    if found:
        return found.group(0).strip()
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


def _is_connection_error(exc: BaseException) -> bool:
    import requests
    import trino.exceptions as te

    return isinstance(
        exc, (requests.exceptions.ConnectionError, requests.exceptions.Timeout, te.TrinoConnectionError,
              te.HttpError, ConnectionError, TimeoutError)
    )


def _values_frame(name: str, table: TableInput) -> pl.DataFrame:
    """An in-memory input small enough to send as VALUES, with plain column names and known types."""
    frame = pl.from_arrow(as_arrow(name, table))
    assert isinstance(frame, pl.DataFrame)
    if frame.height > MAX_VALUES_ROWS:
        raise MochiError(
            f"SQL input table {name!r}: {frame.height:,} rows is too many to send to Trino as VALUES "
            f"(at most {MAX_VALUES_ROWS:,}); pass it as a lake partition"
        )
    for column, dtype in frame.schema.items():
        check_identifier("input column", column)
        _trino_type(dtype, column)
    return frame


class _TrinoSession:
    """One DBAPI connection, the scratch tables of its inputs and of the scripts run in it."""

    def __init__(self, engine: TrinoEngine, conn: Any, run_id: str) -> None:
        self._engine = engine
        self._conn = conn
        self._run_id = run_id
        self.names: dict[str, str] = {}  # plain name -> catalog.scratch.m<id>_name
        self.created: list[str] = []

    # -- plumbing

    def execute(self, sql: str, what: str) -> tuple[list, list]:
        """Run one statement to completion (the client runs DDL lazily until results are read)."""
        log.debug("trino: %s", sql)
        target = self._engine.target
        cur = self._conn.cursor()
        try:
            cur.execute(sql)
            rows = cur.fetchall()
            return list(cur.description or []), rows
        except MochiError:
            raise
        except Exception as exc:
            if _is_connection_error(exc):
                raise MochiError(f"Trino at {target.safe_url} is unreachable: {_reason(exc)}") from None
            message = getattr(exc, "message", None) or str(exc)
            raise MochiError(f"{what} failed on Trino ({target.safe_url}): {message}") from None
        finally:
            try:
                cur.close()
            except Exception:  # closing a cursor of a dead connection must not hide the real error
                pass

    def scratch_name(self, name: str) -> str:
        check_identifier("SQL table", name)
        t = self._engine.target
        return f"{t.catalog}.{t.scratch_schema}.m{self._run_id}_{name.lower()}"

    def _claim(self, name: str) -> str:
        qualified = self.scratch_name(name)
        self.names[name] = qualified
        self.created.append(qualified)
        return qualified

    # -- inputs

    def external_table(self, part: LakePartition) -> str:
        """DDL of the lake table, then its partition; returns the external table's name."""
        t = self._engine.target
        check_identifier("lake table", part.table)
        for column, _ in part.columns:
            check_identifier("lake column", column)
        partition_path(part.ticker, part.scenario)  # refuses keys that are not sanitized
        table = f"{t.catalog}.{t.schema}.{part.table}"
        bucket = self._engine.bucket(part.bucket)
        columns = ",\n    ".join(
            [f"{name} {typ}" for name, typ in part.columns] + [f"{c} VARCHAR" for c in PARTITION_COLUMNS]
        )
        self.execute(
            f"CREATE TABLE IF NOT EXISTS {table} (\n    {columns}\n)\nWITH (\n"
            f"    external_location = {quote_literal(f'{t.location}{bucket}/{part.table}/')},\n"
            f"    format = 'PARQUET',\n"
            f"    partitioned_by = ARRAY['ticker', 'scenario']\n)",
            f"external table {part.table}",
        )
        values = f"ARRAY[{quote_literal(part.ticker)}, {quote_literal(part.scenario)}]"
        if t.partitions == "sync":
            self.execute(
                f"CALL {t.catalog}.system.sync_partition_metadata("
                f"{quote_literal(t.schema)}, {quote_literal(part.table)}, 'ADD')",
                f"partition sync of {part.table}",
            )
        else:
            _, rows = self.execute(
                f'SELECT COUNT(*) AS n FROM {t.catalog}.{t.schema}."{part.table}$partitions" '
                f"WHERE ticker = {quote_literal(part.ticker)} AND scenario = {quote_literal(part.scenario)}",
                f"partition lookup of {part.table}",
            )
            if not rows or not rows[0][0]:
                self.execute(
                    f"CALL {t.catalog}.system.register_partition({quote_literal(t.schema)}, "
                    f"{quote_literal(part.table)}, ARRAY['ticker', 'scenario'], {values})",
                    f"partition registration of {part.table}",
                )
        return table

    def lake_input(self, name: str, part: LakePartition, external: str) -> None:
        scratch = self._claim(name)
        known = {c for c, _ in part.columns}
        missing = [c for c in part.selected if c not in known]
        if missing:
            raise MochiError(f"SQL input table {name!r}: column(s) {', '.join(missing)} not in the lake table")
        self.execute(
            f"CREATE TABLE {scratch} AS\nSELECT {', '.join(part.selected)}\nFROM {external}\n"
            f"WHERE ticker = {quote_literal(part.ticker)} AND scenario = {quote_literal(part.scenario)}",
            f"input table {name!r}",
        )

    def memory_input(self, name: str, table: TableInput) -> None:
        frame = _values_frame(name, table)
        types = [_trino_type(dtype, column) for column, dtype in frame.schema.items()]
        scratch = self._claim(name)
        columns = ", ".join(f"{c} {t}" for c, t in zip(frame.columns, types))
        self.execute(f"CREATE TABLE {scratch} ({columns})", f"input table {name!r}")
        for start in range(0, frame.height, VALUES_BATCH):
            rows = frame.slice(start, VALUES_BATCH).rows()
            values = ",\n".join(
                "(" + ", ".join(sql_literal(v, t) for v, t in zip(row, types)) + ")" for row in rows
            )
            self.execute(f"INSERT INTO {scratch} VALUES\n{values}", f"input table {name!r}")

    # -- SqlSession

    def query(self, sql: str) -> pl.DataFrame:
        description, rows = self.execute(to_trino(sql, self.names), "SQL query")
        return _frame(description, rows)

    def run_script(
        self, statements: list[tuple[str, str]], fetch: Iterable[str] | None = None
    ) -> dict[str, pl.DataFrame]:
        names = check_script(statements, self.names, fetch)
        for stmt_name, sql in statements:
            # the statement's own name is not visible to itself: translate before claiming it
            select = to_trino(sql, self.names)
            scratch = self._claim(stmt_name)
            self.execute(f"CREATE TABLE {scratch} AS\n{select}", f"SQL statement {stmt_name!r}")
        out = {}
        for stmt_name in names:
            description, rows = self.execute(f"SELECT * FROM {self.names[stmt_name]}", f"fetch of {stmt_name!r}")
            out[stmt_name] = _frame(description, rows)
        return out

    def drop_all(self, quiet: bool) -> None:
        for qualified in reversed(self.created):
            try:
                self.execute(f"DROP TABLE IF EXISTS {qualified}", f"drop of {qualified}")
            except MochiError:
                if not quiet:
                    raise
                log.warning("trino: could not drop scratch table %s", qualified)


class TrinoEngine(OneShotEngine):
    """Aggregation SQL on Trino over the lake (see the module docstring for what a session sends).

    ``bucket_prefix`` is the lake's (``MOCHI_BUCKET_PREFIX``); ``connect`` makes a DBAPI
    connection (default: the ``trino`` client for ``target``), replaceable for tests.
    """

    name = "trino"
    lake_inputs = True

    def __init__(
        self,
        target: TrinoTarget | str,
        *,
        bucket_prefix: str = "mochi-",
        connect: Callable[[], Any] | None = None,
        request_timeout: float = 30.0,
    ) -> None:
        self.target = parse_trino_url(target) if isinstance(target, str) else target
        self.bucket_prefix = bucket_prefix
        self.request_timeout = request_timeout
        self._connect = connect or self._trino_connect

    def bucket(self, stage: str) -> str:
        return f"{self.bucket_prefix}{stage}"

    def _trino_connect(self) -> Any:
        import trino.auth
        import trino.dbapi

        t = self.target
        return trino.dbapi.connect(
            host=t.host,
            port=t.port,
            user=t.user,
            catalog=t.catalog,
            schema=t.schema,
            http_scheme=t.scheme,
            auth=trino.auth.BasicAuthentication(t.user, t.password) if t.password else None,
            source="mochi",
            request_timeout=self.request_timeout,
            max_attempts=1,
        )

    @contextmanager
    def _connection(self) -> Iterator[Any]:
        try:
            conn = self._connect()
        except Exception as exc:
            raise MochiError(f"Trino at {self.target.safe_url} is unreachable: {_reason(exc)}") from None
        try:
            yield conn
        finally:
            try:
                conn.close()
            except Exception:  # a dead connection may fail to close; nothing is left to release
                pass

    def check(self) -> None:
        """Fail fast with one clear error when Trino cannot be reached or refuses the user."""
        with self._connection() as conn:
            _TrinoSession(self, conn, "check").execute("SELECT 1", "connection check")

    @contextmanager
    def session(self, tables: dict[str, TableInput]) -> Iterator[_TrinoSession]:
        """Scratch copies of ``tables`` (lake partitions read in Trino, small frames as VALUES)."""
        for table_name, table in tables.items():
            check_identifier("input table", table_name)
            if not isinstance(table, LakePartition):
                _values_frame(table_name, table)  # refuse what cannot be sent before connecting
        t = self.target
        with self._connection() as conn:
            session = _TrinoSession(self, conn, uuid.uuid4().hex[:12])
            ok = False
            try:
                location = f"{t.location}{self.bucket('aggregates')}/_trino_scratch/"
                session.execute(
                    f"CREATE SCHEMA IF NOT EXISTS {t.catalog}.{t.scratch_schema} "
                    f"WITH (location = {quote_literal(location)})",
                    "scratch schema",
                )
                externals = {
                    name: session.external_table(table)
                    for name, table in tables.items()
                    if isinstance(table, LakePartition)
                }
                for name, table in tables.items():
                    if isinstance(table, LakePartition):
                        session.lake_input(name, table, externals[name])
                    else:
                        session.memory_input(name, table)
                yield session
                ok = True
            finally:
                session.drop_all(quiet=not ok)
