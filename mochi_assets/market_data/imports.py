"""Reading user bar files (`mochi import-bars TICKER FILE`): CSV or Parquet into a validated bars table.

Accepted: .csv, .csv.gz, .parquet, .pq. Headers are case-insensitive; extra
columns are ignored; `timestamp`, `datetime`, `time` or `date` stand for `ts`
when `ts` is absent, and separate text `date` and `time` columns are joined. Timestamps may be ISO-8601 text (with an offset, or naive
and then read in `file_timezone`), integer epochs (seconds, milliseconds,
microseconds or nanoseconds, told apart by magnitude) or Parquet dates and
datetimes. Rows in messages are counted from 1, the header excluded.
"""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl

from mochi_assets.market_data.bars import BAR_COLUMNS, check_timezone, validate_bars
from mochi_resources.errors import BarsError

TS_ALIASES = ["ts", "timestamp", "datetime", "time", "date"]

_OFFSET_FORMATS = ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M%z"]
_NAIVE_FORMATS = ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d"]
_OFFSET_PATTERN = r"T.*[+-]\d{2}:?\d{2}$"

# Epoch magnitudes: anything at or above the bound is in the finer unit
# (1e11 s is the year 5138, 1e11 ms is 1973).
_EPOCH_UNITS = [(1e17, "ns"), (1e14, "us"), (1e11, "ms"), (0, "s")]


def _first_bad(mask: pl.Series) -> int:
    return int(mask.arg_true()[0])


def _localize(naive: pl.Series, file_timezone: str, raw: pl.Series, source: str) -> pl.Series:
    """Naive local datetimes -> UTC. In a repeated (fall-back) hour the first
    occurrence of a wall time is the earlier instant and the second the later one."""
    if file_timezone == "UTC":
        return naive.dt.replace_time_zone("UTC")
    earliest = naive.dt.replace_time_zone(file_timezone, ambiguous="earliest", non_existent="null")
    latest = naive.dt.replace_time_zone(file_timezone, ambiguous="latest", non_existent="null")
    bad = earliest.is_null() & naive.is_not_null()
    if bad.any():
        i = _first_bad(bad)
        raise BarsError(
            f"{source}: row {i + 1}: local time {raw[i]!r} does not exist in {file_timezone} (clock change)"
        )
    frame = pl.DataFrame({"naive": naive, "earliest": earliest, "latest": latest})
    occurrence = frame.select(pl.int_range(pl.len()).over("naive").alias("n")).get_column("n")
    use_latest = (earliest != latest).fill_null(False) & (occurrence >= 1)
    return (
        pl.DataFrame({"e": earliest, "l": latest, "u": use_latest})
        .select(pl.when(pl.col("u")).then(pl.col("l")).otherwise(pl.col("e")).dt.convert_time_zone("UTC"))
        .to_series()
    )


def _parse_text_ts(raw: pl.Series, file_timezone: str, source: str) -> pl.Series:
    text = raw.str.strip_chars()
    if text.str.contains(r"^[+-]?\d+$").fill_null(True).all() and text.is_not_null().any():
        return _parse_epoch(text.cast(pl.Int64, strict=False), raw, source)
    # One spelling for the parser: "T" between date and time, "Z" as an explicit offset.
    norm = text.str.replace(r"^(\d{4}-\d{2}-\d{2})[ T]", "${1}T").str.replace(r"[Zz]$", "+00:00")
    has_offset = norm.str.contains(_OFFSET_PATTERN).fill_null(False)
    aware = pl.Series("ts", [None] * len(norm), dtype=pl.Datetime("us", "UTC"))
    for fmt in _OFFSET_FORMATS:
        aware = aware.fill_null(norm.str.to_datetime(fmt, time_unit="us", time_zone="UTC", strict=False))
    naive = pl.Series("ts", [None] * len(norm), dtype=pl.Datetime("us"))
    for fmt in _NAIVE_FORMATS:
        naive = naive.fill_null(norm.str.to_datetime(fmt, time_unit="us", strict=False))
    naive = pl.select(pl.when(has_offset).then(None).otherwise(naive)).to_series()
    aware = pl.select(pl.when(has_offset).then(aware).otherwise(None)).to_series()
    bad = aware.is_null() & naive.is_null()
    if bad.any():
        i = _first_bad(bad)
        value = raw[i]
        what = "is empty" if value is None or str(value).strip() == "" else f"{value!r} is not a timestamp"
        raise BarsError(
            f"{source}: row {i + 1}: ts {what} (use ISO-8601 such as 2024-01-02T09:30:00Z, or epoch seconds/ms)"
        )
    local = _localize(naive, file_timezone, raw, source)
    return aware.fill_null(local).alias("ts")


def _parse_epoch(values: pl.Series, raw: pl.Series, source: str) -> pl.Series:
    bad = values.is_null()
    if bad.any():
        i = _first_bad(bad)
        raise BarsError(f"{source}: row {i + 1}: ts {raw[i]!r} is not a timestamp")
    magnitude = float(values.abs().max())
    unit = next(u for bound, u in _EPOCH_UNITS if magnitude >= bound)
    ts = pl.select(pl.from_epoch(values, time_unit=unit)).to_series()
    return ts.dt.replace_time_zone("UTC").dt.cast_time_unit("us").alias("ts")


def _parse_ts(raw: pl.Series, file_timezone: str, source: str) -> pl.Series:
    dtype = raw.dtype
    if isinstance(dtype, pl.Datetime):
        if dtype.time_zone is None:
            return _localize(raw.dt.cast_time_unit("us"), file_timezone, raw, source).alias("ts")
        return raw.dt.convert_time_zone("UTC").dt.cast_time_unit("us").alias("ts")
    if dtype == pl.Date:
        return _localize(raw.cast(pl.Datetime("us")), file_timezone, raw, source).alias("ts")
    if dtype.is_integer():
        return _parse_epoch(raw.cast(pl.Int64), raw, source)
    if dtype.is_float():
        whole = raw.is_not_null() & raw.is_finite() & (raw == raw.floor())
        if not whole.all():
            i = _first_bad(~whole)
            raise BarsError(f"{source}: row {i + 1}: ts {raw[i]!r} is not a whole epoch number")
        return _parse_epoch(raw.cast(pl.Int64), raw, source)
    if dtype == pl.String:
        return _parse_text_ts(raw, file_timezone, source)
    raise BarsError(f"{source}: column ts has type {dtype}, expected timestamps")


def _read_table(path: Path, source: str) -> pl.DataFrame:
    name = path.name.lower()
    try:
        if name.endswith(".csv") or name.endswith(".csv.gz"):
            # Everything as text: this module parses and reports bad values itself.
            return pl.read_csv(path, infer_schema=False)
        if name.endswith(".parquet") or name.endswith(".pq"):
            return pl.read_parquet(path)
    except pl.exceptions.NoDataError:
        raise BarsError(f"{source}: the file is empty") from None
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise BarsError(f"{source}: cannot read the file ({str(exc).splitlines()[0]})") from None
    raise BarsError(f"{source}: unknown file type (expected .csv, .csv.gz, .parquet or .pq)")


def _ts_from_aliases(table: pl.DataFrame) -> pl.DataFrame:
    """Name the timestamp column ts; separate text `date` and `time` columns
    (a common export layout) are joined into one timestamp."""
    cols = set(table.columns)
    if {"date", "time"} <= cols and not cols & {"timestamp", "datetime"}:
        if table.schema["date"] == pl.String and table.schema["time"] == pl.String:
            joined = pl.concat_str(pl.col("date").str.strip_chars(), pl.lit("T"), pl.col("time").str.strip_chars())
            return table.with_columns(joined.alias("ts")).drop("date", "time")
    alias = next((a for a in TS_ALIASES if a in cols), None)
    return table if alias is None else table.rename({alias: "ts"})


def read_bars_file(path: str | os.PathLike, *, file_timezone: str = "UTC") -> pl.DataFrame:
    """Read a CSV or Parquet bar file into a validated bars table (see validate_bars), sorted by ts.

    Raises BarsError naming the file for: missing or unreadable file, unknown
    extension, missing columns, unparsable timestamps (first bad row and
    value), and every problem validate_bars reports.
    """
    check_timezone(file_timezone, "timezone")
    path = Path(path)
    source = path.name
    if not path.exists():
        raise BarsError(f"{path}: file not found")
    if not path.is_file():
        raise BarsError(f"{path}: not a file")
    if path.stat().st_size == 0:
        raise BarsError(f"{source}: the file is empty")
    table = _read_table(path, source)

    found = ", ".join(table.columns) or "none"
    wanted = set(TS_ALIASES + BAR_COLUMNS)
    keep: dict[str, str] = {}
    for original in table.columns:
        low = original.strip().lower()
        if low in wanted:
            if low in keep.values():
                raise BarsError(f"{source}: column {original!r} appears twice (headers are case-insensitive)")
            keep[original] = low
    table = table.select(list(keep)).rename(keep)
    if "ts" not in table.columns:
        table = _ts_from_aliases(table)
    missing = [c for c in BAR_COLUMNS if c not in table.columns]
    if missing:
        raise BarsError(
            f"{source}: missing column(s) {', '.join(missing)} "
            f"(bars need {', '.join(BAR_COLUMNS)}; found {found})"
        )
    if table.height == 0:
        raise BarsError(f"{source}: no bars (the file has a header but no rows)")
    table = table.select(BAR_COLUMNS).with_columns(_parse_ts(table.get_column("ts"), file_timezone, source))
    return validate_bars(table, source=source)
