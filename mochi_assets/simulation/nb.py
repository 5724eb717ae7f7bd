"""Numba kernels of the trade simulation: NumPy arrays in, NumPy arrays out, nothing else.

The rules are those of docs/strategy.md. Bars are addressed by index; timestamps are
int64 microseconds (UTC, bar open times). Windows ("within N minutes of t" = ts < t + N) become
half-open index ranges [a, b) found by galloping search on ts. Finding the first bar of a window
whose high/low reaches a level, and the extremes of a window (MAE/MFE), use block range tables
(block extremes plus a sparse table over them) so a window costs O(BLOCK_SIZE + log n), not O(n).
"""

import numpy as np
from numba import njit, prange

from mochi_assets.simulation.enums import (
    EXIT_END,
    EXIT_LIMIT,
    EXIT_STOP,
    EXIT_TIME,
    F_ENTRY_PRICE,
    F_EXIT_PRICE,
    F_MAE,
    F_MFE,
    F_PNL,
    F_PNL_TICKS,
    F_R,
    I_BARS_HELD,
    I_ENTRY_TS,
    I_EXIT_TS,
    LONG,
)

# Bars per block of the range tables: windows are scanned bar by bar inside a block and jump
# block by block (sparse table over block extremes) across blocks. 16 keeps the tables at 1/8 of
# the bar arrays' size while the in-block scans stay short (8 measured no faster).
BLOCK_SHIFT = 4
BLOCK_SIZE = 1 << BLOCK_SHIFT

# Traders simulated side by side, session by session, in one parallel task (simulate_traders_nb):
# enough to reuse the bars while in cache, few enough that a chunk splits into many tasks.
TRADER_GROUP = 32


@njit(cache=True)
def block_tables_nb(high: np.ndarray, low: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sparse tables over per-block extremes: (tab_max, tab_min), each float64[levels, n_blocks].

    tab_max[k, i] is the highest high of blocks i .. i + 2**k - 1 (defined where i + 2**k <= n_blocks;
    other cells repeat the level below and are never read by the queries).
    """
    n = high.shape[0]
    n_blocks = (n + BLOCK_SIZE - 1) >> BLOCK_SHIFT
    levels = 1
    while (1 << levels) <= n_blocks:
        levels += 1
    tab_max = np.empty((levels, max(n_blocks, 1)), dtype=np.float64)
    tab_min = np.empty((levels, max(n_blocks, 1)), dtype=np.float64)
    for b in range(n_blocks):
        start = b << BLOCK_SHIFT
        stop = min(start + BLOCK_SIZE, n)
        hi = high[start]
        lo = low[start]
        for j in range(start + 1, stop):
            if high[j] > hi:
                hi = high[j]
            if low[j] < lo:
                lo = low[j]
        tab_max[0, b] = hi
        tab_min[0, b] = lo
    for k in range(1, levels):
        half = 1 << (k - 1)
        for b in range(n_blocks):
            if b + half < n_blocks:
                tab_max[k, b] = max(tab_max[k - 1, b], tab_max[k - 1, b + half])
                tab_min[k, b] = min(tab_min[k - 1, b], tab_min[k - 1, b + half])
            else:
                tab_max[k, b] = tab_max[k - 1, b]
                tab_min[k, b] = tab_min[k - 1, b]
    return tab_max, tab_min


@njit(cache=True, inline="always")
def _floor_log2_nb(x: int) -> int:
    k = 0
    while (2 << k) <= x:
        k += 1
    return k


@njit(cache=True)
def first_ge_nb(values: np.ndarray, tab_max: np.ndarray, a: int, b: int, level: float) -> int:
    """First index j in [a, b) with values[j] >= level, else b (tab_max built from values)."""
    head_end = min(((a + BLOCK_SIZE - 1) >> BLOCK_SHIFT) << BLOCK_SHIFT, b)
    for j in range(a, head_end):
        if values[j] >= level:
            return j
    if head_end >= b:
        return b
    first_block = head_end >> BLOCK_SHIFT
    end_block = b >> BLOCK_SHIFT
    if first_block < end_block:
        # Binary lifting: skip runs of whole blocks whose maximum stays below the level.
        pos = first_block
        k = _floor_log2_nb(end_block - first_block)
        while k >= 0:
            if pos + (1 << k) <= end_block and tab_max[k, pos] < level:
                pos += 1 << k
            k -= 1
        if pos < end_block:
            j = pos << BLOCK_SHIFT
            while values[j] < level:
                j += 1
            return j
    for j in range(end_block << BLOCK_SHIFT, b):
        if values[j] >= level:
            return j
    return b


@njit(cache=True)
def first_le_nb(values: np.ndarray, tab_min: np.ndarray, a: int, b: int, level: float) -> int:
    """First index j in [a, b) with values[j] <= level, else b (tab_min built from values)."""
    head_end = min(((a + BLOCK_SIZE - 1) >> BLOCK_SHIFT) << BLOCK_SHIFT, b)
    for j in range(a, head_end):
        if values[j] <= level:
            return j
    if head_end >= b:
        return b
    first_block = head_end >> BLOCK_SHIFT
    end_block = b >> BLOCK_SHIFT
    if first_block < end_block:
        pos = first_block
        k = _floor_log2_nb(end_block - first_block)
        while k >= 0:
            if pos + (1 << k) <= end_block and tab_min[k, pos] > level:
                pos += 1 << k
            k -= 1
        if pos < end_block:
            j = pos << BLOCK_SHIFT
            while values[j] > level:
                j += 1
            return j
    for j in range(end_block << BLOCK_SHIFT, b):
        if values[j] <= level:
            return j
    return b


@njit(cache=True)
def range_extremes_nb(
    high: np.ndarray, low: np.ndarray, tab_max: np.ndarray, tab_min: np.ndarray, a: int, b: int
) -> tuple[float, float]:
    """(max of high[a:b], min of low[a:b]) for a < b, in one pass over the partial blocks."""
    first_block = (a + BLOCK_SIZE - 1) >> BLOCK_SHIFT
    end_block = b >> BLOCK_SHIFT
    hi = -np.inf
    lo = np.inf
    if first_block >= end_block:
        for j in range(a, b):
            hi = max(hi, high[j])
            lo = min(lo, low[j])
        return hi, lo
    for j in range(a, first_block << BLOCK_SHIFT):
        hi = max(hi, high[j])
        lo = min(lo, low[j])
    for j in range(end_block << BLOCK_SHIFT, b):
        hi = max(hi, high[j])
        lo = min(lo, low[j])
    k = _floor_log2_nb(end_block - first_block)
    other = end_block - (1 << k)
    hi = max(hi, max(tab_max[k, first_block], tab_max[k, other]))
    lo = min(lo, min(tab_min[k, first_block], tab_min[k, other]))
    return hi, lo


@njit(cache=True)
def search_ts_nb(ts: np.ndarray, start: int, target: int, min_step: int) -> int:
    """First index i >= start with ts[i] >= target, else len(ts).

    ts is strictly increasing with consecutive differences >= min_step > 0, so the answer is at
    most start + ceil((target - ts[start]) / min_step): on regularly spaced bars that bound is the
    answer itself (one comparison); across holes a binary search below it finishes the job.
    """
    n = ts.shape[0]
    if start >= n:
        return n
    delta = target - ts[start]
    if delta <= 0:
        return start
    hi = start + (delta + min_step - 1) // min_step
    if hi > n:
        hi = n
    if ts[hi - 1] < target:
        return hi
    lo = start + 1
    hi -= 1
    while lo < hi:
        mid = (lo + hi) >> 1
        if ts[mid] < target:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True)
def session_bounds_nb(session_day: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(starts, ends) bar index ranges of runs of equal session_day (bars in time order)."""
    n = session_day.shape[0]
    count = 0
    for i in range(n):
        if i == 0 or session_day[i] != session_day[i - 1]:
            count += 1
    starts = np.empty(count, dtype=np.int64)
    ends = np.empty(count, dtype=np.int64)
    s = -1
    for i in range(n):
        if i == 0 or session_day[i] != session_day[i - 1]:
            if s >= 0:
                ends[s] = i
            s += 1
            starts[s] = i
    if s >= 0:
        ends[s] = n
    return starts, ends


@njit(cache=True)
def reference_bars_nb(
    starts: np.ndarray, ends: np.ndarray, clock_us: np.ndarray, entry_us: int
) -> np.ndarray:
    """Per session: index of its first bar whose session clock >= entry_us, else -1 (no trade).

    clock_us: each bar's local wall-clock time in microseconds after the local midnight of its
    session date (negative on the evening before a session that opens then); entry_us: the entry
    time on that same clock. Only the session's own bars are searched, so an entry never rolls
    into the next session. A linear scan rather than a search: local time is not monotonic within
    a session on a daylight-saving fall-back night.
    """
    out = np.full(starts.shape[0], -1, dtype=np.int64)
    for s in range(starts.shape[0]):
        for i in range(starts[s], ends[s]):
            if clock_us[i] >= entry_us:
                out[s] = i
                break
    return out


@njit(cache=True)
def trade_session_nb(
    ts: np.ndarray,
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    tab_max: np.ndarray,
    tab_min: np.ndarray,
    min_step: int,
    ref: int,
    atr: float,
    direction: int,
    offset_ticks: int,
    stop_atr: float,
    limit_atr: float,
    duration_us: int,
    timeout_us: int,
    cost_ticks: float,
    tick_size: float,
    floats: np.ndarray,
    ints: np.ndarray,
    reasons: np.ndarray,
    row: int,
) -> tuple[int, bool, int]:
    """One trader's order on one session with reference bar `ref` and ATR `atr` (> 0).

    On a fill, writes the trade to column `row` of floats (FLOAT_COLUMNS), ints (INT_COLUMNS) and
    reasons (EXIT_* code) and returns (exit bar index, ambiguous, exit bar index). When the order
    does not fill within its timeout, returns (-1, False, last bar at which it was live): a live
    order occupies the trader like a position, so whether a later session may trade is known at
    its reference bar (an order still live at the end of the data keeps later sessions waiting,
    as a fill after the end might).
    """
    n = ts.shape[0]
    is_long = direction == LONG
    # The entry level lies above P (fills when the high reaches it) for a long stop entry and
    # for a short limit entry; below P (fills when the low reaches it) otherwise.
    level_above = (offset_ticks >= 0) == is_long
    p = open_[ref]
    if is_long:
        level = p + offset_ticks * tick_size
    else:
        level = p - offset_ticks * tick_size

    # Entry: first bar from the reference bar on, inside the timeout window, reaching the level.
    entry_end = search_ts_nb(ts, ref, ts[ref] + timeout_us, min_step)
    if level_above:
        fill = first_ge_nb(high, tab_max, ref, entry_end, level)
    else:
        fill = first_le_nb(low, tab_min, ref, entry_end, level)
    if fill >= entry_end:
        return -1, False, entry_end - 1
    o = open_[fill]
    if level_above:
        price = o if o >= level else level
    else:
        price = o if o <= level else level

    risk = stop_atr * atr
    if is_long:
        stop_level = price - risk
        limit_level = price + limit_atr * atr
    else:
        stop_level = price + risk
        limit_level = price - limit_atr * atr

    # Exit: bars after the fill inside the duration window; first bar reaching either level.
    # Most trades reach neither level (time exits): the window's extremes, one range query, show
    # that and are also their excursions, so the searches run only for a level that is reached.
    a = fill + 1
    exit_end = search_ts_nb(ts, fill, ts[fill] + duration_us, min_step)
    win_hi = -np.inf
    win_lo = np.inf
    if a < exit_end:
        win_hi, win_lo = range_extremes_nb(high, low, tab_max, tab_min, a, exit_end)
    k_stop = exit_end
    k_limit = exit_end
    if is_long:
        if win_lo <= stop_level:
            k_stop = first_le_nb(low, tab_min, a, exit_end, stop_level)
        if win_hi >= limit_level:
            k_limit = first_ge_nb(high, tab_max, a, min(k_stop + 1, exit_end), limit_level)
    else:
        if win_hi >= stop_level:
            k_stop = first_ge_nb(high, tab_max, a, exit_end, stop_level)
        if win_lo <= limit_level:
            k_limit = first_le_nb(low, tab_min, a, min(k_stop + 1, exit_end), limit_level)

    ambiguous = False
    if k_limit < k_stop:
        k = k_limit
        o = open_[k]
        gapped = o >= limit_level if is_long else o <= limit_level
        exit_price = o if gapped else limit_level
        reason = EXIT_LIMIT
    elif k_stop < exit_end:
        k = k_stop
        o = open_[k]
        if is_long:
            gap_stop = o <= stop_level
            gap_limit = o >= limit_level
            reaches_limit = high[k] >= limit_level
        else:
            gap_stop = o >= stop_level
            gap_limit = o <= limit_level
            reaches_limit = low[k] <= limit_level
        if gap_stop:
            exit_price = o
            reason = EXIT_STOP
        elif gap_limit:
            exit_price = o
            reason = EXIT_LIMIT
        else:
            exit_price = stop_level
            reason = EXIT_STOP
            ambiguous = reaches_limit
    else:
        # Neither level inside the window: a time exit needs a bar past the window, so that
        # appending data can never change it; otherwise the data ended first.
        if exit_end < n:
            k = exit_end - 1
            reason = EXIT_TIME
        else:
            k = n - 1
            reason = EXIT_END
        exit_price = close[k]

    # Excursions from the bar after the fill through the exit bar; on a stop/limit exit bar
    # only its open and the exit price were lived through.
    mae = 0.0
    mfe = 0.0
    if k > fill:
        if reason == EXIT_STOP or reason == EXIT_LIMIT:
            o = open_[k]
            lo = min(o, exit_price)
            hi = max(o, exit_price)
            if k > a:
                before_hi, before_lo = range_extremes_nb(high, low, tab_max, tab_min, a, k)
                hi = max(hi, before_hi)
                lo = min(lo, before_lo)
        else:
            # A time or end exit's bars a .. k are the whole window.
            hi, lo = win_hi, win_lo
        if is_long:
            mae = max(0.0, price - lo)
            mfe = max(0.0, hi - price)
        else:
            mae = max(0.0, hi - price)
            mfe = max(0.0, price - lo)

    if is_long:
        pnl = (exit_price - price) - cost_ticks * tick_size
    else:
        pnl = (price - exit_price) - cost_ticks * tick_size
    floats[F_ENTRY_PRICE, row] = price
    floats[F_EXIT_PRICE, row] = exit_price
    floats[F_PNL, row] = pnl
    floats[F_PNL_TICKS, row] = pnl / tick_size
    floats[F_R, row] = pnl / risk
    floats[F_MAE, row] = mae
    floats[F_MFE, row] = mfe
    ints[I_ENTRY_TS, row] = ts[fill]
    ints[I_EXIT_TS, row] = ts[k]
    ints[I_BARS_HELD, row] = k - fill
    reasons[row] = reason
    return k, ambiguous, k


@njit(cache=True, parallel=True, nogil=True)
def simulate_traders_nb(
    ts: np.ndarray,
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    tab_max: np.ndarray,
    tab_min: np.ndarray,
    min_step: int,
    session_atr: np.ndarray,
    session_day: np.ndarray,
    references: np.ndarray,
    entry_slot: np.ndarray,
    direction: np.ndarray,
    offset_ticks: np.ndarray,
    stop_atr: np.ndarray,
    limit_atr: np.ndarray,
    duration_us: np.ndarray,
    timeout_us: np.ndarray,
    cost_ticks: np.ndarray,
    tick_size: float,
    floats: np.ndarray,
    ints: np.ndarray,
    days: np.ndarray,
    reasons: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Simulate a chunk of traders over every valid session; return (counts, ambiguous) per trader.

    ts: int64 microseconds, strictly increasing, consecutive differences >= min_step.
    session_atr[s] > 0 and session_day[s] (int32 days since epoch) describe valid session s;
    references is int64[n_entry_times, n_sessions] (reference bar or -1) and trader t uses row
    entry_slot[t]. The trades of trader t go, in session order, to rows t * n_sessions + 0, 1, ...
    of the staging columns: floats float64[len(FLOAT_COLUMNS), cap], ints
    int64[len(INT_COLUMNS), cap], days int32[cap], reasons int8[cap], cap >= n_traders *
    n_sessions; api._compact packs them (pack_column_nb). The caller reuses the staging columns
    across chunks (fresh memory costs a page fault per page, a large share of the run).

    Traders run in groups of TRADER_GROUP, one group per parallel task, and a group walks the
    sessions in time order with all its traders at each session: they read the same bars while
    those are in cache (trader by trader, every trader would stream the whole series through
    memory). Each trader writes only its own rows, so the result does not depend on the thread
    count.
    """
    n_traders = direction.shape[0]
    n_sessions = session_atr.shape[0]
    counts = np.zeros(n_traders, dtype=np.int64)
    ambiguous = np.zeros(n_traders, dtype=np.int64)
    n_groups = (n_traders + TRADER_GROUP - 1) // TRADER_GROUP
    for g in prange(n_groups):
        first = g * TRADER_GROUP
        last = min(first + TRADER_GROUP, n_traders)
        # One position at a time: a session is skipped unless its reference bar comes after the
        # previous exit (or after the last bar at which the previous unfilled order was live).
        busy_until = np.full(last - first, -1, dtype=np.int64)
        for s in range(n_sessions):
            atr = session_atr[s]
            for t in range(first, last):
                ref = references[entry_slot[t], s]
                if ref < 0 or ref <= busy_until[t - first]:
                    continue
                row = t * n_sessions + counts[t]
                k, amb, busy = trade_session_nb(
                    ts,
                    open_,
                    high,
                    low,
                    close,
                    tab_max,
                    tab_min,
                    min_step,
                    ref,
                    atr,
                    direction[t],
                    offset_ticks[t],
                    stop_atr[t],
                    limit_atr[t],
                    duration_us[t],
                    timeout_us[t],
                    cost_ticks[t],
                    tick_size,
                    floats,
                    ints,
                    reasons,
                    row,
                )
                busy_until[t - first] = busy
                if k >= 0:
                    days[row] = session_day[s]
                    counts[t] += 1
                    ambiguous[t] += amb
    return counts, ambiguous


@njit(cache=True, nogil=True)
def pack_column_nb(counts: np.ndarray, n_sessions: int, offsets: np.ndarray, staged: np.ndarray,
                   packed: np.ndarray) -> None:
    """One column of the staging rows of simulate_traders_nb packed: packed[offsets[t] + k] =
    staged[t * n_sessions + k] for k < counts[t], trader by trader (offsets: counts' running sums
    from 0). On one-dimensional contiguous rows this copies as fast as NumPy's slice assignment.
    """
    for t in range(counts.shape[0]):
        src = t * n_sessions
        dst = offsets[t]
        for k in range(counts[t]):
            packed[dst + k] = staged[src + k]


@njit(cache=True, nogil=True)
def fill_trader_nb(counts: np.ndarray, offsets: np.ndarray, trader_id: np.ndarray, packed: np.ndarray) -> None:
    """The trader_id column of the packed rows: packed[offsets[t] + k] = trader_id[t], k < counts[t]."""
    for t in range(counts.shape[0]):
        dst = offsets[t]
        for k in range(counts[t]):
            packed[dst + k] = trader_id[t]
