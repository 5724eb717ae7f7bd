"""Each trader's outcome in one pass over its trades: how many, a fingerprint of the trade set,
and the maximum drawdown of its cumulative pnl.

The two figures that need every trade of a trader but not SQL:

- ``outcome_hash``: an order-independent fingerprint of the trader's set of trades, to find
  identical traders (``tables.duplicate_traders``). Each trade's ``OUTCOME_COLUMNS`` (session
  date, entry and exit times and prices, pnl: as their 64-bit patterns) are mixed into a 64-bit
  hash (the splitmix64 finalizer after each field), and the hashes of the trader's trades are
  added modulo 2**64; stored as a signed 64-bit integer. Two different trade sets agree on it
  (and on the count) with a chance of about 2**-64 per pair of traders; 0 for a trader without
  trades.
- ``max_drawdown``: the largest fall of the trader's cumulative pnl, trade by trade in entry
  order, from its running peak, which starts at 0 (an opening loss is a drawdown); 0 without
  trades. The running sum adds the trades' pnl as doubles in entry order, as ``np.cumsum`` does
  (``stats.max_drawdown`` is the reference), so the result does not depend on threads or chunks.

The simulation computes both for each chunk of traders while the chunk's trades are in memory
(``outcomes_nb`` over the kernel's staging rows, beside the packing), and the trades asset stores
them as its ``trader_outcomes`` table: the aggregation then reads a row per trader instead of a
pass over millions of trades (on Trino, no trade row reaches this process for them). ``trader_outcomes``
computes the same table from trade rows, for trades that did not come from the simulation.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa
from numba import njit

from mochi_resources.errors import MochiError

# What makes two traders' trades identical (r differs with the stop even when the trades do not).
OUTCOME_COLUMNS = ("trader_id", "session_date", "entry_ts", "exit_ts", "entry_price", "exit_price", "pnl")
OUTCOMES_SCHEMA = {"trader_id": pl.Int64, "trades": pl.Int64, "outcome_hash": pl.Int64, "max_drawdown": pl.Float64}

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_SEED = np.uint64(0x9E3779B97F4A7C15)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)


@njit(cache=True, inline="always")
def _mix(z):
    """The splitmix64 finalizer: every input bit moves about half of the output bits."""
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@njit(cache=True, nogil=True)
def outcomes_nb(starts: np.ndarray, counts: np.ndarray, days: np.ndarray, entry_ts: np.ndarray,
                exit_ts: np.ndarray, entry_price: np.ndarray, exit_price: np.ndarray, pnl: np.ndarray,
                pnl_value: np.ndarray, out_hash: np.ndarray, out_drawdown: np.ndarray) -> None:
    """Trader t's trades are rows starts[t] .. starts[t] + counts[t] - 1, in entry order: its
    fingerprint to out_hash[t], its maximum drawdown to out_drawdown[t]. days: int32 days since
    1970; entry_ts, exit_ts, entry_price, exit_price, pnl: the 64-bit patterns (uint64 views) of
    the columns; pnl_value: pnl as doubles."""
    for t in range(counts.shape[0]):
        total = np.uint64(0)
        equity = 0.0
        peak = 0.0
        drawdown = 0.0
        for i in range(starts[t], starts[t] + counts[t]):
            h = _mix(np.uint64(days[i]) ^ _SEED)
            h = _mix(h ^ entry_ts[i])
            h = _mix(h ^ exit_ts[i])
            h = _mix(h ^ entry_price[i])
            h = _mix(h ^ exit_price[i])
            total += _mix(h ^ pnl[i])
            equity += pnl_value[i]
            if equity > peak:
                peak = equity
            if peak - equity > drawdown:
                drawdown = peak - equity
        out_hash[t] = total
        out_drawdown[t] = drawdown


def _bits(values: np.ndarray) -> np.ndarray:
    """The 64-bit patterns of a contiguous int64 or float64 column (a view, no copy)."""
    return np.ascontiguousarray(values).view(np.uint64)


def compute_outcomes(starts: np.ndarray, counts: np.ndarray, days: np.ndarray, entry_ts: np.ndarray,
                     exit_ts: np.ndarray, entry_price: np.ndarray, exit_price: np.ndarray, pnl: np.ndarray,
                     out_hash: np.ndarray, out_drawdown: np.ndarray) -> None:
    """``outcomes_nb`` on plain columns (int32 days, int64 microsecond times, float64 prices and
    pnl): writes the fingerprints (as int64) and drawdowns of the traders into the two outputs."""
    outcomes_nb(
        np.asarray(starts, dtype=np.int64), np.asarray(counts, dtype=np.int64),
        np.ascontiguousarray(days, dtype=np.int32), _bits(entry_ts), _bits(exit_ts),
        _bits(entry_price), _bits(exit_price), _bits(pnl), np.ascontiguousarray(pnl),
        out_hash.view(np.uint64), out_drawdown,
    )


def trader_outcomes(trades: pl.DataFrame | pl.LazyFrame | pa.Table) -> pl.DataFrame:
    """trader_id, trades, outcome_hash, max_drawdown of each trader with at least one trade,
    sorted by trader_id, from trade rows (``OUTCOME_COLUMNS``, any row order)."""
    if isinstance(trades, pa.Table):
        trades = pl.from_arrow(trades)
    if not isinstance(trades, (pl.DataFrame, pl.LazyFrame)):
        raise MochiError(f"trades: expected a polars or Arrow table, got {type(trades).__name__}")
    columns = trades.collect_schema().names()
    missing = [c for c in OUTCOME_COLUMNS if c not in columns]
    if missing:
        raise MochiError(f"trades: missing column(s) {', '.join(missing)} (needed for the traders' outcomes)")
    rows = (
        trades.lazy()
        .select(
            pl.col("trader_id").cast(pl.Int64),
            pl.col("session_date").cast(pl.Date).to_physical(),
            *[pl.col(c).dt.cast_time_unit("us").to_physical() for c in ("entry_ts", "exit_ts")],
            *[pl.col(c).cast(pl.Float64) for c in ("entry_price", "exit_price", "pnl")],
        )
        .sort(["trader_id", "entry_ts"], maintain_order=True)
        .collect()
    )
    for name in OUTCOME_COLUMNS:
        if rows[name].null_count():
            raise MochiError(f"trades: {name} has nulls")
    trader_id = rows["trader_id"].to_numpy()
    firsts = np.flatnonzero(np.diff(trader_id, prepend=trader_id[:1] - 1)) if trader_id.size else np.zeros(0, np.int64)
    counts = np.diff(np.append(firsts, trader_id.size))
    out_hash = np.zeros(firsts.size, dtype=np.int64)
    out_drawdown = np.zeros(firsts.size, dtype=np.float64)
    compute_outcomes(
        firsts, counts, rows["session_date"].to_numpy(), rows["entry_ts"].to_numpy(), rows["exit_ts"].to_numpy(),
        rows["entry_price"].to_numpy(), rows["exit_price"].to_numpy(), rows["pnl"].to_numpy(), out_hash, out_drawdown,
    )
    return pl.DataFrame(
        {"trader_id": trader_id[firsts], "trades": counts, "outcome_hash": out_hash, "max_drawdown": out_drawdown},
        schema=OUTCOMES_SCHEMA,
    )


def check_outcomes(outcomes: pl.DataFrame, trader_ids: pl.Series) -> pl.DataFrame:
    """The outcome table with the OUTCOMES_SCHEMA columns, one row per trader at most, each a
    trader of ``trader_ids``; names what is wrong otherwise."""
    if not isinstance(outcomes, pl.DataFrame):
        raise MochiError(f"trader outcomes: expected a polars DataFrame, got {type(outcomes).__name__}")
    missing = [c for c in OUTCOMES_SCHEMA if c not in outcomes.columns]
    if missing:
        raise MochiError(f"trader outcomes: missing column(s) {', '.join(missing)}")
    table = outcomes.select([pl.col(c).cast(t) for c, t in OUTCOMES_SCHEMA.items()])
    if table["trader_id"].null_count() or table["trader_id"].n_unique() != table.height:
        raise MochiError("trader outcomes: trader_id must be unique and not null")
    unknown = table.filter(~pl.col("trader_id").is_in(trader_ids.implode()))
    if unknown.height:
        raise MochiError(
            f"trader outcomes: {unknown.height} row(s) belong to traders not in the trader table "
            f"(e.g. trader_id {unknown['trader_id'][0]})"
        )
    return table
