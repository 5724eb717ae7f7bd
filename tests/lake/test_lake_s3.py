"""The lake on a real S3 API (SeaweedFS on loopback): pipeline, credentials, crashes, concurrent reads."""

from __future__ import annotations

import io
import threading

import duckdb
import polars as pl
import pyarrow.parquet as pq
import pytest
from tests.lake.conftest import ADMIN, READER
from lake_crash import final_versions, partition_versions, run_writer, write_partition

from mochi_resources.errors import LakeError, MochiError
from mochi_resources.lake import Lake
from mochi_resources.settings import BUCKETS, MochiSettings

REQUEST = {
    "ticker": "SYN:GOLD",
    "start": "2024-01-02",
    "end": "2024-04-15",
    "atr": {"short": 3, "long": 5, "alpha": 0.5},
    "entry_times": ["09:30"],
    "duration_min": 120,
    "timeout_min": 30,
    "cost_ticks": 2,
    "scenarios": {"breakout-long": {"direction": "long", "stop_atr": [0.5, 1.0], "limit_atr": [1.0, 2.0]}},
}


def test_pipeline_on_s3_writes_the_lake_layout_readable_by_pyarrow_and_duckdb(s3_env, s3_server, tmp_path):
    from mochi_assets.request import parse_request
    from mochi_assets.runner import run_backtest

    prefix = s3_env["MOCHI_BUCKET_PREFIX"]
    result = run_backtest(parse_request(REQUEST))
    assert result.scenarios == ["breakout-long"]
    assert result.leaderboard.height > 0

    # one bucket per stage, named with the prefix; nothing local but the Dagster home
    assert s3_server.buckets(prefix) == sorted(f"{prefix}{b}" for b in BUCKETS)
    home = tmp_path / "home"
    assert sorted(p.name for p in home.iterdir()) == ["dagster"]

    trades_keys = s3_server.keys(f"{prefix}trades")
    assert trades_keys == [
        "trader_outcomes/ticker=SYN_GOLD/scenario=breakout-long/data.parquet",
        "traders/ticker=SYN_GOLD/scenario=breakout-long/data.parquet",
        "trades/ticker=SYN_GOLD/scenario=breakout-long/data.parquet",
    ]  # no commit records or staged copies left behind
    for stage, key in [
        ("raw", "bars_minute/ticker=SYN_GOLD/data.parquet"),
        ("prepared", "enhanced_bars/ticker=SYN_GOLD/data.parquet"),
        ("aggregates", "trader_summary/ticker=SYN_GOLD/scenario=breakout-long/data.parquet"),
        ("rankings", "leaderboard/ticker=SYN_GOLD/data.parquet"),
        ("graphs", "years_graph/ticker=SYN_GOLD/scenario=breakout-long/years.png"),
        ("params", "requests/ticker=SYN_GOLD/request.json"),
    ]:
        assert key in s3_server.keys(f"{prefix}{stage}"), (stage, key)

    # Hive-style partitions straight from the objects, with pyarrow; SQL on them with DuckDB
    client = s3_server.client()
    body = client.get_object(Bucket=f"{prefix}trades", Key=trades_keys[2])["Body"].read()
    trades = pq.read_table(io.BytesIO(body))
    assert {"trader_id", "session_date", "entry_ts", "exit_reason", "pnl", "r", "mae", "mfe"} <= set(trades.column_names)
    summary_key = "trader_summary/ticker=SYN_GOLD/scenario=breakout-long/data.parquet"
    summary = pq.read_table(io.BytesIO(client.get_object(Bucket=f"{prefix}aggregates", Key=summary_key)["Body"].read()))
    con = duckdb.connect()
    con.register("trades", trades)
    con.register("summary", summary)
    # the simulation's per-trader outcome table agrees with the trades and the summary
    outcomes = pq.read_table(io.BytesIO(client.get_object(Bucket=f"{prefix}trades", Key=trades_keys[0])["Body"].read()))
    con.register("outcomes", outcomes)
    assert con.execute(
        "select count(*) from outcomes o join summary s using (trader_id) "
        "where o.trades <> s.trades or o.max_drawdown <> s.max_drawdown"
    ).fetchone() == (0,)
    joined = con.execute(
        "select s.trader_id, s.trades, count(t.trader_id) as n from summary s "
        "left join trades t using (trader_id) group by all order by 1"
    ).fetchall()
    assert joined and all(trades_n == n for _, trades_n, n in joined)

    # the results `mochi` shows come from this store
    lake = Lake(MochiSettings.from_env())
    assert lake.list_partitions("rankings", "leaderboard") == ["SYN_GOLD"]
    pngs = lake.list_files("graphs", None, "SYN_GOLD", suffix=".png")
    assert [k.rsplit("/", 1)[1] for k in pngs] == ["best_traders.png", "stops.png", "years.png"]
    assert lake.get_bytes(pngs[0]).startswith(b"\x89PNG")
    assert lake.uri(pngs[0]).startswith(f"s3://{prefix}graphs/")
    board = lake.read_table(lake.key("rankings", "leaderboard", "SYN_GOLD"))
    assert board.equals(result.leaderboard)


def test_wrong_secret_fails_fast_names_the_endpoint_and_writes_nothing(s3_env, s3_server, monkeypatch):
    from mochi_assets.request import parse_request
    from mochi_assets.runner import run_backtest

    secret = "definitely-not-the-secret"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    with pytest.raises(LakeError) as err:
        Lake(MochiSettings.from_env())
    message = str(err.value)
    assert s3_server.endpoint in message and "AWS_SECRET_ACCESS_KEY" in message
    assert secret not in message and ADMIN[1] not in message

    with pytest.raises(MochiError) as err:
        run_backtest(parse_request(REQUEST))
    assert secret not in str(err.value)
    assert s3_server.buckets(s3_env["MOCHI_BUCKET_PREFIX"]) == []


def test_unknown_access_key_and_missing_permission_are_named(s3_env, s3_server, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "nobody")
    with pytest.raises(LakeError, match="AWS_ACCESS_KEY_ID"):
        Lake(MochiSettings.from_env())

    # a read-only identity cannot create the stage buckets
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", READER[0])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", READER[1])
    with pytest.raises(LakeError, match="access denied") as err:
        Lake(MochiSettings.from_env())
    assert s3_server.endpoint in str(err.value) and READER[1] not in str(err.value)
    assert s3_server.buckets(s3_env["MOCHI_BUCKET_PREFIX"]) == []

    # once the buckets exist, it may read but a write is refused with a clear message
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ADMIN[0])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", ADMIN[1])
    admin = Lake(MochiSettings.from_env())
    admin.put_json(admin.key("params", "requests", "SYN_X", None, "r.json"), {"a": 1})
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", READER[0])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", READER[1])
    reader = Lake(MochiSettings.from_env())
    key = reader.key("params", "requests", "SYN_X", None, "r.json")
    assert reader.get_json(key) == {"a": 1}
    with pytest.raises(LakeError, match="access denied"):
        reader.put_json(key, {"a": 2})


def test_rewriting_the_same_partition_gives_the_same_objects(s3_env, s3_server):
    prefix = s3_env["MOCHI_BUCKET_PREFIX"]
    lake = Lake(MochiSettings.from_env())
    folder = lake.folder_key("aggregates", "trader_summary", "SYN_DET", "breakout-long")
    df = pl.DataFrame({"trader_id": [1, 2, 3], "sharpe": [0.1, None, 2.5]})
    client = s3_server.client()

    def objects() -> dict[str, bytes]:
        return {k: client.get_object(Bucket=f"{prefix}aggregates", Key=k)["Body"].read()
                for k in s3_server.keys(f"{prefix}aggregates")}

    lake.replace_folder(folder, {"data.parquet": df, "notes.json": b"{}"})
    first = objects()
    lake.replace_folder(folder, {"data.parquet": df, "notes.json": b"{}"})
    assert objects() == first and len(first) == 2
    lake.replace_folder(folder, {"data.parquet": df})  # a file the new version lacks is removed
    assert list(objects()) == ["trader_summary/ticker=SYN_DET/scenario=breakout-long/data.parquet"]


def test_unreachable_endpoint_is_named(s3_env, monkeypatch):
    monkeypatch.setenv("MOCHI_S3_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("MOCHI_S3_MAX_ATTEMPTS", "1")
    with pytest.raises(LakeError, match=r"http://127\.0\.0\.1:9: cannot connect"):
        Lake(MochiSettings.from_env())


@pytest.mark.parametrize("stop_at", ["upload", "apply"])
def test_writer_killed_mid_write_leaves_a_whole_version(s3_env, s3_server, stop_at):
    prefix = s3_env["MOCHI_BUCKET_PREFIX"]
    lake = Lake(MochiSettings.from_env())
    write_partition(lake, 1)
    run_writer(2, stop_at, s3_env)
    if stop_at == "upload":
        assert s3_server.uploads(f"{prefix}trades")  # it really died inside a multipart upload
    traders, trades, rows = partition_versions(lake)
    expected = {1} if stop_at == "upload" else {2}  # before the commit point: old; after: new
    assert traders == expected and trades == expected
    assert rows > 1_000_000

    # the next write finishes or discards the dead writer's work, and cleans up after it
    lake.recover()
    client = s3_server.client()

    def read(table: str) -> bytes:
        return client.get_object(Bucket=f"{prefix}trades", Key=f"{table}/ticker=SYN_KILL/scenario=breakout-long/data.parquet")["Body"].read()

    assert final_versions(read) == (expected, expected)
    write_partition(lake, 3)
    assert partition_versions(lake)[:2] == ({3}, {3})
    assert [k for k in s3_server.keys(f"{prefix}trades") if "_mochi" in k] == []
    assert s3_server.uploads(f"{prefix}trades") == []


def test_readers_during_rewrites_see_the_old_or_the_new_version(s3_env):
    lake = Lake(MochiSettings.from_env())
    folders = {
        t: lake.folder_key("graphs", t, "SYN_RW", "breakout-long") for t in ("years_graph", "stops_graph")
    }
    versions = {
        v: {"png": f"png of version {v}".encode() * 1000, "csv": pl.DataFrame({"v": [v] * 500})} for v in (1, 2)
    }

    def write(v: int) -> None:
        lake.replace_folders({
            folders["years_graph"]: {"years.png": versions[v]["png"], "years.parquet": versions[v]["csv"]},
            folders["stops_graph"]: {"stops.png": versions[v]["png"]},
        })

    write(1)
    stop = threading.Event()
    seen: list[tuple] = []
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            while not stop.is_set():
                png = lake.get_bytes(f"{folders['years_graph']}/years.png")
                table = lake.read_table(f"{folders['years_graph']}/years.parquet")
                seen.append((png, tuple(table["v"].unique().to_list()), table.height))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        for i in range(12):
            write(2 if i % 2 == 0 else 1)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors
    assert len(seen) > 0
    for png, vs, height in seen:
        assert png in (versions[1]["png"], versions[2]["png"])
        assert vs in ((1,), (2,)) and height == 500
