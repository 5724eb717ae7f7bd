"""validate_bars and read_bars_file: good files in every accepted shape, and one clear error per broken file."""

import gzip
from datetime import date, datetime, timezone
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mochi_assets.market_data.bars import BARS_SCHEMA, validate_bars
from mochi_assets.market_data.imports import read_bars_file
from mochi_assets.market_data.synthetic import synthetic_minute_bars
from mochi_resources.errors import BarsError

UTC = timezone.utc
GOOD_ROWS = [
    ("2024-01-02T14:30:00Z", 1.0, 1.5, 0.9, 1.2, 10),
    ("2024-01-02T14:31:00Z", 1.2, 1.3, 1.1, 1.1, 0),
    ("2024-01-02T14:32:00Z", 1.1, 1.4, 1.0, 1.4, 5),
]
EXPECTED = pl.DataFrame(
    {
        "ts": [datetime(2024, 1, 2, 14, m, tzinfo=UTC) for m in (30, 31, 32)],
        "open": [1.0, 1.2, 1.1],
        "high": [1.5, 1.3, 1.4],
        "low": [0.9, 1.1, 1.0],
        "close": [1.2, 1.1, 1.4],
        "volume": [10.0, 0.0, 5.0],
    },
    schema=BARS_SCHEMA,
)


def write_csv(path: Path, header: str, rows) -> Path:
    lines = [header] + [",".join(str(v) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_good_csv_with_mixed_case_header_and_extra_column(tmp_path):
    rows = [(ts, "x", o, h, lo, c, v) for ts, o, h, lo, c, v in reversed(GOOD_ROWS)]
    path = write_csv(tmp_path / "bars.csv", "Timestamp,Note,OPEN,High,low,Close,Volume", rows)
    assert read_bars_file(path).equals(EXPECTED)


def test_good_csv_gz_with_offsets(tmp_path):
    rows = [("2024-01-02 09:30:00-05:00", 1.0, 1.5, 0.9, 1.2, 10), ("2024-01-02T15:31+01:00", 1.2, 1.3, 1.1, 1.1, 0),
            ("2024-01-02T14:32:00.000+00:00", 1.1, 1.4, 1.0, 1.4, 5)]
    text = "ts,open,high,low,close,volume\n" + "\n".join(",".join(map(str, r)) for r in rows) + "\n"
    path = tmp_path / "bars.csv.gz"
    path.write_bytes(gzip.compress(text.encode()))
    assert read_bars_file(path).equals(EXPECTED)


def test_good_parquet(tmp_path):
    path = tmp_path / "bars.parquet"
    EXPECTED.with_columns(pl.col("ts").dt.convert_time_zone("Europe/Paris"), pl.col("volume").cast(pl.Int64)).write_parquet(path)
    assert read_bars_file(path).equals(EXPECTED)
    naive = tmp_path / "naive.pq"
    EXPECTED.with_columns(pl.col("ts").dt.convert_time_zone("America/New_York").dt.replace_time_zone(None)).write_parquet(naive)
    assert read_bars_file(naive, file_timezone="America/New_York").equals(EXPECTED)


@pytest.mark.parametrize("scale", [1, 1000])
def test_epoch_csv(tmp_path, scale):
    epoch = [int(t.timestamp()) * scale for t in EXPECTED["ts"]]
    rows = [(e, *row[1:]) for e, row in zip(epoch, GOOD_ROWS)]
    path = write_csv(tmp_path / "epoch.csv", "time,open,high,low,close,volume", rows)
    assert read_bars_file(path).equals(EXPECTED)


def test_naive_timestamps_in_file_timezone(tmp_path):
    rows = [(f"2024-01-02 09:{m}:00", *row[1:]) for m, row in zip((30, 31, 32), GOOD_ROWS)]
    path = write_csv(tmp_path / "local.csv", "datetime,open,high,low,close,volume", rows)
    assert read_bars_file(path, file_timezone="America/New_York").equals(EXPECTED)
    # The same file read as UTC is five hours earlier.
    assert read_bars_file(path)["ts"][0] == datetime(2024, 1, 2, 9, 30, tzinfo=UTC)


def test_date_and_time_columns(tmp_path):
    rows = [("2024-01-02", f"14:{m}", *row[1:]) for m, row in zip((30, 31, 32), GOOD_ROWS)]
    path = write_csv(tmp_path / "export.csv", "Date,Time,Open,High,Low,Close,Volume", rows)
    assert read_bars_file(path).equals(EXPECTED)


def test_fall_back_hour_in_local_time(tmp_path):
    # 2024-11-03 01:30 happens twice in New York: first EDT (05:30 UTC), then EST (06:30 UTC).
    rows = [("2024-11-03 01:30", 1, 1, 1, 1, 1), ("2024-11-03 01:30", 1, 1, 1, 1, 1)]
    path = write_csv(tmp_path / "dst.csv", "ts,open,high,low,close,volume", rows)
    ts = read_bars_file(path, file_timezone="America/New_York")["ts"].to_list()
    assert [t.hour for t in ts] == [5, 6]


def bad_file(tmp_path, name, header, rows):
    return write_csv(tmp_path / name, header, rows)


@pytest.mark.parametrize(
    ("name", "header", "rows", "message"),
    [
        ("nocol.csv", "ts,open,high,low,volume", [("2024-01-02T00:00Z", 1, 2, 1, 1)], r"nocol\.csv: missing column\(s\) close"),
        ("nots.csv", "when,open,high,low,close,volume", [("2024-01-02T00:00Z", 1, 2, 1, 1, 1)], r"nots\.csv: missing column\(s\) ts"),
        ("badts.csv", "ts,open,high,low,close,volume", [("2024-01-02T00:00Z", 1, 2, 1, 1, 1), ("yesterday", 1, 2, 1, 1, 1)],
         r"badts\.csv: row 2: ts 'yesterday' is not a timestamp"),
        ("hilo.csv", "ts,open,high,low,close,volume", [("2024-01-02T00:00Z", 1, 2, 1, 1, 1), ("2024-01-02T00:01Z", 1.25, 1.2, 1.3, 1.25, 1)],
         r"hilo\.csv: row 2: high 1\.2 is below low 1\.3"),
        ("dup.csv", "ts,open,high,low,close,volume", [("2024-01-02T00:00Z", 1, 2, 1, 1, 1), ("2024-01-02T00:01Z", 1, 2, 1, 1, 1),
                                                      ("2024-01-02T00:00Z", 1, 2, 1, 1, 1)],
         r"dup\.csv: row 3: duplicate timestamp 2024-01-02 00:00:00\+00:00 \(also at row 1\)"),
        ("nan.csv", "ts,open,high,low,close,volume", [("2024-01-02T00:00Z", "abc", 2, 1, 1, 1)], r"nan\.csv: row 1: open 'abc' is not a number"),
        ("header.csv", "ts,open,high,low,close,volume", [], r"header\.csv: no bars"),
        ("bars.txt", "ts,open,high,low,close,volume", [("2024-01-02T00:00Z", 1, 2, 1, 1, 1)], r"bars\.txt: unknown file type"),
    ],
)
def test_broken_files(tmp_path, name, header, rows, message):
    with pytest.raises(BarsError, match=message):
        read_bars_file(bad_file(tmp_path, name, header, rows))


def test_empty_missing_and_unreadable_files(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(BarsError, match=r"empty\.csv: the file is empty"):
        read_bars_file(empty)
    with pytest.raises(BarsError, match=r"absent\.csv: file not found"):
        read_bars_file(tmp_path / "absent.csv")
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"this is not parquet")
    with pytest.raises(BarsError, match=r"broken\.parquet: cannot read the file"):
        read_bars_file(broken)


def test_validate_bars_problems():
    good = EXPECTED
    cases = [
        (good.with_columns(pl.lit(float("nan")).alias("close")), r"src: row 1: close is missing or not a finite number"),
        (good.with_columns(pl.Series("low", [0.9, -1.0, 1.0])), r"src: row 2: low -1\.0 is not a positive price"),
        (good.with_columns(pl.Series("open", [1.0, 1.2, 1.45])), r"src: row 3: open 1\.45 is outside the bar's range \[low 1\.0, high 1\.4\]"),
        (good.with_columns(pl.Series("volume", [1.0, -2.0, 0.0])), r"src: row 2: volume -2\.0 is negative"),
        (good.drop("volume"), r"src: missing column\(s\) volume"),
        (good.head(0), r"src: no bars"),
    ]
    for frame, message in cases:
        with pytest.raises(BarsError, match=message):
            validate_bars(frame, "src")


def test_validate_bars_normalizes_and_sorts():
    raw = EXPECTED.reverse().with_columns(
        pl.col("ts").dt.replace_time_zone(None).dt.cast_time_unit("ns"), pl.col("volume").cast(pl.Int32), extra=pl.lit("x")
    )
    assert validate_bars(raw, "src").equals(EXPECTED)


@settings(max_examples=5, deadline=None)
@given(day=st.dates(min_value=date(2010, 1, 4), max_value=date(2030, 12, 20)), fmt=st.sampled_from(["csv", "parquet"]))
def test_round_trip_of_synthetic_bars(tmp_path_factory, day, fmt):
    bars = synthetic_minute_bars("SYN:EURUSD", day, day)
    if bars.is_empty():
        return
    path = tmp_path_factory.mktemp("rt") / f"bars.{fmt}"
    if fmt == "csv":
        bars.write_csv(path)
    else:
        bars.write_parquet(path)
    assert read_bars_file(path).equals(bars)
