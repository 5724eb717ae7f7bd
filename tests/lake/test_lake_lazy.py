"""Nothing loaded that is not read: the IO manager's tables are lazy at the storage level.

An asset with three tables (like `raw_bars`: minute, hour and day bars) feeds a step that reads
one column of the large one. A spy on the store counts what is opened or fetched: only that
table, on the local lake (where polars then reads only that column's byte ranges) and on S3 (the
SeaweedFS fixture; there the one table is fetched whole, in one GET, when collected).
"""

from __future__ import annotations

import io
import os
from collections import Counter

import dagster as dg
import numpy as np
import polars as pl
import pytest

from mochi_resources.errors import LakeError, MochiError
from mochi_resources.io_manager import LakeIOManager, LakeResource, LakeTables, lake_metadata
from mochi_resources.lake import Lake
from mochi_resources.s3 import S3Store
from mochi_resources.settings import MochiSettings
from mochi_resources.sql_engine import DuckDBEngine, ParquetFile
from mochi_resources.stores import KeyMissing, LocalStore
from tests.instances import mochi_instance_for_test

TICKER = "SYN_LAZY"
ROWS = 400_000
TABLES = ["bars_minute", "bars_hour", "bars_day"]
PARTS = dg.StaticPartitionsDefinition([TICKER])


def _bars(rows: int, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    return pl.DataFrame({
        "ts": np.arange(rows, dtype=np.int64),
        **{c: rng.random(rows) for c in ("open", "high", "low", "close", "volume")},
    })


@dg.asset(partitions_def=PARTS, metadata=lake_metadata("raw", tables=TABLES))
def raw_bars() -> dict:
    return {"bars_minute": _bars(ROWS, 1), "bars_hour": _bars(ROWS // 60, 2), "bars_day": _bars(ROWS // 1440, 3)}


@dg.asset(partitions_def=PARTS, metadata=lake_metadata("prepared"))
def closes(raw_bars: dict) -> pl.DataFrame:
    return raw_bars["bars_minute"].select(pl.col("close").sum()).collect()


class StoreSpy:
    """Counts the objects the stores open or fetch (and the bytes of each fetch)."""

    def __init__(self, monkeypatch):
        self.opened: Counter[str] = Counter()
        self.fetched_bytes: Counter[str] = Counter()
        spy = self

        def wrap(cls, name):
            original = getattr(cls, name)

            def counted(store, key, *args, **kwargs):
                result = original(store, key, *args, **kwargs)
                spy.opened[key] += 1
                if isinstance(result, bytes):
                    spy.fetched_bytes[key] += len(result)
                elif cls is S3Store:  # one GET's body, in memory or in a temporary file
                    in_memory = isinstance(result, io.BytesIO)
                    spy.fetched_bytes[key] += len(result.getbuffer()) if in_memory else os.fstat(result.fileno()).st_size
                return result

            monkeypatch.setattr(cls, name, counted)

        wrap(LocalStore, "open")
        wrap(LocalStore, "get_bytes")
        wrap(S3Store, "get_bytes")
        wrap(S3Store, "open")  # one GET, into memory or a temporary file

    def tables(self) -> dict[str, int]:
        """How often each table of the asset was opened or fetched."""
        return {t: sum(n for k, n in self.opened.items() if f"/{t}/" in k) for t in TABLES}

    def reset(self) -> None:
        self.opened.clear()
        self.fetched_bytes.clear()


def _materialize(selection) -> dg.MaterializeResult:
    resources = {"io_manager": LakeIOManager(lake=LakeResource())}
    with mochi_instance_for_test() as instance:
        result = dg.materialize([raw_bars, closes], selection=selection, partition_key=TICKER,
                                instance=instance, resources=resources)
    assert result.success
    return result


def _check_one_table_read(spy: StoreSpy) -> None:
    _materialize([raw_bars])
    spy.reset()
    _materialize([closes])
    assert spy.tables() == {"bars_minute": 1, "bars_hour": 0, "bars_day": 0}
    lake = Lake(MochiSettings.from_env())
    expected = _bars(ROWS, 1)["close"].sum()
    assert lake.read_table(lake.key("prepared", "closes", TICKER))["close"].item() == pytest.approx(expected, rel=1e-12)


def test_io_manager_reads_one_table_of_three_on_the_local_lake(local_env, monkeypatch):
    _check_one_table_read(StoreSpy(monkeypatch))


def test_io_manager_reads_one_table_of_three_on_s3(s3_env, monkeypatch):
    spy = StoreSpy(monkeypatch)
    _check_one_table_read(spy)
    # that table was fetched once, whole (one GET: one version of the object)
    lake = Lake(MochiSettings.from_env())
    minute = lake.key("raw", "bars_minute", TICKER)
    assert spy.fetched_bytes[minute] == len(lake.get_bytes(minute))


def _rchar() -> int:
    with open("/proc/self/io") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("rchar"))


@pytest.mark.skipif(not os.path.exists("/proc/self/io"), reason="counts read bytes with Linux's /proc/self/io")
def test_a_local_scan_reads_only_the_projected_column(local_env):
    lake = Lake(MochiSettings.from_env())
    key = lake.key("raw", "bars_minute", TICKER)
    lake.put_table(key, _bars(ROWS, 1))
    size = os.path.getsize(lake.uri(key))
    before = _rchar()
    frame = lake.scan_table(key)
    assert _rchar() - before < 4096  # nothing read yet (the existence check is a stat)
    total = frame.select(pl.col("close").sum()).collect().item()
    read = _rchar() - before
    assert total == pytest.approx(_bars(ROWS, 1)["close"].sum(), rel=1e-12)
    assert read < size * 0.4, f"read {read} bytes of a {size}-byte file for one column of six"


@pytest.fixture(params=["local", "s3"])
def any_lake(request) -> Lake:
    request.getfixturevalue("local_env" if request.param == "local" else "s3_env")
    return Lake(MochiSettings.from_env())


def test_a_scan_reads_one_version_even_if_the_table_is_replaced(any_lake):
    lake = any_lake
    folder = lake.folder_key("raw", "bars_day", TICKER)
    lake.replace_folder(folder, {"data.parquet": pl.DataFrame({"v": [1, 2, 3]})})
    frame = lake.scan_table(f"{folder}/data.parquet")
    assert frame.select(pl.col("v").sum()).collect().item() == 6  # the version is pinned here
    lake.replace_folder(folder, {"data.parquet": pl.DataFrame({"v": [10, 20], "w": ["a", "b"]})})
    assert frame.collect()["v"].to_list() == [1, 2, 3]
    assert frame.collect_schema().names() == ["v"]
    assert lake.scan_table(f"{folder}/data.parquet").collect()["v"].to_list() == [10, 20]


def test_a_missing_table_fails_at_load_and_a_damaged_one_when_collected(any_lake):
    lake = any_lake
    missing = lake.key("raw", "bars_day", "SYN_NONE")
    with pytest.raises(KeyMissing, match=f"{lake.uri(missing)} does not exist"):
        lake.scan_table(missing)
    damaged = lake.key("raw", "bars_day", TICKER)
    lake.put_bytes(damaged, b"PAR1 this is not parquet PAR1")
    frame = lake.scan_table(damaged)  # nothing is read before the collect
    for query in (frame, frame.select("v")):
        with pytest.raises((LakeError, pl.exceptions.ComputeError), match="not a readable Parquet file") as info:
            query.collect()
        assert lake.uri(damaged) in str(info.value)
    with pytest.raises(LakeError, match=f"{lake.uri(damaged)}: not a readable Parquet file"):
        lake.read_table(damaged)


def test_duckdb_reads_the_pinned_version_of_a_local_table_itself(local_env):
    """`local_parquet` hands DuckDB the version the step's frames read: a commit that replaces
    the table afterwards changes neither what DuckDB reads nor what polars reads."""
    lake = Lake(MochiSettings.from_env())
    folder = lake.folder_key("raw", "bars_day", TICKER)
    lake.replace_folder(folder, {"data.parquet": pl.DataFrame({"v": [1, 2, 3], "w": [0.5, 0.5, 0.5]})})
    tables = LakeIOManager(lake=LakeResource())._load_one(
        lake, lake_metadata("raw", tables=["bars_day"]), "raw_bars", TICKER, None)
    assert isinstance(tables, LakeTables)
    path = tables.local_parquet("bars_day")
    assert path is not None and path.startswith("/proc/self/fd/")
    lake.replace_folder(folder, {"data.parquet": pl.DataFrame({"v": [10, 20], "w": [1.0, 1.0]})})
    engine = DuckDBEngine(threads=1)
    source = ParquetFile(path, ("v",), label="bars_day")
    assert engine.query("SELECT SUM(v) AS s, COUNT(*) AS n FROM t", {"t": source}).rows() == [(6, 3)]
    assert tables["bars_day"].select(pl.col("v").sum()).collect().item() == 6
    with pytest.raises(MochiError, match="SQL input table 't': bars_day has no column"):
        engine.query("SELECT 1", {"t": ParquetFile(path, ("v", "x"), label="bars_day")})
    fresh = LakeIOManager(lake=LakeResource())._load_one(
        lake, lake_metadata("raw", tables=["bars_day"]), "raw_bars", TICKER, None)
    assert engine.query("SELECT SUM(v) AS s FROM t", {"t": ParquetFile(fresh.local_parquet("bars_day"), ("v",))}).rows() == [(30,)]


def test_a_small_s3_table_is_read_in_memory_and_a_large_one_from_a_temporary_file(s3_env, monkeypatch):
    """S3Store.open keeps a small object's body in memory (no local path: DuckDB gets the frame)
    and writes a large one to a temporary file, which DuckDB and polars' streaming scan read by
    path as on a folder lake; the file is unlinked, so it goes with the handle."""
    import mochi_resources.s3 as s3_module

    monkeypatch.setattr(s3_module, "SPOOL_IN_MEMORY", 64 * 1024)
    lake = Lake(MochiSettings.from_env())
    small, large = pl.DataFrame({"v": [1, 2, 3]}), _bars(ROWS, 4)
    lake.replace_folder(lake.folder_key("raw", "bars_day", TICKER), {"data.parquet": small})
    lake.replace_folder(lake.folder_key("raw", "bars_minute", TICKER), {"data.parquet": large})
    tables = LakeIOManager(lake=LakeResource())._load_one(
        lake, lake_metadata("raw", tables=["bars_day", "bars_minute"]), "raw_bars", TICKER, None)
    assert tables.local_parquet("bars_day") is None
    assert tables["bars_day"].select(pl.col("v").sum()).collect().item() == 6
    path = tables.local_parquet("bars_minute")
    assert path is not None and path.startswith("/proc/self/fd/")
    assert os.readlink(path).endswith("(deleted)")  # unlinked: freed with the handle
    expected = large["close"].sum()
    got = DuckDBEngine().query("SELECT SUM(close) AS s FROM t", {"t": ParquetFile(path, ("close",))}).item()
    assert got == pytest.approx(expected, rel=1e-12)
    streamed = tables.scan("bars_minute").select(pl.col("close").sum()).collect(engine="streaming").item()
    assert streamed == pytest.approx(expected, rel=1e-12)


def test_an_s3_object_without_room_for_its_temporary_file_fails_naming_it(s3_env, monkeypatch):
    """A full disk (or no writable temporary folder) while a large object is read: one LakeError
    naming the object and TMPDIR, and no temporary file left open."""
    import errno
    import tempfile as tempfile_module

    import mochi_resources.s3 as s3_module

    monkeypatch.setattr(s3_module, "SPOOL_IN_MEMORY", 64 * 1024)
    lake = Lake(MochiSettings.from_env())
    key = lake.key("raw", "bars_minute", TICKER)
    lake.put_table(key, _bars(ROWS, 5))
    opened = []
    real_temporary_file = tempfile_module.TemporaryFile

    class FullDisk:
        def __init__(self, *args, **kwargs):
            self.inner = real_temporary_file()
            opened.append(self)
            self.closed = False

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

        def close(self):
            self.closed = True
            self.inner.close()

    monkeypatch.setattr(s3_module.tempfile, "TemporaryFile", FullDisk)
    with pytest.raises(LakeError, match=r"s3://.*bars_minute.*No space left on device.*TMPDIR"):
        lake.store.open(key)
    assert opened and all(handle.closed for handle in opened)
