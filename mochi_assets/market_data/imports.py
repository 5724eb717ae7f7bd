"""Reading user bar files (`mochi import-bars TICKER FILE`) into a validated bars table.

Three formats, told apart by their first line (`format="auto"`) or chosen with `format`:

- generic: .csv, .csv.gz, .parquet, .pq with a header. Headers are case-insensitive; extra
  columns are ignored; `timestamp`, `datetime`, `time` or `date` stand for `ts` when `ts` is
  absent, and separate text `date` and `time` columns are joined. Timestamps may be ISO-8601 text
  (with an offset, or naive and then read in `file_timezone`, default UTC), integer epochs
  (seconds, milliseconds, microseconds or nanoseconds, told apart by magnitude) or Parquet dates
  and datetimes.
- histdata: HistData.com "Generic ASCII" M1 files, no header, one bar per line
  `YYYYMMDD HHMMSS;open;high;low;close;volume`. HistData states its timestamps in EST WITHOUT
  daylight saving, i.e. a fixed UTC-5 all year (zone `Etc/GMT+5`, POSIX sign convention), not
  America/New_York: 20240702 170000 is 22:00 UTC in July as in January. Timestamps are bar open
  times. Volume is usually 0 (no volume in FX); zero-volume bars are kept.
- dukascopy: Dukascopy (JForex / historical data feed) CSV exports with the header
  `Gmt time,Open,High,Low,Close,Volume` and times `dd.mm.yyyy HH:MM:SS.fff` in GMT (UTC), or
  `Local time` with an explicit offset suffix (`02.01.2024 00:00:00.000 GMT+0100`), which is
  honoured. Dukascopy fills periods without ticks (weekends, holidays) with flat bars of volume
  0 at the last price; those are not trades and are dropped, so missing minutes stay missing.

`file_timezone` (when given) overrides a format's own zone for timestamps without an offset.
Text files may also come as .txt, gzip (.gz) or a .zip holding one CSV/TXT file (HistData
downloads are zips). Rows in messages are counted from 1, header excluded (for HistData the
line number).

Limits (`mochi_resources.settings.Limits`), checked before a file is parsed: a file whose
content (decompressed, for .gz and .zip) exceeds MOCHI_MAX_IMPORT_BYTES, or that holds more
than MOCHI_MAX_IMPORT_ROWS rows, is refused naming the limit. Compressed files are inflated in
chunks and given up on as soon as the limit is passed, so a small file that inflates to
gigabytes costs at most the limit. Parquet files are checked from their footer (row count and
uncompressed size) before any column is read.

Epoch timestamps take their unit from their magnitude; a file mixing units (one millisecond
epoch among seconds) is an error naming the first row whose unit differs from the file's.
"""

from __future__ import annotations

import gzip
import io
import os
import re
import zipfile
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mochi_assets.market_data.bars import BAR_COLUMNS, check_timezone, validate_bars
from mochi_assets.market_data.localtime import utc_from_local
from mochi_resources.errors import BarsError
from mochi_resources.settings import Limits

_CHUNK = 1024 * 1024

TS_ALIASES = ["ts", "timestamp", "datetime", "time", "date"]

_OFFSET_FORMATS = ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M%z"]
_NAIVE_FORMATS = ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d"]
_OFFSET_PATTERN = r"T.*[+-]\d{2}:?\d{2}$"
# Layouts that Arrow's ISO-8601 cast reads as the formats above do (about 30 ns a row, against about
# 1 µs a row per format tried by polars): a column whose every row matches one of them is cast in one
# call; any other column, or one that the cast refuses (a 30th of February, a leap second), goes
# through the formats, so what is read and every error message are the same either way.
_FAST_AWARE = r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:?\d{2})$"
_FAST_NAIVE = r"^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?)?$"

# Epoch units by magnitude (_parse_epoch): at or above 1e17 ns, 1e14 us, 1e11 ms, below that s
# (1e11 s is the year 5138, 1e11 ms is 1973).
_UNIT_NAMES = {"ns": "nanoseconds", "us": "microseconds", "ms": "milliseconds", "s": "seconds"}


def _first_bad(mask: pl.Series) -> int:
    return int(mask.arg_true()[0])


def _localize(naive: pl.Series, file_timezone: str, raw: pl.Series, source: str) -> pl.Series:
    """Naive local datetimes -> UTC. In a repeated (fall-back) hour the first
    occurrence of a wall time is the earlier instant and the second the later one."""
    if file_timezone == "UTC":
        return naive.dt.replace_time_zone("UTC")
    # Wall times a day or more from a change of offset are one instant each (localtime.utc_from_local,
    # a compiled-speed pass); only the rows near a change are decided below, one tz lookup each.
    values = naive.dt.cast_time_unit("us").to_physical()
    utc, settled = utc_from_local(values.fill_null(0).to_numpy(), file_timezone)
    settled &= values.is_not_null().to_numpy()
    out = pl.Series(naive.name, utc, dtype=pl.Int64).cast(pl.Datetime("us", "UTC"))
    if settled.all():
        return out
    rest = pl.Series(np.flatnonzero(~settled))  # near a change of offset, or null
    return out.scatter(rest, _localize_near(naive.gather(rest), file_timezone, raw.gather(rest), source, rest))


def _localize_near(naive: pl.Series, file_timezone: str, raw: pl.Series, source: str, rows: pl.Series) -> pl.Series:
    """`_localize` with one tz-database lookup per row, for some of the file's rows (`rows`, their
    positions in it, for the error message): those near a change of offset."""
    earliest = naive.dt.replace_time_zone(file_timezone, ambiguous="earliest", non_existent="null")
    latest = naive.dt.replace_time_zone(file_timezone, ambiguous="latest", non_existent="null")
    bad = earliest.is_null() & naive.is_not_null()
    if bad.any():
        i = _first_bad(bad)
        raise BarsError(
            f"{source}: row {rows[i] + 1}: local time {raw[i]!r} does not exist in {file_timezone} (clock change)"
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
    fast = _fast_iso(text)
    if fast is not None:
        return (fast if fast.dtype.time_zone else _localize(fast, file_timezone, raw, source)).alias("ts")
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


def _fast_iso(text: pl.Series) -> pl.Series | None:
    """The column read by Arrow's ISO-8601 cast (UTC-aware if every row has an offset, naive if none
    has), or None when a row has another layout or the cast refuses one (see _FAST_AWARE)."""
    if text.len() == 0 or text.null_count():
        return None
    aware = re.fullmatch(_FAST_AWARE, text[0]) is not None  # the file's layout: its first row's
    if not text.str.contains(_FAST_AWARE if aware else _FAST_NAIVE).all():
        return None
    try:
        cast = pc.cast(text.to_arrow(), pa.timestamp("us", "UTC") if aware else pa.timestamp("us"))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    return pl.Series("ts", cast)


def _parse_epoch(values: pl.Series, raw: pl.Series, source: str) -> pl.Series:
    bad = values.is_null()
    if bad.any():
        i = _first_bad(bad)
        raise BarsError(f"{source}: row {i + 1}: ts {raw[i]!r} is not a timestamp")
    magnitude = values.abs().cast(pl.Float64)
    units = pl.select(
        pl.when(magnitude >= 1e17).then(pl.lit("ns"))
        .when(magnitude >= 1e14).then(pl.lit("us"))
        .when(magnitude >= 1e11).then(pl.lit("ms"))
        .otherwise(pl.lit("s"))
    ).to_series()
    counts = units.value_counts(sort=True)
    unit = counts.row(0)[0]  # the file's unit: the one most rows have
    if counts.height > 1:
        i = _first_bad(units != unit)
        raise BarsError(
            f"{source}: row {i + 1}: ts {raw[i]!r} is an epoch in {_UNIT_NAMES[units[i]]} while the file's "
            f"timestamps are in {_UNIT_NAMES[unit]} (mixed epoch units)"
        )
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


def _check_parquet(path: Path, source: str, limits: Limits) -> None:
    """Row count and uncompressed size from the footer, before any column is read."""
    try:
        meta = pq.read_metadata(path)
    except (OSError, ValueError) as exc:
        raise BarsError(f"{source}: cannot read the file ({str(exc).splitlines()[0]})") from None
    if meta.num_rows > limits.import_rows:
        raise BarsError(f"{source}: " + limits.over("import_rows", f"the file's {meta.num_rows:,} rows"))
    size = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    if size > limits.import_bytes:
        raise BarsError(f"{source}: " + limits.over("import_bytes", f"the file's uncompressed size ({size:,} bytes)"))


def _read_table(path: Path, source: str, limits: Limits) -> pl.DataFrame:
    name = path.name.lower()
    try:
        # Everything as text: this module parses and reports bad values itself.
        if name.endswith(".csv.gz"):
            return pl.read_csv(io.BytesIO(_text_bytes(path, source, limits)), infer_schema=False)
        if name.endswith(".csv"):
            size = path.stat().st_size
            if size > limits.import_bytes:
                raise BarsError(f"{source}: " + limits.over("import_bytes", f"the file's size ({size:,} bytes)"))
            table = pl.read_csv(path, infer_schema=False)
            if table.height > limits.import_rows:
                raise BarsError(f"{source}: " + limits.over("import_rows", f"the file's {table.height:,} rows"))
            return table
        if name.endswith(".parquet") or name.endswith(".pq"):
            _check_parquet(path, source, limits)
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


def read_bars_file(
    path: str | os.PathLike,
    *,
    file_timezone: str | None = None,
    format: str = "auto",
    limits: Limits | None = None,
) -> pl.DataFrame:
    """Read a bar file (generic, histdata or dukascopy, see the module docstring) into a validated
    bars table (see validate_bars), sorted by ts.

    Raises BarsError naming the file for: missing or unreadable file, unknown extension or
    format, a file over the import limits (default: from the environment), missing columns,
    unparsable timestamps (first bad row and value), and every problem validate_bars reports.
    """
    limits = limits or Limits.from_env()
    if format not in FORMATS:
        raise BarsError(f"format: {format!r} is not one of {', '.join(FORMATS)}")
    if file_timezone is not None:
        check_timezone(file_timezone, "timezone")
    path = Path(path)
    source = path.name
    if not path.exists():
        raise BarsError(f"{path}: file not found")
    if not path.is_file():
        raise BarsError(f"{path}: not a file")
    if path.stat().st_size == 0:
        raise BarsError(f"{source}: the file is empty")
    name = path.name.lower()
    is_parquet = name.endswith(".parquet") or name.endswith(".pq")
    if format == "auto":
        format = "generic" if is_parquet else detect_format(_head_bytes(path, source), source)
    if format == "histdata":
        return _read_histdata(_text_bytes(path, source, limits), source, file_timezone or HISTDATA_TIMEZONE)
    if format == "dukascopy":
        return _read_dukascopy(_text_bytes(path, source, limits), source, file_timezone)
    return _read_generic(path, source, file_timezone or "UTC", limits)


FORMATS = ("auto", "generic", "histdata", "dukascopy")
# EST without daylight saving: a fixed UTC-5 (POSIX zones invert the sign).
HISTDATA_TIMEZONE = "Etc/GMT+5"
_HISTDATA_LINE = re.compile(r"^\d{8} \d{6};")
_DUKASCOPY_HEADER = re.compile(r"^(gmt|local) time\s*[,;]", re.IGNORECASE)


def _open_text(path: Path, source: str, archive_stack: list):
    """A binary stream of the text inside `path`: plain, gzip or the one CSV/TXT member of a zip."""
    name = path.name.lower()
    if name.endswith(".gz"):
        return gzip.open(path, "rb")
    if name.endswith(".zip"):
        archive = zipfile.ZipFile(path)
        archive_stack.append(archive)
        members = [m for m in archive.namelist() if m.lower().endswith((".csv", ".txt"))]
        if len(members) != 1:
            raise BarsError(f"{source}: the zip holds {len(members)} CSV/TXT files, expected exactly one")
        return archive.open(members[0])
    return path.open("rb")


def _read_limited(path: Path, source: str, limit: int | None) -> bytes:
    """Up to `limit` + 1 bytes of the text in `path` (all of it when `limit` is None), inflating
    compressed files one chunk at a time so that a bomb never inflates past the limit."""
    archives: list = []
    try:
        with _open_text(path, source, archives) as stream:
            parts, size = [], 0
            while limit is None or size <= limit:
                chunk = stream.read(_CHUNK if limit is None else min(_CHUNK, limit + 1 - size))
                if not chunk:
                    break
                parts.append(chunk)
                size += len(chunk)
            return b"".join(parts)
    except (OSError, EOFError, zipfile.BadZipFile, gzip.BadGzipFile) as exc:
        raise BarsError(f"{source}: cannot read the file ({exc})") from None
    finally:
        for archive in archives:
            archive.close()


def _head_bytes(path: Path, source: str) -> bytes:
    """The first 64 KB of the text (enough to recognize the format)."""
    return _read_limited(path, source, 64 * 1024 - 1)


def _text_bytes(path: Path, source: str, limits: Limits) -> bytes:
    """The bytes of a text file, unpacked from .gz or a one-member .zip, within the import limits."""
    name = path.name.lower()
    if not name.endswith((".gz", ".zip")) and path.stat().st_size > limits.import_bytes:
        size = path.stat().st_size
        raise BarsError(f"{source}: " + limits.over("import_bytes", f"the file's size ({size:,} bytes)"))
    data = _read_limited(path, source, limits.import_bytes)
    if len(data) > limits.import_bytes:
        raise BarsError(
            f"{source}: " + limits.over("import_bytes", "the decompressed content") + "; refused before inflating further"
        )
    lines = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
    if lines - 1 > limits.import_rows:  # the header (or one spare line) is not a row
        raise BarsError(f"{source}: " + limits.over("import_rows", f"the file's {lines - 1:,}+ rows"))
    return data


def detect_format(data: bytes, source: str) -> str:
    """'histdata', 'dukascopy' or 'generic', from the first non-empty line."""
    text = data.decode("utf-8-sig", errors="replace")
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    if not first:
        raise BarsError(f"{source}: the file is empty")
    if _HISTDATA_LINE.match(first):
        return "histdata"
    if _DUKASCOPY_HEADER.match(first):
        return "dukascopy"
    return "generic"


def _lines(data: bytes, source: str) -> pl.Series:
    """Non-empty lines of a text file (a trailing newline or blank lines are not rows)."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BarsError(f"{source}: not a text file (not UTF-8)") from None
    lines = [line.strip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    if not lines:
        raise BarsError(f"{source}: the file is empty")
    return pl.Series("line", lines, dtype=pl.String)


def _split_fields(lines: pl.Series, separator: str, count: int, source: str, layout: str,
                  first_row: int = 1) -> pl.DataFrame:
    parts = lines.str.split(separator)
    bad = parts.list.len() != count
    if bad.any():
        i = _first_bad(bad)
        raise BarsError(
            f"{source}: row {i + first_row}: {lines[i]!r} has {parts[i].len()} fields, expected {count} ({layout})"
        )
    return pl.DataFrame({f"f{k}": parts.list.get(k).str.strip_chars() for k in range(count)})


def _read_histdata(data: bytes, source: str, file_timezone: str) -> pl.DataFrame:
    layout = "YYYYMMDD HHMMSS;open;high;low;close;volume"
    fields = _split_fields(_lines(data, source), ";", 6, source, layout)
    raw = fields.get_column("f0")
    naive = raw.str.to_datetime("%Y%m%d %H%M%S", time_unit="us", strict=False)
    bad = naive.is_null()
    if bad.any():
        i = _first_bad(bad)
        raise BarsError(f"{source}: row {i + 1}: {raw[i]!r} is not a HistData timestamp (YYYYMMDD HHMMSS)")
    table = pl.DataFrame({"ts": _localize(naive, file_timezone, raw, source)}).with_columns(
        fields.select(pl.col(f"f{k + 1}").alias(c) for k, c in enumerate(BAR_COLUMNS[1:]))
    )
    return validate_bars(table, source=source)


_DUKASCOPY_COLUMNS = ["time", "open", "high", "low", "close", "volume"]
_DUKASCOPY_TS = re.compile(
    r"^(\d{2})\.(\d{2})\.(\d{4}) (\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?(?: ?GMT([+-]\d{2}):?(\d{2}))?$"
)


def _read_dukascopy(data: bytes, source: str, file_timezone: str | None) -> pl.DataFrame:
    lines = _lines(data, source)
    header = lines[0]
    separator = ";" if header.count(";") > header.count(",") else ","
    names = [h.strip().lower() for h in header.split(separator)]
    if len(names) != 6 or names[0] not in ("gmt time", "local time") or names[1:] != _DUKASCOPY_COLUMNS[1:]:
        raise BarsError(
            f"{source}: header {header!r} is not a Dukascopy export (expected 'Gmt time,Open,High,Low,Close,Volume')"
        )
    body = lines.slice(1)
    if body.is_empty():
        raise BarsError(f"{source}: no bars (the file has a header but no rows)")
    fields = _split_fields(body, separator, 6, source, "time,open,high,low,close,volume")
    raw = fields.get_column("f0")
    parts = raw.str.extract_groups(_DUKASCOPY_TS.pattern)
    bad = parts.struct.field("1").is_null()
    if bad.any():
        i = _first_bad(bad)
        raise BarsError(f"{source}: row {i + 1}: time {raw[i]!r} is not a Dukascopy time (dd.mm.yyyy HH:MM:SS.fff)")
    p = pl.DataFrame({f"g{k}": parts.struct.field(str(k)) for k in range(1, 10)})
    iso = p.select(
        pl.format("{}-{}-{}T{}:{}:{}.{}", "g3", "g2", "g1", "g4", "g5", pl.col("g6").fill_null("00"),
                  pl.col("g7").fill_null("0").str.pad_end(6, "0"))
    ).to_series()
    naive = iso.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f", time_unit="us", strict=False)
    bad = naive.is_null()
    if bad.any():
        i = _first_bad(bad)
        raise BarsError(f"{source}: row {i + 1}: time {raw[i]!r} is not a valid date and time")
    has_offset = p.get_column("g8").is_not_null()
    if has_offset.any() and not has_offset.all():
        i = _first_bad(~has_offset)
        raise BarsError(f"{source}: row {i + 1}: time {raw[i]!r} has no GMT offset while other rows have one")
    if has_offset.all():
        sign = pl.when(p.get_column("g8").str.starts_with("-")).then(-1).otherwise(1)
        offset_min = p.select(
            (pl.col("g8").str.slice(1).cast(pl.Int64).abs() * 60 + pl.col("g9").cast(pl.Int64)) * sign
        ).to_series()
        # "Local time" exports carry their offset: local = UTC + offset.
        ts = pl.DataFrame({"n": naive, "o": offset_min}).select(
            (pl.col("n") - pl.duration(minutes=pl.col("o"))).dt.replace_time_zone("UTC").alias("ts")
        ).to_series()
    else:
        ts = _localize(naive, file_timezone or "UTC", raw, source)
    table = pl.DataFrame({"ts": ts}).with_columns(
        fields.select(pl.col(f"f{k + 1}").alias(c) for k, c in enumerate(BAR_COLUMNS[1:]))
    )
    bars = validate_bars(table, source=source)
    flat = (pl.col("volume") == 0) & (pl.col("open") == pl.col("high")) & (pl.col("low") == pl.col("high")) & (
        pl.col("close") == pl.col("high"))
    bars = bars.filter(~flat)
    if bars.is_empty():
        raise BarsError(f"{source}: every bar is a flat filler bar with volume 0 (no trading in the file)")
    return bars


def _read_generic(path: Path, source: str, file_timezone: str, limits: Limits) -> pl.DataFrame:
    table = _read_table(path, source, limits)

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
