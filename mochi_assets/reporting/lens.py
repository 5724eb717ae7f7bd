"""Trade lens: when and how the best traders win or lose.

Input is a trade extract (``extract_trades`` output: the trades columns of docs/strategy.md, one row
per trade). Output is a set of small tables keyed by name: results by weekday, by
local hour and by hold time of entry, the MAE/MFE scatter data, winning and losing
streaks, and a per-trader summary. Weekdays and hours are read on the local clock
of the request timezone, because that is the clock entry times are set on.

A trade is a win when its pnl (net of costs) is strictly positive; every other
trade, including a break-even one, counts as a loss, so that wins and losses
partition the trades and match ``win_rate``.
"""

from __future__ import annotations

import zoneinfo

import polars as pl

from mochi_assets.reporting.extracts import require_columns
from mochi_resources.errors import MochiError, RequestError

WEEKDAYS: tuple[str, ...] = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")

# Hold-time buckets in minutes: (lower edge inclusive, upper edge exclusive, label).
HOLD_BUCKETS: tuple[tuple[int, int | None, str], ...] = (
    (0, 15, "0-15"),
    (15, 60, "15-60"),
    (60, 240, "60-240"),
    (240, None, "240+"),
)

LENS_COLUMNS: tuple[str, ...] = ("trader_id", "entry_ts", "exit_ts", "pnl", "r", "mae", "mfe")

_STAT_SCHEMA = {"trades": pl.Int64, "net_pnl": pl.Float64, "avg_r": pl.Float64, "win_rate": pl.Float64}


def _check_timezone(timezone: str) -> None:
    try:
        zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise RequestError(f"timezone: unknown time zone {timezone!r} (expected an IANA name such as America/New_York)") from exc


def _prepare(extract: pl.DataFrame, timezone: str) -> pl.DataFrame:
    """One row per trade with the derived fields every lens table needs."""
    frame = extract.select(
        pl.col("trader_id").cast(pl.Int64),
        *(pl.col(c) for c in ("entry_ts", "exit_ts")),
        *(pl.col(c).cast(pl.Float64) for c in ("pnl", "r", "mae", "mfe")),
    )
    for column in ("entry_ts", "exit_ts"):
        dtype = frame.schema[column]
        if not isinstance(dtype, pl.Datetime):
            raise MochiError(f"trade extract: column {column} must be a timestamp, got {dtype}")
        if dtype.time_zone is None:
            frame = frame.with_columns(pl.col(column).dt.replace_time_zone("UTC"))
    local = pl.col("entry_ts").dt.convert_time_zone(timezone)
    hold = pl.col("exit_ts") - pl.col("entry_ts")
    minutes = hold.dt.total_microseconds().cast(pl.Float64) / 60_000_000.0
    bucket = pl.lit(None, dtype=pl.Utf8)
    bucket_from = pl.lit(None, dtype=pl.Int64)
    for lower, upper, label in reversed(HOLD_BUCKETS):
        inside = minutes >= lower if upper is None else (minutes >= lower) & (minutes < upper)
        bucket = pl.when(inside).then(pl.lit(label)).otherwise(bucket)
        bucket_from = pl.when(inside).then(pl.lit(lower, dtype=pl.Int64)).otherwise(bucket_from)
    return frame.sort(["trader_id", "entry_ts"]).with_columns(
        weekday_num=local.dt.weekday().cast(pl.Int64),
        hour=local.dt.hour().cast(pl.Int64),
        hold_min=minutes,
        hold_bucket=bucket,
        hold_min_from=bucket_from,
        win=pl.col("pnl") > 0,
    ).with_columns(
        weekday=pl.col("weekday_num").replace_strict(
            list(range(1, 8)), list(WEEKDAYS), return_dtype=pl.Utf8
        ),
    )


def _stats() -> list[pl.Expr]:
    return [
        pl.len().cast(pl.Int64).alias("trades"),
        pl.col("pnl").sum().alias("net_pnl"),
        pl.col("r").mean().alias("avg_r"),
        pl.col("win").cast(pl.Float64).mean().alias("win_rate"),
    ]


def _by(trades: pl.DataFrame, keys: list[str], order: list[str]) -> pl.DataFrame:
    return (
        trades.group_by(["trader_id", *keys])
        .agg(_stats())
        .sort(["trader_id", *order])
        .select("trader_id", *keys, *_STAT_SCHEMA)
    )


def _streaks(trades: pl.DataFrame) -> pl.DataFrame:
    """Longest winning and losing runs per trader, in entry order, and the run in progress.

    ``current_streak`` is signed: +3 means the last three trades won, -2 that the
    last two lost.
    """
    runs = (
        trades.select("trader_id", "entry_ts", "win")
        .with_columns(run=(pl.col("win") != pl.col("win").shift(1)).fill_null(True).cum_sum().over("trader_id"))
        .group_by(["trader_id", "run"])
        .agg(win=pl.col("win").first(), length=pl.len().cast(pl.Int64), last_ts=pl.col("entry_ts").max())
    )
    longest = runs.group_by("trader_id").agg(
        longest_win_streak=pl.col("length").filter(pl.col("win")).max().fill_null(0),
        longest_loss_streak=pl.col("length").filter(~pl.col("win")).max().fill_null(0),
    )
    current = (
        runs.sort(["trader_id", "run"])
        .group_by("trader_id")
        .agg(pl.all().last())
        .select("trader_id", current_streak=pl.when(pl.col("win")).then(pl.col("length")).otherwise(-pl.col("length")))
    )
    return (
        longest.join(current, on="trader_id", how="left")
        .sort("trader_id")
        .select(
            "trader_id",
            pl.col("longest_win_streak").cast(pl.Int64),
            pl.col("longest_loss_streak").cast(pl.Int64),
            pl.col("current_streak").cast(pl.Int64),
        )
    )


def _best(table: pl.DataFrame, key: str, order: str, name: str) -> pl.DataFrame:
    """Per trader, the key value with the highest net_pnl (ties go to the earliest)."""
    return (
        table.sort(["trader_id", "net_pnl", order], descending=[False, True, False])
        .group_by("trader_id", maintain_order=True)
        .first()
        .select("trader_id", pl.col(key).alias(name))
    )


def trade_lens(extract: pl.DataFrame, *, timezone: str) -> dict[str, pl.DataFrame]:
    """Analyse a trade extract on the local clock of ``timezone``.

    Returns tables (every one present, empty with its columns when there are no trades):
    - ``by_weekday``: trader_id, weekday (Mon..Sun of the local entry time), weekday_num
      (1 = Mon), trades, net_pnl, avg_r, win_rate;
    - ``by_hour``: trader_id, hour (0..23 local hour of entry), trades, net_pnl, avg_r, win_rate;
    - ``by_hold``: trader_id, hold_bucket (minutes from entry to exit: 0-15, 15-60, 60-240,
      240+; lower edge inclusive), hold_min_from (the bucket's lower edge), trades, net_pnl,
      avg_r, win_rate;
    - ``mae_mfe``: one row per trade: trader_id, entry_ts, mae, mfe, r, pnl, win;
    - ``streaks``: trader_id, longest_win_streak, longest_loss_streak, current_streak
      (signed: positive while winning);
    - ``summary``: trader_id, trades, wins, win_rate, net_pnl, avg_r, avg_hold_min, avg_mae,
      avg_mfe, best_weekday, best_hour (by net_pnl, ties to the earliest).
    Raises RequestError for an unknown timezone, MochiError for missing or mistyped columns.
    """
    _check_timezone(timezone)
    require_columns(extract, LENS_COLUMNS, "trade extract")
    trades = _prepare(extract, timezone)

    by_weekday = _by(trades, ["weekday", "weekday_num"], ["weekday_num"])
    by_hour = _by(trades, ["hour"], ["hour"])
    by_hold = _by(trades, ["hold_bucket", "hold_min_from"], ["hold_min_from"])
    mae_mfe = trades.select("trader_id", "entry_ts", "mae", "mfe", "r", "pnl", "win")
    streaks = _streaks(trades)

    summary = (
        trades.group_by("trader_id")
        .agg(
            pl.len().cast(pl.Int64).alias("trades"),
            pl.col("win").sum().cast(pl.Int64).alias("wins"),
            pl.col("win").cast(pl.Float64).mean().alias("win_rate"),
            pl.col("pnl").sum().alias("net_pnl"),
            pl.col("r").mean().alias("avg_r"),
            pl.col("hold_min").mean().alias("avg_hold_min"),
            pl.col("mae").mean().alias("avg_mae"),
            pl.col("mfe").mean().alias("avg_mfe"),
        )
        .join(_best(by_weekday, "weekday", "weekday_num", "best_weekday"), on="trader_id", how="left")
        .join(_best(by_hour, "hour", "hour", "best_hour"), on="trader_id", how="left")
        .sort("trader_id")
    )
    return {
        "by_weekday": by_weekday,
        "by_hour": by_hour,
        "by_hold": by_hold,
        "mae_mfe": mae_mfe,
        "streaks": streaks,
        "summary": summary,
    }


FILING_FORMS: tuple[str, ...] = ("8-K", "10-Q", "10-K")


def by_filing_day(extract: pl.DataFrame, filings: pl.DataFrame) -> pl.DataFrame:
    """Results of trades entered on a day the company filed an 8-K, 10-Q or 10-K, beside the others.

    A trade's day is its ``session_date`` (US equity sessions are New York days, the dates EDGAR
    files under). ``filings`` has ``form`` and ``filing_date``; amendments (``10-K/A``) count as
    their form. One row per trader and ``filing_day``: each form (a trade on a day with two forms
    counts in both), ``any filing`` and ``no filing``; trades, net_pnl, avg_r, win_rate.
    """
    require_columns(extract, ("trader_id", "session_date", "pnl", "r"), "trade extract")
    require_columns(filings, ("form", "filing_date"), "filings")
    days = (
        filings.select(pl.col("form").str.to_uppercase().str.replace(r"/A$", ""), pl.col("filing_date").cast(pl.Date))
        .filter(pl.col("form").is_in(FILING_FORMS))
        .unique()
        .rename({"filing_date": "session_date", "form": "filing_day"})
    )
    trades = extract.select(
        pl.col("trader_id").cast(pl.Int64), pl.col("session_date").cast(pl.Date),
        pl.col("pnl").cast(pl.Float64), pl.col("r").cast(pl.Float64), win=pl.col("pnl") > 0,
    )
    on_form = trades.join(days, on="session_date", how="inner")
    filed = days["session_date"].unique().implode()
    any_day = trades.filter(pl.col("session_date").is_in(filed)).with_columns(filing_day=pl.lit("any filing"))
    no_day = trades.filter(~pl.col("session_date").is_in(filed)).with_columns(filing_day=pl.lit("no filing"))
    order = {name: i for i, name in enumerate((*FILING_FORMS, "any filing", "no filing"))}
    return (
        pl.concat([on_form.select(trades.columns + ["filing_day"]), any_day, no_day])
        .group_by(["trader_id", "filing_day"])
        .agg(_stats())
        .with_columns(order=pl.col("filing_day").replace_strict(order, return_dtype=pl.Int64))
        .sort(["trader_id", "order"])
        .select("trader_id", "filing_day", *_STAT_SCHEMA)
    )
