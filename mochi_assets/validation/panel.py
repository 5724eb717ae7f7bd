"""The daily panel every validation figure is computed from, built once per ticker x scenario.

From the simulated trades (never simulating again) and the session calendar:

* ``r`` and ``ticks``: dense sessions x traders matrices of the sum of each trader's trades' ``r``
  (and ``pnl_ticks``) per session date, zero on sessions without a trade: the daily series of the
  README's "Statistics, verdict and units", one column per trader (2,600 sessions x 2,000 traders is 42 MB each);
* ``count_cum`` / ``win_cum``: cumulative trade and win (pnl > 0) counts by entry session, so the
  counts of any window of sessions are one subtraction;
* ``late``: the few trades still open when the session after their entry session starts (their
  exit bar starts at or after that session's first bar). A fold's in-sample view leaves out those
  still open when its out-of-sample window starts: selection sees only trades that closed before.

A trade belongs to the session date it entered on (docs/strategy.md section 8); ``known[k]`` is the index of the
first session whose first bar starts after trade k's exit bar, i.e. the first session at whose
start the trade is known to have closed.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow.parquet as pq
from numba import njit

from mochi_resources.errors import MochiError

PANEL_TRADE_COLUMNS = ("trader_id", "session_date", "exit_ts", "r", "pnl_ticks", "pnl")


# Rows per batch when the panel reads the trades' file a part at a time (panel_trade_batches).
PANEL_BATCH_ROWS = 1 << 20


def _panel_columns(trades: pl.LazyFrame | pl.DataFrame):
    return trades.select(
        "trader_id", "session_date", "exit_ts", "r", "pnl_ticks", (pl.col("pnl") > 0).alias("win")
    )


def panel_trades(trades: pl.LazyFrame) -> pl.DataFrame:
    """The columns ``build_panel`` reads, with ``pnl`` reduced to the boolean ``win`` (pnl > 0)."""
    return _panel_columns(trades).collect()


def panel_trade_batches(trades: pl.LazyFrame, local_path: str | None) -> Iterator[pl.DataFrame]:
    """``panel_trades`` a part at a time, in the file's order: batches of ``PANEL_BATCH_ROWS`` read
    from the Parquet file at ``local_path`` (the pinned version ``trades`` reads, see
    ``LakeTables.local_parquet``), so that ``build_panel`` never holds every trade's columns at
    once (12.4 million trades: 428 MB); the whole of ``trades`` as one batch without a path."""
    if local_path is None:
        yield panel_trades(trades)
        return
    file = pq.ParquetFile(local_path)
    for batch in file.iter_batches(batch_size=PANEL_BATCH_ROWS, columns=list(PANEL_TRADE_COLUMNS)):
        frame = pl.from_arrow(batch)
        assert isinstance(frame, pl.DataFrame)
        yield _panel_columns(frame)


@dataclass(frozen=True)
class LateTrades:
    """Trades still open at the start of the session after their entry session (parallel arrays)."""

    trader: np.ndarray  # column index into the panel
    session: np.ndarray  # entry session index
    known: np.ndarray  # first session index at whose start the trade has closed
    r: np.ndarray
    ticks: np.ndarray
    win: np.ndarray  # bool: pnl > 0


@dataclass(frozen=True)
class Panel:
    """Sessions x traders daily series of one scenario (see the module docstring)."""

    trader_ids: np.ndarray  # (N,) int64, sorted
    dates: np.ndarray  # (T,) datetime64[D], sorted session dates after ATR warm-up
    r: np.ndarray  # (T, N) float64
    ticks: np.ndarray  # (T, N) float64
    count_cum: np.ndarray  # (T + 1, N) int32: trades entered before session t
    win_cum: np.ndarray  # (T + 1, N) int32
    late: LateTrades

    @property
    def sessions(self) -> int:
        return len(self.dates)

    @property
    def traders(self) -> int:
        return len(self.trader_ids)


def session_starts(enhanced: pl.LazyFrame) -> pl.DataFrame:
    """session_date and start_ts (its first bar) of every session after ATR warm-up, in order."""
    return (
        enhanced.filter(pl.col("atr").is_not_null())
        .group_by("session_date")
        .agg(pl.col("ts").min().alias("start_ts"))
        .sort("session_date")
        .collect()
    )


def _epoch_us(series: pl.Series, what: str) -> np.ndarray:
    if not isinstance(series.dtype, pl.Datetime):
        raise MochiError(f"{what}: expected timestamps, got {series.dtype}")
    return series.dt.epoch("us").to_numpy()


# Integer keys spread over at most this many values (and at most 8 per key) are looked up in a
# table indexed by value rather than by binary search: trader ids and session dates always are.
_LOOKUP_MAX_SPAN = 1 << 24


@njit(cache=True)
def _lookup(table: np.ndarray, low: int, sorted_values: np.ndarray, values: np.ndarray,
            pos: np.ndarray, missing: np.ndarray) -> None:
    """``_positions``' table lookup in one pass: ``table[k]`` is the insertion point of ``low + k``."""
    n = sorted_values.shape[0]
    span = table.shape[0]
    for i in range(values.shape[0]):
        v = values[i]
        k = v - low
        if k < 0:
            p = 0
        elif k >= span:
            p = n
        else:
            p = table[k]
        pos[i] = p
        missing[i] = p >= n or sorted_values[p] != v


def _positions(sorted_values: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of each value in ``sorted_values`` (sorted, distinct) and a mask of the values not
    found there (their index is then where they would be inserted, as ``np.searchsorted``'s)."""
    if len(sorted_values) == 0:
        return np.searchsorted(sorted_values, values), np.ones(len(values), dtype=bool)
    if sorted_values.dtype.kind in "iu" and values.dtype.kind in "iu" and len(values) > 4 * len(sorted_values):
        low, high = int(sorted_values[0]), int(sorted_values[-1])
        span = high - low + 1
        if span <= min(_LOOKUP_MAX_SPAN, 8 * len(sorted_values) + 1024):
            # insertion point of every value low..high, in one table: a gather instead of a search,
            # done in one compiled pass (numpy took eight passes over the values: 0.4 s for 12 M)
            table = np.searchsorted(sorted_values, np.arange(low, high + 1, dtype=np.int64))
            pos = np.empty(len(values), dtype=np.int64)
            missing = np.empty(len(values), dtype=np.bool_)
            # one integer type for both (the same cast keeps equal values equal)
            _lookup(table, low, sorted_values.astype(np.int64, copy=False), values.astype(np.int64, copy=False),
                    pos, missing)
            return pos, missing
    pos = np.searchsorted(sorted_values, values)
    return pos, sorted_values[np.minimum(pos, len(sorted_values) - 1)] != values


def _calendar(trader_ids: np.ndarray | list[int], sessions: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The sorted trader ids and the session dates (days since the epoch), checked."""
    for column in ("session_date", "start_ts"):
        if column not in sessions.columns:
            raise MochiError(f"sessions: missing column {column}")
    ids = np.unique(np.asarray(trader_ids, dtype=np.int64))
    if len(ids) != len(trader_ids):
        raise MochiError("traders: trader_id is not unique")
    days = sessions["session_date"].cast(pl.Date).to_physical().to_numpy()
    if len(days) > 1 and not (np.diff(days) > 0).all():
        raise MochiError("sessions: session dates must be unique and sorted")
    return ids, days


def _locate(trades: pl.DataFrame, ids: np.ndarray, days: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each trade's trader column and session row; a trade of an unknown trader or off the
    calendar is an error."""
    trader_col = trades["trader_id"].cast(pl.Int64).to_numpy()
    trader, unknown = _positions(ids, trader_col)
    if unknown.any():
        raise MochiError(
            f"trades: {int(unknown.sum())} trade(s) belong to traders not in the trader table "
            f"(e.g. trader_id {int(trader_col[unknown][0])})"
        )
    del trader_col, unknown
    day_col = trades["session_date"].cast(pl.Date).to_physical().to_numpy()
    session, off = _positions(days, day_col)
    if off.any():
        raise MochiError(
            f"trades: {int(off.sum())} trade(s) have a session_date outside the session calendar "
            f"(e.g. {day_col[off][0].astype('datetime64[D]')})"
        )
    return trader, session


def _cells(trader: np.ndarray, session: np.ndarray, n_traders: int) -> np.ndarray:
    """Each trade's cell, session row x traders + trader column (takes over ``session``'s memory)."""
    cell = session
    cell *= n_traders
    cell += trader
    return cell


def check_one_per_cell(per_cell: np.ndarray, ids: np.ndarray, dates, traders_major: bool = False) -> None:
    """A second trade of a trader on one session date is an error (the first such cell is named).

    ``per_cell``: trades per cell of a flat sessions x traders matrix (``traders_major``: traders x
    sessions), ``ids`` and ``dates`` the traders and session dates along its axes.
    """
    if per_cell.size and per_cell.max() > 1:
        twice = int(np.argmax(per_cell))
        row, col = divmod(twice, len(dates) if traders_major else len(ids))
        trader, day = (row, col) if traders_major else (col, row)
        raise MochiError(
            f"trades: trader_id {int(ids[trader])} has {int(per_cell[twice])} trades on session "
            f"{dates[day]} (the strategy allows one per session date)"
        )


@njit(cache=True)
def _accumulate(cell: np.ndarray, win: np.ndarray, r: np.ndarray, ticks: np.ndarray, count: np.ndarray,
                wins: np.ndarray, r_sum: np.ndarray, ticks_sum: np.ndarray) -> None:
    """Per cell: trades, winning trades, sum of r, sum of ticks, added in the trades' order (as
    ``np.bincount`` adds its weights: the same doubles, batch after batch)."""
    for i in range(cell.shape[0]):
        c = cell[i]
        count[c] += 1
        if win[i]:
            wins[c] += 1
        r_sum[c] += r[i]
        ticks_sum[c] += ticks[i]


def build_panel(trades: pl.DataFrame | Iterable[pl.DataFrame], trader_ids: np.ndarray | list[int],
                sessions: pl.DataFrame) -> Panel:
    """The panel of ``trades`` over the traders ``trader_ids`` and the calendar ``sessions``.

    ``sessions`` has session_date and start_ts (``session_starts``); ``trades`` (a frame, or its
    parts in order: ``panel_trade_batches``) the columns of ``PANEL_TRADE_COLUMNS``, or ``win``
    (pnl > 0) instead of ``pnl`` (``panel_trades``). A trade of an unknown trader or off the
    calendar, or a second trade of a trader on one session date, is an error. Besides the
    matrices (4 x 8 bytes per session x trader at most) a part's temporaries are all it holds.
    """
    ids, days = _calendar(trader_ids, sessions)
    dates = days.astype("datetime64[D]")
    starts = _epoch_us(sessions["start_ts"], "sessions.start_ts")
    n_sessions, n_traders = len(dates), len(ids)
    size = n_sessions * n_traders
    # a trade is late when its exit bar starts at or after the next session's first bar
    next_start = np.append(starts[1:], np.iinfo(np.int64).max)
    count = np.zeros(size, dtype=np.int32)
    wins = np.zeros(size, dtype=np.int32)
    r_sum = np.zeros(size, dtype=np.float64)
    ticks_sum = np.zeros(size, dtype=np.float64)
    late_parts: list[LateTrades] = []
    for part in [trades] if isinstance(trades, pl.DataFrame) else trades:
        missing = [c for c in PANEL_TRADE_COLUMNS if c not in part.columns and not (c == "pnl" and "win" in part.columns)]
        if missing:
            raise MochiError(f"trades: missing column(s) {', '.join(missing)}")
        trader, session = _locate(part, ids, days)
        exit_us = _epoch_us(part["exit_ts"], "trades.exit_ts")
        is_late = exit_us >= next_start[session]
        win = part["win"].to_numpy() if "win" in part.columns else part["pnl"].cast(pl.Float64).to_numpy() > 0
        r = part["r"].cast(pl.Float64).to_numpy()
        ticks = part["pnl_ticks"].cast(pl.Float64).to_numpy()
        late_parts.append(LateTrades(
            trader=trader[is_late], session=session[is_late],
            known=np.searchsorted(starts, exit_us[is_late], side="right"),
            r=r[is_late], ticks=ticks[is_late], win=win[is_late],
        ))
        del exit_us, is_late
        cell = _cells(trader, session, n_traders)
        del trader, session
        _accumulate(cell, np.ascontiguousarray(win, dtype=np.bool_), np.ascontiguousarray(r),
                    np.ascontiguousarray(ticks), count, wins, r_sum, ticks_sum)
        del cell, win, r, ticks
    check_one_per_cell(count, ids, dates)
    fields = {"trader": np.int64, "session": np.int64, "known": np.int64, "r": np.float64, "ticks": np.float64,
              "win": np.bool_}
    late = LateTrades(**{f: np.concatenate([getattr(p, f) for p in late_parts]) if late_parts
                         else np.zeros(0, dtype=dtype) for f, dtype in fields.items()})
    count_cum = np.zeros((n_sessions + 1, n_traders), dtype=np.int32)
    np.cumsum(count.reshape(n_sessions, n_traders), axis=0, out=count_cum[1:])
    del count
    win_cum = np.zeros((n_sessions + 1, n_traders), dtype=np.int32)
    np.cumsum(wins.reshape(n_sessions, n_traders), axis=0, out=win_cum[1:])
    del wins
    return Panel(
        ids, dates, r_sum.reshape(n_sessions, n_traders), ticks_sum.reshape(n_sessions, n_traders),
        count_cum, win_cum, late,
    )


DAILY_R_COLUMNS = ("trader_id", "session_date", "r")


def daily_r(trades: pl.DataFrame, trader_ids: np.ndarray | list[int], sessions: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """``build_panel(...).trader_ids`` and ``.r`` alone, with the same checks, from the trades'
    ``DAILY_R_COLUMNS``: what the robustness figures read (a fifth of the panel's work)."""
    missing = [c for c in DAILY_R_COLUMNS if c not in trades.columns]
    if missing:
        raise MochiError(f"trades: missing column(s) {', '.join(missing)}")
    ids, days = _calendar(trader_ids, sessions)
    dates = days.astype("datetime64[D]")
    trader, session = _locate(trades, ids, days)
    cell = _cells(trader, session, len(ids))
    del trader, session
    size = len(dates) * len(ids)
    check_one_per_cell(np.bincount(cell, minlength=size), ids, dates)
    r_matrix = np.bincount(cell, weights=trades["r"].cast(pl.Float64).to_numpy(), minlength=size)
    return ids, r_matrix.reshape(len(dates), len(ids))
