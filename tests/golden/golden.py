"""The fixed small backtest of the golden test, and how its outputs become comparable CSV files.

Used by `test_golden.py` (compare) and by `MOCHI_UPDATE_GOLDEN=1 pytest tests/golden` (rewrite
`expected/`). Nothing here is timed or random: SYN:GOLD bars come from a seeded generator.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import polars as pl

EXPECTED = Path(__file__).resolve().parent / "expected"
REL_TOL = 1e-12  # floats: equal up to this relative difference (plus ABS_TOL around zero)
ABS_TOL = 1e-12

# About three months of SYN:GOLD, one scenario family with an explicit grid of 36 traders (one
# family: each one costs a Dagster run of ten steps, the suite must stay short).
REQUEST = {
    "ticker": "SYN:GOLD",
    "start": "2024-01-02",
    "end": "2024-03-29",
    "atr": {"short": 3, "long": 5, "alpha": 0.5},
    "entry_times": ["09:30", "14:00"],
    "duration_min": 120,
    "timeout_min": 30,
    "cost_ticks": 2,
    "scenarios": {
        "breakout-short": {"direction": "short", "offset_ticks": [0, 10], "stop_atr": [0.5, 1.0, 1.5],
                           "limit_atr": [1.0, 2.0, 3.0]},
    },
}

# What is compared: every table of these buckets and every CSV file of the graphs.
TABLE_BUCKETS = ("aggregates", "rankings")
CSV_BUCKETS = ("graphs", "rankings")  # years/stops/best_traders graphs; walk_forward's CSV
# Columns that legitimately differ between two runs of the same backtest (none so far: the
# outputs hold no run timestamps, run ids or lake paths; add such a column here with a reason).
VARYING_COLUMNS: dict[str, set[str]] = {}


def golden_outputs(lake, ticker_key: str, scenarios: list[str]) -> dict[str, str]:
    """Every compared output as CSV text, keyed by its file name under `expected/`.

    Tables (Parquet) are written with polars' CSV writer, whose float text is the shortest one that
    round-trips, so equal values give equal text; columns in VARYING_COLUMNS are dropped.
    """
    out: dict[str, str] = {}
    for bucket in TABLE_BUCKETS:
        bucket_name = lake.settings.bucket(bucket)
        for scenario in [None, *scenarios]:
            for key in lake.list_files(bucket, None, ticker_key, scenario, suffix=".parquet"):
                rest = key[len(bucket_name) + 1:].split("/")
                table = rest[0]
                if scenario is None and any(p.startswith("scenario=") for p in rest):
                    continue  # a per-scenario table: listed again with its scenario
                df = lake.read_table(key)
                df = df.drop([c for c in VARYING_COLUMNS.get(table, ()) if c in df.columns])
                name = f"{bucket}/{table}{'__' + scenario if scenario else ''}.csv"
                out[name] = df.write_csv(float_precision=None)
    for bucket in CSV_BUCKETS:
        for scenario in scenarios:
            for key in lake.list_files(bucket, None, ticker_key, scenario, suffix=".csv"):
                graph = key.split("/")[1]
                file = key.rsplit("/", 1)[1]
                out[f"{bucket}/{graph}__{scenario}__{file}"] = lake.get_bytes(key).decode()
    return out


def write_expected(outputs: dict[str, str]) -> None:
    """Replace `expected/` by these outputs (a deliberate update: review the diff before committing)."""
    if EXPECTED.exists():
        for path in EXPECTED.rglob("*.csv"):
            path.unlink()
    for name, text in outputs.items():
        path = EXPECTED / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def read_expected() -> dict[str, str]:
    return {p.relative_to(EXPECTED).as_posix(): p.read_text() for p in sorted(EXPECTED.rglob("*.csv"))}


def _same_cell(want: str, got: str) -> bool:
    if want == got:
        return True
    try:
        a, b = float(want), float(got)
    except ValueError:
        return False
    if math.isnan(a) and math.isnan(b):
        return True
    return math.isclose(a, b, rel_tol=REL_TOL, abs_tol=ABS_TOL)


def first_difference(name: str, want: str, got: str) -> str | None:
    """None when the two CSV texts hold the same table (floats within REL_TOL); else where they differ."""
    if want == got:
        return None
    want_rows = list(csv.reader(io.StringIO(want)))
    got_rows = list(csv.reader(io.StringIO(got)))
    header = want_rows[0] if want_rows else []
    for i, (w, g) in enumerate(zip(want_rows, got_rows)):
        if len(w) != len(g):
            return f"{name}: row {i} (line {i + 1}) has {len(g)} fields, expected {len(w)}:\n  expected {w}\n  got      {g}"
        for j, (a, b) in enumerate(zip(w, g)):
            if not _same_cell(a, b):
                column = header[j] if i > 0 and j < len(header) else f"field {j}"
                return (f"{name}: first difference at row {i} (line {i + 1}), column {column!r}: "
                        f"expected {a!r}, got {b!r}\n  expected row {w}\n  got row      {g}")
    if len(want_rows) != len(got_rows):
        longer, what = (got_rows, "extra") if len(got_rows) > len(want_rows) else (want_rows, "missing")
        i = min(len(want_rows), len(got_rows))
        return f"{name}: {len(got_rows)} lines, expected {len(want_rows)}; first {what} row (line {i + 1}): {longer[i]}"
    return None


def as_frame(text: str) -> pl.DataFrame:
    """A CSV text as a table of strings (for looking at a difference by hand)."""
    return pl.read_csv(io.StringIO(text), infer_schema=False)
