"""The Trino engine: its SQL parses as Trino and, transpiled back, gives DuckDB's results.

No Trino server runs here. ``TrinoOnDuckDB`` is a DBAPI connection that stands in for one: every
statement it receives must parse as Trino (sqlglot, read="trino"); Hive DDL and the partition
procedures are emulated over a Hive-layout Parquet folder (an external table only shows the
partitions registered so far); everything else is transpiled Trino -> DuckDB and executed.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest
import sqlglot
from dagster_duckdb import DuckDBResource
from sqlglot import exp

from mochi_assets.aggregation.outcomes import trader_outcomes
from mochi_assets.aggregation.tables import FETCHED, SCRIPT, TRADER_COLUMNS, aggregate_scenario, lake_trades, load_sql
from mochi_resources.errors import MochiError
from mochi_resources.sql_engine import DuckDBEngine, SqlEngine
from mochi_resources.sql_resource import SqlEngineResource
from mochi_resources.trino_engine import TrinoEngine, parse_trino_url, sql_literal, to_trino

from tests.deploy.deploy_files import hive_catalog_properties

URL = "http://mochi@trino.test:8080/hive/mochi"
TICKER, SCENARIO = "SYN_GOLD", "breakout-long"

_TRINO_TYPES = {"BIGINT": "bigint", "INTEGER": "integer", "DOUBLE": "double", "VARCHAR": "varchar",
                "DATE": "date", "BOOLEAN": "boolean", "TIMESTAMP_MS": "timestamp(3)", "TIMESTAMP": "timestamp(6)"}


def _trino_type(duckdb_type: str) -> str:
    """Trino's name of a DuckDB result type (intermediate tables hold exact DECIMAL sums)."""
    if duckdb_type.upper().startswith("DECIMAL"):
        return duckdb_type.lower()
    return _TRINO_TYPES[duckdb_type.upper()]


class _Cursor:
    def __init__(self, conn: TrinoOnDuckDB) -> None:
        self.conn = conn
        self.description = None
        self._rows: list = []

    def execute(self, sql: str) -> None:
        self.description, self._rows = self.conn.run(sql)

    def fetchall(self) -> list:
        return self._rows

    def close(self) -> None:
        pass


class TrinoOnDuckDB:
    """A DBAPI connection that checks Trino syntax and runs the statements on DuckDB."""

    def __init__(self, lake_root: Path, fail_on: str | None = None, catalog: dict[str, str] | None = None) -> None:
        self.lake_root = lake_root
        self.fail_on = fail_on
        # the Hive catalog as deployed (deploy/manifests): procedures it disables are refused, as Trino does
        self.catalog = hive_catalog_properties() if catalog is None else catalog
        self.statements: list[str] = []
        self.db = duckdb.connect()
        self.db.execute("SET TimeZone = 'UTC'")
        self.db.execute("ATTACH ':memory:' AS hive")
        self.db.execute("CREATE SCHEMA hive.mochi")
        self.db.execute("CREATE TABLE hive.mochi.registered (tbl VARCHAR, ticker VARCHAR, scenario VARCHAR)")
        self.closed = False

    def __call__(self) -> TrinoOnDuckDB:  # used as the engine's connect factory
        return self

    def cursor(self) -> _Cursor:
        return _Cursor(self)

    def close(self) -> None:
        self.closed = True

    def _path(self, location: str) -> Path:
        assert location.startswith("s3a://") and location.endswith("/"), location
        return self.lake_root / location.removeprefix("s3a://")

    def run(self, sql: str):
        self.statements.append(sql)
        if self.fail_on and self.fail_on in sql:
            raise RuntimeError(f"simulated Trino failure on {self.fail_on}")
        if sql.startswith("CALL "):
            return self._call(sql)
        tree = sqlglot.parse_one(sql, read="trino")  # raises on anything that is not Trino SQL
        assert not isinstance(tree, exp.Command), sql
        if isinstance(tree, exp.Create) and tree.kind == "SCHEMA":
            self.db.execute(f"CREATE SCHEMA IF NOT EXISTS {tree.this.sql('duckdb')}")
            return [], []
        props = tree.args.get("properties") if isinstance(tree, exp.Create) else None
        if props is not None:
            return self._external(tree, props)
        self.db.execute(sqlglot.transpile(sql, read="trino", write="duckdb")[0])
        if self.db.description is None:
            return [], []
        rows = self.db.fetchall()
        description = [(d[0], _trino_type(str(d[1]))) for d in self.db.description]
        return description, rows

    def _external(self, tree: exp.Create, props: exp.Properties):
        values = {p.name: p.args["value"].name for p in props.expressions if type(p) is exp.Property}
        assert isinstance(props.find(exp.FileFormatProperty).this, exp.Literal)
        assert props.find(exp.FileFormatProperty).this.name == "PARQUET"
        assert [e.name for e in props.find(exp.PartitionedByProperty).this.expressions] == ["ticker", "scenario"]
        schema = tree.this
        table = schema.this
        columns = [(c.name, c.args["kind"].sql("duckdb")) for c in schema.expressions]
        assert [c for c, _ in columns[-2:]] == ["ticker", "scenario"]
        glob = self._path(values["external_location"]) / "*" / "*" / "*.parquet"
        casts = ", ".join(f"CAST(p.{c} AS {t}) AS {c}" for c, t in columns)
        self.db.execute(
            f"CREATE VIEW IF NOT EXISTS {table.sql('duckdb')} AS SELECT {casts} "
            f"FROM read_parquet('{glob}', hive_partitioning = true) p "
            f"WHERE EXISTS (SELECT 1 FROM hive.mochi.registered r WHERE r.tbl = '{table.name}' "
            f"AND r.ticker = p.ticker AND r.scenario = p.scenario)"
        )
        self.db.execute(
            f'CREATE VIEW IF NOT EXISTS hive.mochi."{table.name}$partitions" AS '
            f"SELECT ticker, scenario FROM hive.mochi.registered WHERE tbl = '{table.name}'"
        )
        self.locations = {**getattr(self, "locations", {}), table.name: values["external_location"]}
        return [], []

    def _call(self, sql: str):
        call = re.fullmatch(r"CALL hive\.system\.(\w+)\((.*)\)", sql, re.S)
        assert call, sql
        # the procedure's arguments must be Trino expressions
        args = sqlglot.parse_one(f"SELECT {call.group(2)}", read="trino").expressions
        if call.group(1) == "register_partition":
            if self.catalog.get("hive.allow-register-partition-procedure") != "true":
                raise RuntimeError("TrinoUserError(type=USER_ERROR, name=PROCEDURE_CALL_FAILED, "
                                   "message=\"register_partition procedure is disabled\")")
            schema, table, columns, values = (a.to_py() if not isinstance(a, exp.Array) else
                                              [e.name for e in a.expressions] for a in args)
            assert schema == "mochi" and columns == ["ticker", "scenario"]
            folder = self._path(self.locations[table]) / f"ticker={values[0]}" / f"scenario={values[1]}"
            assert folder.is_dir(), f"registering a partition without files: {folder}"
            self.db.execute("INSERT INTO hive.mochi.registered VALUES (?, ?, ?)", [table, *values])
        elif call.group(1) == "sync_partition_metadata":
            schema, table, mode = (a.to_py() for a in args)
            assert schema == "mochi" and mode == "ADD"
            self.db.execute("DELETE FROM hive.mochi.registered WHERE tbl = ?", [table])
            for folder in self._path(self.locations[table]).glob("ticker=*/scenario=*"):
                ticker, scenario = folder.parent.name.split("=")[1], folder.name.split("=")[1]
                self.db.execute("INSERT INTO hive.mochi.registered VALUES (?, ?, ?)", [table, ticker, scenario])
        else:
            raise AssertionError(f"unexpected procedure {call.group(1)}")
        return [("result", "boolean")], [(True,)]


# ---------------------------------------------------------------- data


def _scenario(seed: int):
    """Random traders and trades: idle traders, a year without trades, trades with r = 0."""
    rng = np.random.default_rng(seed)
    sessions = [d for d in (date(2019, 1, 1) + timedelta(days=i) for i in range(3 * 365)) if d.weekday() < 5]
    n = 12
    traders = pl.DataFrame(
        {
            "trader_id": np.arange(n, dtype=np.int64) * 5 + 1,
            "scenario": [SCENARIO] * n,
            "stop_atr": rng.choice([0.5, 1.0, 1.5], n),
            "limit_atr": rng.choice([1.0, 2.0], n),
        }
    )
    frames = []
    for k, trader_id in enumerate(traders["trader_id"].to_list()[:-2]):  # two idle traders
        days = [d for d in sessions if not (k == 0 and d.year == 2020)]
        chosen = np.sort(rng.choice(len(days), size=int(rng.integers(3, 80)), replace=False))
        atr = rng.uniform(5, 15, len(chosen))
        pnl = rng.normal(0.05 * (k % 3), 1.0, len(chosen)) * atr
        risk = traders["stop_atr"][k] * atr
        r = pnl / risk
        if k == 3:
            pnl[:2], r[:2] = 0.0, 0.0
        day = [days[int(i)] for i in chosen]
        frames.append(
            pl.DataFrame(
                {
                    "trader_id": [trader_id] * len(chosen),
                    "session_date": day,
                    "entry_price": rng.uniform(1000, 2000, len(chosen)),
                    "exit_price": rng.uniform(1000, 2000, len(chosen)),
                    "exit_reason": rng.choice(["stop", "limit", "time"], len(chosen)),
                    "pnl": pnl,
                    "pnl_ticks": pnl * 10,
                    "r": r,
                    "mae": np.abs(rng.normal(0, 0.5, len(chosen))) * risk,
                    "mfe": np.abs(rng.normal(0, 0.5, len(chosen))) * risk,
                    "bars_held": rng.integers(1, 200, len(chosen)),
                }
            )
        )
    trades = pl.concat(frames).with_columns(
        entry_ts=pl.col("session_date").cast(pl.Datetime("us", "UTC")) + pl.duration(hours=14, minutes=30),
    ).with_columns(
        exit_ts=pl.col("entry_ts") + pl.duration(minutes=45),
        entry_price=pl.lit(100.0),
        exit_price=100.0 + pl.col("pnl"),
    )
    return traders, trades.sample(fraction=1.0, shuffle=True, seed=seed), sessions


def _write_lake(root: Path, trades: pl.DataFrame, scenario: str) -> None:
    folder = root / "mochi-trades" / "trades" / f"ticker={TICKER}" / f"scenario={scenario}"
    folder.mkdir(parents=True, exist_ok=True)
    trades.write_parquet(folder / "data.parquet", compression="zstd")


@pytest.fixture()
def lake(tmp_path):
    traders, trades, sessions = _scenario(7)
    _write_lake(tmp_path, trades, SCENARIO)
    # Another scenario of the same ticker: the engine must read only its own partition.
    _, other, _ = _scenario(8)
    _write_lake(tmp_path, other.with_columns(pl.col("pnl") * 3), "breakout-short")
    return tmp_path, traders, trades, sessions


def _assert_same(got: pl.DataFrame, want: pl.DataFrame, name: str) -> None:
    assert got.columns == want.columns, name
    assert got.height == want.height, name
    for column in want.columns:
        g, w = got[column], want[column]
        if isinstance(w.dtype, pl.Decimal):  # Trino's client returns decimals as Python Decimals, read as floats
            w = w.cast(pl.Float64)
        if w.dtype == pl.Float64:
            assert g.dtype == pl.Float64, (name, column, g.dtype)
            assert g.is_null().to_list() == w.is_null().to_list(), (name, column)
            np.testing.assert_allclose(
                g.drop_nulls().to_numpy(), w.drop_nulls().to_numpy(), rtol=1e-12, atol=1e-12, err_msg=f"{name}.{column}"
            )
        else:
            assert g.cast(w.dtype).to_list() == w.to_list(), (name, column)


# ---------------------------------------------------------------- the SQL


def test_aggregation_on_trino_sql_equals_duckdb(lake):
    root, traders, trades, sessions = lake
    conn = TrinoOnDuckDB(root)
    engine = TrinoEngine(URL, connect=conn)
    assert isinstance(engine, SqlEngine) and engine.lake_inputs
    got = aggregate_scenario(
        engine, trades=lake_trades(TICKER, SCENARIO), traders=traders, session_dates=sessions, n_blocks=4,
        outcomes=trader_outcomes(trades), daily=trades,
    )
    want = aggregate_scenario(DuckDBEngine(), trades=trades, traders=traders, session_dates=sessions, n_blocks=4)
    assert set(got) == set(want)
    for name in want:
        _assert_same(got[name], want[name], name)
    assert want["trader_summary"]["trades"].sum() == trades.height
    assert conn.closed
    # the daily series' rows do not come through Trino: without them, one clear error, no SQL sent
    sent = len(conn.statements)
    with pytest.raises(MochiError, match="daily: give the trades' trader_id, session_date and r with lake trades"):
        aggregate_scenario(engine, trades=lake_trades(TICKER, SCENARIO), traders=traders, session_dates=sessions,
                           outcomes=trader_outcomes(trades))
    assert len(conn.statements) == sent


def test_a_catalog_without_the_register_procedure_refuses_the_default_mode(lake):
    """What the deployed catalog must allow: without hive.allow-register-partition-procedure the
    default partitions=register mode fails (the stand-in refuses it as Trino does); sync works."""
    root, traders, trades, sessions = lake
    props = {k: v for k, v in hive_catalog_properties().items() if k != "hive.allow-register-partition-procedure"}
    with pytest.raises(Exception, match="register_partition procedure is disabled"):
        aggregate_scenario(TrinoEngine(URL, connect=TrinoOnDuckDB(root, catalog=props)),
                           trades=lake_trades(TICKER, SCENARIO), traders=traders, session_dates=sessions, n_blocks=4,
                           outcomes=trader_outcomes(trades), daily=trades)
    sync = TrinoEngine(URL + ("&" if "?" in URL else "?") + "partitions=sync", connect=TrinoOnDuckDB(root, catalog=props))
    got = aggregate_scenario(sync, trades=lake_trades(TICKER, SCENARIO), traders=traders, session_dates=sessions,
                             n_blocks=4, outcomes=trader_outcomes(trades), daily=trades)
    assert got["trader_summary"]["trades"].sum() == trades.height


def test_every_script_table_matches_duckdb(lake):
    root, traders, trades, sessions = lake
    conn = TrinoOnDuckDB(root)
    statements = [(name, load_sql(name)) for name in SCRIPT]
    # the traders input with a drawdown per trader (from the outcome table in aggregate_scenario)
    traders_in = traders.select(TRADER_COLUMNS).with_columns(max_drawdown=pl.col("trader_id") * 0.5)
    inputs = {"traders": traders_in, "sessions": pl.DataFrame({"session_date": sessions})}
    got = TrinoEngine(URL, connect=conn, bucket_prefix="mochi-").run_script(
        statements, {**inputs, "trades": lake_trades(TICKER, SCENARIO)}
    )
    want = DuckDBEngine().run_script(statements, {**inputs, "trades": trades})
    assert list(got) == list(SCRIPT)
    keys = {"trader_daily": ["trader_id", "session_date"], "trader_year_sums": ["trader_id", "year"],
            "mae_profile": ["stop_atr", "outcome"]}
    for name in SCRIPT:
        by = keys.get(name, [want[name].columns[0]])
        _assert_same(got[name].sort(by, nulls_last=True), want[name].sort(by, nulls_last=True), name)
    # every statement sent was Trino SQL (checked on receipt); the CTAS chain is all there
    ctas = [s for s in conn.statements if s.startswith("CREATE TABLE hive.mochi_scratch.") and " AS\n" in s]
    assert len(ctas) == 1 + len(SCRIPT)  # the trades input, then one per statement


def test_to_trino_rewrites_tables_not_ctes_and_keeps_aliases():
    sql = "WITH trades AS (SELECT 1 AS x) SELECT trades.x, t.y FROM trades, other t, other"
    out = to_trino(sql, {"trades": "c.s.m1_trades", "other": "c.s.m1_other"})
    tree = sqlglot.parse_one(out, read="trino")
    tables = sorted(t.sql("trino") for t in tree.find_all(exp.Table))
    assert tables == ["c.s.m1_other AS other", "c.s.m1_other AS t", "trades"]
    # DuckDB's float division becomes explicit for Trino (integer / integer truncates there)
    assert "CAST" in to_trino("SELECT a / b AS q FROM t", {})
    assert sql_literal(0.1, "DOUBLE") == "0.1E0" and sql_literal(1e-20, "DOUBLE") == "1E-20"
    assert sql_literal(date(2021, 3, 4), "DATE") == "DATE '2021-03-04'"
    assert sql_literal("it's", "VARCHAR") == "'it''s'"


def test_to_trino_keeps_percentiles_exact():
    sql = (
        "SELECT g, COUNT(*) AS n, PERCENTILE_CONT(0.1) WITHIN GROUP (ORDER BY x) AS p10, "
        "QUANTILE_CONT(x, 0.5) AS p50, QUANTILE_CONT(x, [0.25, 1]) AS p25_p100 "
        "FROM t GROUP BY g ORDER BY g"
    )
    trino = to_trino(sql, {"t": "c.s.m1_t"})
    assert "APPROX" not in trino.upper() and "PERCENTILE" not in trino.upper()
    rng = np.random.default_rng(3)
    groups = [("none", [None, None]), ("one", [2.5]), ("two", [4.0, 1.0]), ("many", list(rng.normal(size=101)))]
    groups += [("nulls", [None, 3.0, 1.0, None, 2.0]), ("even", list(rng.normal(size=40)))]
    frame = pl.DataFrame(
        {"g": [g for g, xs in groups for _ in xs], "x": [x for _, xs in groups for x in xs]},
        schema={"g": pl.Utf8, "x": pl.Float64},
    )
    db = duckdb.connect()
    db.execute("ATTACH ':memory:' AS c")
    db.execute("CREATE SCHEMA c.s")
    db.register("frame", frame.to_arrow())
    db.execute("CREATE TABLE c.s.m1_t AS SELECT * FROM frame")
    back = sqlglot.transpile(trino, read="trino", write="duckdb")[0]
    got = pl.from_arrow(db.sql(back).to_arrow_table()).with_columns(
        p25=pl.col("p25_p100").list.get(0), p100=pl.col("p25_p100").list.get(1)
    ).drop("p25_p100")
    want = pl.from_arrow(db.sql(sql.replace("FROM t", "FROM c.s.m1_t")).to_arrow_table()).with_columns(
        p25=pl.col("p25_p100").list.get(0), p100=pl.col("p25_p100").list.get(1)
    ).drop("p25_p100")
    _assert_same(got, want, "percentiles")
    for g, xs in groups:
        row = got.filter(pl.col("g") == g).row(0, named=True)
        values = [x for x in xs if x is not None]
        for q, column in [(0.1, "p10"), (0.25, "p25"), (0.5, "p50"), (1.0, "p100")]:
            expected = pytest.approx(float(np.quantile(values, q)), rel=1e-12) if values else None
            assert row[column] == expected, (g, column)
    for inexact in (
        "SELECT MEDIAN(x) FROM t",
        "SELECT QUANTILE_DISC(x, 0.5) FROM t",
        "SELECT PERCENTILE_DISC(0.5) WITHIN GROUP (ORDER BY x) FROM t",
        "SELECT PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY x DESC) FROM t",
        "SELECT QUANTILE_CONT(x, y) FROM t",
    ):
        with pytest.raises(MochiError, match="PERCENTILE_CONT|percentile needs literal"):
            to_trino(inexact, {})


# ---------------------------------------------------------------- control flow


def _kind(sql: str) -> str:
    if sql.startswith("CREATE SCHEMA"):
        return "schema"
    if sql.startswith("CREATE TABLE IF NOT EXISTS"):
        return "external"
    if "$partitions" in sql:
        return "lookup"
    if sql.startswith("CALL"):
        return "partition"
    if sql.startswith("CREATE TABLE") and " AS\n" in sql:
        return "ctas"
    if sql.startswith("CREATE TABLE"):
        return "create"
    if sql.startswith("INSERT"):
        return "insert"
    if sql.startswith("SELECT * FROM hive.mochi_scratch."):
        return "fetch"
    if sql.startswith("DROP TABLE IF EXISTS"):
        return "drop"
    return "query"


def _compress(kinds: list[str]) -> list[str]:
    return [k for i, k in enumerate(kinds) if i == 0 or kinds[i - 1] != k]


def test_statement_order_and_cleanup(lake):
    root, traders, trades, sessions = lake
    conn = TrinoOnDuckDB(root)
    engine = TrinoEngine(URL, connect=conn)
    aggregate_scenario(
        engine, trades=lake_trades(TICKER, SCENARIO), traders=traders, session_dates=sessions, outcomes=trader_outcomes(trades), daily=trades
    )
    kinds = [_kind(s) for s in conn.statements]
    assert _compress(kinds) == [
        "schema", "external", "lookup", "partition",  # DDL, then the partition of this run
        "ctas", "create", "insert", "create", "insert",  # inputs: trades from the lake, traders, sessions
        "query",  # input checks
        "ctas", "fetch", "drop",  # the CTAS chain, the results read back, every scratch table dropped
    ]
    assert kinds.count("ctas") == 1 + len(SCRIPT) and kinds.count("fetch") == len(FETCHED)
    created = [s.split()[2] for s in conn.statements if _kind(s) in ("ctas", "create")]
    dropped = [s.split()[-1] for s in conn.statements if _kind(s) == "drop"]
    assert sorted(created) == sorted(dropped) and len(set(created)) == len(created)
    assert all(re.fullmatch(r"hive\.mochi_scratch\.m[0-9a-f]{12}_\w+", name) for name in created)
    assert conn.statements[1].count("external_location = 's3a://mochi-trades/trades/'") == 1

    # a second run: the partition is known, so it is not registered again; names are new
    conn.statements.clear()
    aggregate_scenario(
        engine, trades=lake_trades(TICKER, SCENARIO), traders=traders, session_dates=sessions, outcomes=trader_outcomes(trades), daily=trades
    )
    assert "partition" not in [_kind(s) for s in conn.statements]
    again = [s.split()[2] for s in conn.statements if _kind(s) in ("ctas", "create")]
    assert not set(again) & set(created)


def test_sync_mode_and_failures_still_drop_scratch_tables(lake):
    root, traders, trades, sessions = lake
    conn = TrinoOnDuckDB(root, fail_on="_trader_by_year AS")
    engine = TrinoEngine(URL + "?partitions=sync&scratch_schema=tmp_mochi", connect=conn)
    with pytest.raises(MochiError, match=r"SQL statement 'trader_by_year' failed on Trino \(http://mochi@trino.test:8080"):
        aggregate_scenario(
            engine, trades=lake_trades(TICKER, SCENARIO), traders=traders, session_dates=sessions, outcomes=trader_outcomes(trades), daily=trades
        )
    kinds = [_kind(s) for s in conn.statements]
    assert "sync_partition_metadata('mochi', 'trades', 'ADD')" in conn.statements[2]
    created = [s.split()[2] for s in conn.statements if s.startswith("CREATE TABLE hive.tmp_mochi.")]
    dropped = [s.split()[-1] for s in conn.statements if kinds[conn.statements.index(s)] == "drop"]
    assert created and sorted(created) == sorted(dropped)
    assert conn.closed


def test_inputs_are_refused_clearly():
    engine = TrinoEngine(URL, connect=lambda: None)
    with pytest.raises(MochiError, match="too many to send to Trino"):
        with engine.session({"big": pl.DataFrame({"x": np.zeros(100_001)})}):
            pass
    with pytest.raises(MochiError, match="DuckDB reads in-memory tables"):
        DuckDBEngine().query("SELECT 1", {"trades": lake_trades(TICKER, SCENARIO)})


# ---------------------------------------------------------------- configuration


def test_url_parsing():
    t = parse_trino_url("https://ann:p%40ss@trino.mochi.svc/Hive/mochi?partitions=sync")
    assert (t.host, t.port, t.user, t.password, t.catalog, t.schema, t.scratch_schema, t.partitions) == (
        "trino.mochi.svc", 443, "ann", "p@ss", "hive", "mochi", "mochi_scratch", "sync"
    )
    assert "p@ss" not in t.safe_url and t.safe_url == "https://ann@trino.mochi.svc:443/hive/mochi"
    assert parse_trino_url("http://trino:8080/hive/mochi").user == "mochi"
    for bad, message in [
        ("trino:8080/hive/mochi", "not an http"),
        ("http://u@trino:8080/hive", "must end in /<catalog>/<schema>"),
        ("http://u:secret@trino:8080/hive/mochi", "needs https"),
        ("http://u@trino:8080/hive/mochi?partitions=maybe", "partitions"),
        ("http://u@trino:8080/hive/mo-chi", "not a plain name"),
        ("http://u@trino:8080/hive/mochi?colour=red", "unknown option"),
    ]:
        with pytest.raises(MochiError, match=message) as err:
            parse_trino_url(bad)
        assert "secret" not in str(err.value)


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_resource_picks_the_engine_at_run_time(monkeypatch, mochi_home):
    monkeypatch.delenv("MOCHI_TRINO_URL", raising=False)
    resource = SqlEngineResource(duckdb=DuckDBResource(database=":memory:"))
    assert resource.get_engine().name == "duckdb"
    port = _closed_port()
    monkeypatch.setenv("MOCHI_TRINO_URL", f"https://ann:hunter2@127.0.0.1:{port}/hive/mochi")
    with pytest.raises(MochiError, match="set MOCHI_S3_ENDPOINT too"):
        resource.get_engine()
    monkeypatch.setenv("MOCHI_S3_ENDPOINT", "http://127.0.0.1:9000")
    with pytest.raises(MochiError) as err:
        resource.get_engine()
    message = str(err.value)
    assert message.startswith(f"Trino at https://ann@127.0.0.1:{port}/hive/mochi is unreachable")
    assert "hunter2" not in message and err.value.__cause__ is None
    assert SqlEngineResource(duckdb=DuckDBResource(database=":memory:"), trino_url="").get_engine().name == "duckdb"
