"""The lake on a local folder: key safety, all-or-nothing partition commits, crashes, concurrent reads."""

from __future__ import annotations

import threading
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings, strategies as st
from lake_crash import partition_versions, run_writer, write_partition

from mochi_resources.errors import LakeError
from mochi_resources.lake import SCRATCH_MIN_AGE_S, Lake
from mochi_resources.settings import MochiSettings


@pytest.fixture
def lake(local_env) -> Lake:
    return Lake(MochiSettings.from_env())


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_keys_follow_the_hive_layout_on_the_lake_folder(lake):
    key = lake.key("trades", "trades", "C_XAUUSD", "breakout-long")
    assert key == "mochi-trades/trades/ticker=C_XAUUSD/scenario=breakout-long/data.parquet"
    assert lake.uri(key) == str(lake.root / key)
    assert lake.location == str(lake.root)
    assert lake.folder_key("raw", "bars_minute", "C_XAUUSD") == "mochi-raw/bars_minute/ticker=C_XAUUSD"


def test_bar_stages_are_zstd_level_1_and_every_other_table_the_default_level(lake):
    import io

    import numpy as np

    rng = np.random.default_rng(7)
    frame = pl.DataFrame({"ts": np.arange(20_000), "close": np.round(rng.normal(1900, 5, 20_000), 2)})

    def encoded(level):
        buf = io.BytesIO()
        frame.write_parquet(buf, compression="zstd", compression_level=level, statistics=True)
        return buf.getvalue()

    assert encoded(1) != encoded(None)  # the levels differ on these bytes
    lake.replace_folder(lake.folder_key("raw", "bars_minute", "SYN_GOLD"), {"data.parquet": frame})
    lake.put_table(lake.key("prepared", "enhanced_bars", "SYN_GOLD"), frame)
    lake.put_table(lake.key("aggregates", "trader_summary", "SYN_GOLD", "breakout-long"), frame)
    stored = lambda key: (lake.root / key).read_bytes()  # noqa: E731
    assert stored(lake.key("raw", "bars_minute", "SYN_GOLD")) == encoded(1)
    assert stored(lake.key("prepared", "enhanced_bars", "SYN_GOLD")) == encoded(1)
    assert stored(lake.key("aggregates", "trader_summary", "SYN_GOLD", "breakout-long")) == encoded(None)
    assert lake.read_table(lake.key("raw", "bars_minute", "SYN_GOLD")).equals(frame)


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=0, max_size=12))
def test_unsafe_names_are_refused_and_safe_ones_stay_in_their_folder(name):
    lake = Lake(MochiSettings(home=Path("/nonexistent/mochi-home")))  # keys only: nothing is touched
    for make in (
        lambda: lake.key("trades", "trades", name, "breakout-long"),
        lambda: lake.key("trades", "trades", "SYN_GOLD", name),
        lambda: lake.key("trades", name, "SYN_GOLD"),
        lambda: lake.key("graphs", "years_graph", "SYN_GOLD", "breakout-long", name),
    ):
        try:
            key = make()
        except LakeError:
            continue
        assert ".." not in key and "\\" not in key and "'" not in key and '"' not in key and " " not in key
        parts = key.split("/")
        assert parts[0] == "mochi-trades" or parts[0] == "mochi-graphs"
        assert all(parts) and (lake.root / key).resolve().is_relative_to(lake.root.resolve() / parts[0])


@pytest.mark.parametrize("bad", ["../etc/passwd", "mochi-raw/../x", "other-bucket/a", "mochi-raw/a b", "mochi-raw//x", "/abs"])
def test_raw_keys_outside_the_lake_are_refused(lake, bad):
    with pytest.raises(LakeError):
        lake.get_bytes(bad)
    with pytest.raises(LakeError):
        lake.put_bytes(bad, b"x")


def test_a_partition_is_replaced_whole_and_leaves_nothing_behind(lake):
    folder = lake.folder_key("graphs", "years_graph", "SYN_GOLD", "breakout-long")
    staged = lake.staging_path()
    pl.DataFrame({"a": [1, 2, 3]}).write_parquet(staged)
    lake.replace_folder(folder, {"years.png": b"png-1", "years.csv": b"a\n1\n", "data.parquet": staged})
    assert not staged.exists()  # consumed by the commit
    assert lake.get_bytes(f"{folder}/years.png") == b"png-1"
    assert lake.read_table(f"{folder}/data.parquet")["a"].to_list() == [1, 2, 3]

    lake.replace_folder(folder, {"years.png": b"png-2"})
    assert lake.get_bytes(f"{folder}/years.png") == b"png-2"
    assert not lake.exists(f"{folder}/years.csv") and not lake.exists(f"{folder}/data.parquet")
    assert lake.list_files("graphs", None, "SYN_GOLD") == [f"{folder}/years.png"]
    assert _files(lake.root) == [f"{folder}/years.png"]  # no commit records, staged or temporary files


def test_the_same_inputs_give_the_same_bytes(lake):
    folder = lake.folder_key("aggregates", "trader_summary", "SYN_GOLD", "breakout-long")
    df = pl.DataFrame({"trader_id": [1, 2], "sharpe": [0.5, None]})
    lake.replace_folder(folder, {"data.parquet": df})
    first = (lake.root / folder / "data.parquet").read_bytes()
    lake.replace_folder(folder, {"data.parquet": df})
    assert (lake.root / folder / "data.parquet").read_bytes() == first


def test_a_failed_commit_keeps_the_previous_version_and_drops_its_staged_files(lake, monkeypatch):
    write_partition(lake, 1)
    put = lake.store.put_written

    def disk_fills(fh) -> None:
        fh.write(b"PAR1 half a table")
        raise OSError(28, "No space left on device (simulated)")

    def failing(key: str, write) -> None:
        put(key, disk_fills if "/trades/" in key else write)

    monkeypatch.setattr(lake.store, "put_written", failing)
    with pytest.raises(LakeError, match="No space left on device"):
        write_partition(lake, 2)
    monkeypatch.undo()
    assert partition_versions(lake)[:2] == ({1}, {1})
    assert not [f for f in _files(lake.root) if "_mochi" in f or f.endswith(".tmp")]


@pytest.mark.parametrize("stop_at", ["upload", "apply"])
def test_writer_killed_mid_write_leaves_a_whole_version(local_env, lake, stop_at):
    write_partition(lake, 1)
    run_writer(2, stop_at, local_env)
    expected = {1} if stop_at == "upload" else {2}
    traders, trades, rows = partition_versions(lake)
    assert traders == expected and trades == expected and rows > 1_000_000
    if stop_at == "apply":
        # the dead writer promoted one file only: the commit record makes readers use the new version
        assert [f for f in _files(lake.root) if "_mochi/commits" in f]
    assert lake.recover() == (1 if stop_at == "apply" else 0)
    for table in ("traders", "trades"):
        on_disk = pl.read_parquet(lake.root / lake.key("trades", table, "SYN_KILL", "breakout-long"), columns=["version"])
        assert set(on_disk["version"].unique().to_list()) == expected
    write_partition(lake, 3)
    assert partition_versions(lake)[:2] == ({3}, {3})
    assert not [f for f in _files(lake.root) if "_mochi" in f or f.endswith(".tmp")]


def test_readers_during_rewrites_see_the_old_or_the_new_version(lake):
    folder = lake.folder_key("rankings", "rankings", "SYN_RW", "breakout-long")
    frames = {v: pl.DataFrame({"v": [v] * 2000, "x": list(range(2000))}) for v in (1, 2)}
    lake.replace_folder(folder, {"data.parquet": frames[1]})
    stop = threading.Event()
    seen: list[tuple] = []
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            while not stop.is_set():
                df = lake.read_table(f"{folder}/data.parquet")
                seen.append((tuple(df["v"].unique().to_list()), df.height))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        for i in range(30):
            lake.replace_folder(folder, {"data.parquet": frames[2 if i % 2 == 0 else 1]})
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors and seen
    assert all(vs in ((1,), (2,)) and height == 2000 for vs, height in seen)


def test_listing_partitions_and_files(lake):
    assert lake.list_partitions("rankings", "leaderboard") == []
    lake.put_table(lake.key("rankings", "leaderboard", "SYN_A"), pl.DataFrame({"rank": [1]}))
    lake.put_table(lake.key("rankings", "leaderboard", "SYN_B"), pl.DataFrame({"rank": [1]}))
    assert lake.list_partitions("rankings", "leaderboard") == ["SYN_A", "SYN_B"]
    for scenario in ("breakout-long", "pullback-short"):
        lake.replace_folder(lake.folder_key("graphs", "stops_graph", "SYN_A", scenario), {"stops.png": b"p", "stops.csv": b"c"})
    assert len(lake.list_files("graphs", None, "SYN_A", suffix=".png")) == 2
    assert lake.list_files("graphs", "stops_graph", "SYN_A", "pullback-short") == [
        "mochi-graphs/stops_graph/ticker=SYN_A/scenario=pullback-short/stops.csv",
        "mochi-graphs/stops_graph/ticker=SYN_A/scenario=pullback-short/stops.png",
    ]
    assert lake.list_files("graphs", None, "SYN_B") == []


def test_missing_objects_say_so(lake):
    key = lake.key("rankings", "leaderboard", "SYN_NONE")
    assert not lake.exists(key)
    with pytest.raises(LakeError, match="does not exist"):
        lake.read_table(key)


def test_scratch_files_of_dead_writers_are_swept_after_the_orphan_age(lake):
    import os
    import time

    first = lake.staging_path(".parquet")
    stale = first.parent / ".0123456789abcdef.parquet.partial"  # a canceled simulation's trades file
    stale.write_bytes(b"half a file")
    old = time.time() - max(lake.settings.orphan_age_s, SCRATCH_MIN_AGE_S) - 60
    os.utime(stale, (old, old))
    fresh = first.parent / ".fedcba9876543210.parquet.partial"  # a writer still at work
    fresh.write_bytes(b"being written")
    lake.staging_path(".parquet")
    assert not stale.exists() and fresh.exists()
