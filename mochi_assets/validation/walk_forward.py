"""Walk-forward validation of a scenario's trader selection, from its existing trades.

"If I had picked a trader this way in the past, what would the next period have looked like?"
The session calendar is cut into folds. Fold k (k = 0, 1, ...) has an out-of-sample (OOS) window
of ``oos_sessions`` sessions starting at session ``is_sessions + k * oos_sessions``; its in-sample
(IS) window is the ``is_sessions`` sessions before (``rolling``) or every session before
(``anchored``). The last fold may be shorter (``complete`` false): the most recent period counts,
and a longer history completes it.

Window sizes the request leaves out adapt to the N sessions after ATR warm-up
(``window_sizes``): ``is_sessions = min(504, max(60, N // 2))`` and ``oos_sessions =
round(is_sessions / 4)`` (halves up; from the request's ``is_sessions`` when only that is given).
With N // 2 in sample and a quarter of that out of sample, about four folds fit, so a one-year
backtest is checked out of sample too; from four years (N >= 1008) on, the windows are 504 / 126
(two years / six months). Fewer than 61 sessions: no fold. Explicit settings are used as given.

Per fold, a trader is selected on in-sample trades only: trades entered in the IS window that had
closed when the OOS window starts (``panel.LateTrades``). Among the traders with at least
``min_trades`` such trades (the candidates):

* ``selection: ranking`` (default) picks the first trader of ``reporting.rankings.rank_traders``
  computed on the IS window (the ranking's own order: DSR against all traders, share of positive
  years, Sharpe), the in-sample statistics computed exactly as the full-sample ones;
* ``selection: sharpe`` picks the highest IS Sharpe (ties: lowest trader_id), the naive rule.

No candidate: no pick, the fold stays flat. The picks' OOS daily series, stitched in order, give
the walk-forward result: its Sharpe (the README's "Statistics, verdict and units": mean / std
(ddof 1) of the daily series over every OOS session, times sqrt(252)), net R and ticks, win rate, maximum drawdown (of the cumulative daily
series, peak starting at 0) and trade count; the IS -> OOS degradation (mean IS Sharpe of the
picks minus their mean OOS Sharpe, a flat OOS window counting 0, and the ratio OOS / IS, the
walk-forward efficiency, when the IS mean is positive); the share of folds in
which the pick is in the OOS top decile of all traders of the grid (fewer than ceil(N / 10)
traders with a strictly higher OOS Sharpe; an undefined Sharpe ranks lowest).

Against random picks: ``random_paths`` sequences (seeded) pick, in every fold with a pick, one of
that fold's candidates uniformly at random; each sequence's stitched OOS Sharpe is computed from
the same trades. ``beats_random_share`` is the share of sequences the selection's stitched Sharpe
beats (ties count half). On pure noise it is uniform: above 1/2 half the time. The selection
"beats random picks out of sample" when the share is at least ``BEAT_RANDOM_LEVEL`` (0.95: a
one-sided test at 5%); otherwise the rankings' significance rule (``reporting.rankings.SIGNIFICANCE``)
calls none of its traders significant.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import polars as pl

from mochi_assets.aggregation import stats
from mochi_assets.reporting.rankings import rank_traders
from mochi_assets.validation.panel import Panel
from mochi_resources.errors import MochiError

BEAT_RANDOM_LEVEL = 0.95
# Adaptive walk-forward windows (module docstring): in-sample cap, floor and folds aimed at.
IS_SESSIONS_MAX = 504
IS_SESSIONS_MIN = 60
TARGET_FOLDS = 4
TOP_DECILE = 0.1
SQRT_YEAR = math.sqrt(stats.PERIODS_PER_YEAR)


@dataclass(frozen=True)
class WalkForwardParams:
    """The request's ``walk_forward`` settings that shape the folds and the selection."""

    is_sessions: int | None = None  # None: adaptive (window_sizes)
    oos_sessions: int | None = None
    mode: str = "rolling"
    selection: str = "ranking"
    min_trades: int = 30
    random_paths: int = 10_000
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("is_sessions", "oos_sessions", "random_paths"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise MochiError(f"walk_forward.{name}: must be at least 1, got {getattr(self, name)}")
        if self.min_trades < 0:
            raise MochiError(f"walk_forward.min_trades: must be >= 0, got {self.min_trades}")
        if self.mode not in ("rolling", "anchored"):
            raise MochiError(f"walk_forward.mode: must be rolling or anchored, got {self.mode!r}")
        if self.selection not in ("ranking", "sharpe"):
            raise MochiError(f"walk_forward.selection: must be ranking or sharpe, got {self.selection!r}")


@dataclass(frozen=True)
class Fold:
    is_lo: int
    is_hi: int  # == oos_lo
    oos_hi: int
    complete: bool


def window_sizes(n_sessions: int, params: WalkForwardParams) -> tuple[int, int, str]:
    """(is_sessions, oos_sessions, how they were set) on ``n_sessions`` sessions: the request's
    values, else the adaptive rule of the module docstring."""
    is_sessions = params.is_sessions
    if is_sessions is None:
        is_sessions = min(IS_SESSIONS_MAX, max(IS_SESSIONS_MIN, n_sessions // 2))
    oos_sessions = params.oos_sessions
    if oos_sessions is None:
        oos_sessions = max(1, (is_sessions * 2 + TARGET_FOLDS) // (2 * TARGET_FOLDS))
    if params.is_sessions is not None and params.oos_sessions is not None:
        how = "request"
    elif params.is_sessions is not None:
        how = "is_sessions from the request, oos_sessions = is_sessions / 4"
    elif params.oos_sessions is not None:
        how = (f"oos_sessions from the request, "
               f"is_sessions = min({IS_SESSIONS_MAX}, max({IS_SESSIONS_MIN}, {n_sessions} sessions / 2))")
    else:
        how = (f"adaptive: min({IS_SESSIONS_MAX}, max({IS_SESSIONS_MIN}, {n_sessions} sessions / 2)) in sample, "
               "a quarter out")
    return is_sessions, oos_sessions, how


def fold_windows(n_sessions: int, params: WalkForwardParams) -> list[Fold]:
    """The folds over ``n_sessions`` sessions (see the module docstring); none if too short."""
    is_sessions, oos_sessions, _ = window_sizes(n_sessions, params)
    folds = []
    oos_lo = is_sessions
    while oos_lo < n_sessions:
        oos_hi = min(oos_lo + oos_sessions, n_sessions)
        is_lo = 0 if params.mode == "anchored" else oos_lo - is_sessions
        folds.append(Fold(is_lo, oos_lo, oos_hi, oos_hi - oos_lo == oos_sessions))
        oos_lo += oos_sessions
    return folds


@dataclass(frozen=True)
class InSample:
    """A fold's in-sample view: only trades closed when its OOS window starts."""

    r: np.ndarray  # (T_is, N)
    ticks: np.ndarray
    trades: np.ndarray  # (N,)
    wins: np.ndarray


def in_sample(panel: Panel, lo: int, hi: int) -> InSample:
    """Sessions [lo, hi) of ``panel`` as known at the start of session ``hi``."""
    r = panel.r[lo:hi].copy()
    ticks = panel.ticks[lo:hi].copy()
    trades = panel.count_cum[hi] - panel.count_cum[lo]
    wins = panel.win_cum[hi] - panel.win_cum[lo]
    late = panel.late
    open_at_hi = (late.session >= lo) & (late.session < hi) & (late.known > hi)
    if open_at_hi.any():
        rows, cols = late.session[open_at_hi] - lo, late.trader[open_at_hi]
        # one trade per trader and session date (checked by build_panel): its cell becomes exactly 0
        r[rows, cols] = 0.0
        ticks[rows, cols] = 0.0
        trades = trades - np.bincount(cols, minlength=panel.traders)
        wins = wins - np.bincount(cols[late.win[open_at_hi]], minlength=panel.traders)
    return InSample(r, ticks, trades, wins)


def _by_year(dates: np.ndarray, ids: np.ndarray, view: InSample, panel: Panel, lo: int) -> pl.DataFrame:
    """trader_id, year, trades, net_pnl (in ticks: same sign as price units) of the IS window."""
    years = dates.astype("datetime64[Y]").astype(np.int64) + 1970
    starts = np.flatnonzero(np.r_[True, years[1:] != years[:-1]])
    ticks = np.add.reduceat(view.ticks, starts, axis=0)
    # per-year trade counts of the view: cumulative counts at year starts, late trades removed
    edges = np.r_[starts, len(dates)] + lo
    counts = np.diff(panel.count_cum[edges], axis=0)
    late = panel.late
    open_at_hi = (late.session >= lo) & (late.session < lo + len(dates)) & (late.known > lo + len(dates))
    if open_at_hi.any():
        year_of = np.searchsorted(starts, late.session[open_at_hi] - lo, side="right") - 1
        np.subtract.at(counts, (year_of, late.trader[open_at_hi]), 1)
    row, col = np.nonzero(counts)
    return pl.DataFrame(
        {
            "trader_id": ids[col],
            "year": years[starts][row].astype(np.int32),
            "trades": counts[row, col],
            "net_pnl": ticks[row, col],
        }
    )


def _pick(panel: Panel, view: InSample, lo: int, params: WalkForwardParams, traders: pl.DataFrame, scenario: str):
    """(picked column or None, candidates' columns, IS annualized Sharpe and DSR of every trader)."""
    tests = stats.sharpe_tests(view.r.T, effective=False)  # the pick reads sharpe and dsr only
    sharpe = tests.sharpe * SQRT_YEAR
    candidates = np.flatnonzero(view.trades >= params.min_trades)
    if candidates.size == 0:
        return None, candidates, sharpe, tests.dsr
    if params.selection == "sharpe":
        scores = np.where(np.isnan(sharpe[candidates]), -np.inf, sharpe[candidates])
        return int(candidates[np.argmax(scores)]), candidates, sharpe, tests.dsr
    ids = panel.trader_ids
    with np.errstate(invalid="ignore", divide="ignore"):
        win_rate = np.where(view.trades > 0, view.wins / np.maximum(view.trades, 1), np.nan)
    summary = pl.DataFrame(
        {
            "trader_id": ids,
            "trades": view.trades,
            "wins": view.wins,
            "win_rate": win_rate,
            "net_pnl_ticks": view.ticks.sum(axis=0),
            "sum_r": view.r.sum(axis=0),
            "sharpe": sharpe,
            "dsr": tests.dsr,
        }
    ).with_columns(pl.col("win_rate", "sharpe", "dsr").fill_nan(None))
    by_year = _by_year(panel.dates[lo : lo + view.r.shape[0]], ids, view, panel, lo)
    ranked = rank_traders(traders, summary, by_year, scenario=scenario, pbo=None, min_trades=params.min_trades)
    best = ranked.row(0, named=True)
    if not best["eligible"]:
        return None, candidates, sharpe, tests.dsr
    return int(np.searchsorted(ids, best["trader_id"])), candidates, sharpe, tests.dsr


def _stitched_sharpe(total: np.ndarray, total_sq: np.ndarray, n: int) -> np.ndarray:
    """Annualized Sharpe of stitched series from their sums and sums of squares (-inf undefined)."""
    total = np.asarray(total, dtype=np.float64)
    if n < 2:
        return np.full(total.shape, -np.inf)
    mean = total / n
    var = np.maximum(total_sq - n * mean * mean, 0.0) / (n - 1)
    std = np.sqrt(var)
    # sum-of-squares cancellation leaves about sqrt(eps) * |mean| of spread in a constant series
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(std > 1e-6 * np.abs(mean), mean / std * SQRT_YEAR, -np.inf)


def beats_random(share: float | None, level: float = BEAT_RANDOM_LEVEL) -> bool | None:
    """Whether a selection beats random picks out of sample (None: no walk-forward result)."""
    if share is None or (isinstance(share, float) and math.isnan(share)):
        return None
    return bool(share >= level)


def oos_verdict(share: float | None, folds: int, level: float = BEAT_RANDOM_LEVEL) -> str:
    """The out-of-sample clause of a scenario's verdict."""
    verdict = beats_random(share, level)
    if verdict is None:
        return "not checked out of sample (history too short for one walk-forward fold)"
    pct = f"{100 * share:.0f}%"
    if verdict:
        return f"its selection beats {pct} of random picks out of sample over {folds} folds"
    return (
        f"its selection beats only {pct} of random picks out of sample over {folds} folds "
        f"(needs {100 * level:.0f}%): not significant"
    )


def with_oos_verdict(board: pl.DataFrame) -> pl.DataFrame:
    """Leaderboard or rankings rows with an ``oos_verdict`` column: their scenario's out-of-sample
    clause (``oos_verdict``). Rows without the walk-forward columns (``oos_beats_random_share``,
    ``wf_folds``) are returned unchanged. Whether a trader is significant is the rankings'
    ``SIGNIFICANCE`` rule, whose out-of-sample condition reads ``oos_beats_random``.
    """
    if "oos_beats_random_share" not in board.columns or "wf_folds" not in board.columns:
        return board
    verdicts = [
        oos_verdict(share, folds or 0)
        for share, folds in zip(board["oos_beats_random_share"].to_list(), board["wf_folds"].to_list())
    ]
    return board.with_columns(pl.Series("oos_verdict", verdicts, dtype=pl.Utf8))


def out_of_sample_sentence(by_scenario: dict[str, pl.DataFrame]) -> str:
    """The out-of-sample clause of each scenario, as one sentence after the verdict ("" without)."""
    parts = []
    for scenario, frame in sorted(by_scenario.items()):
        if frame.height and "oos_beats_random_share" in frame.columns and "wf_folds" in frame.columns:
            row = frame.row(0, named=True)
            parts.append(f"{scenario}: {oos_verdict(row['oos_beats_random_share'], row['wf_folds'] or 0)}")
    return f"Out of sample (walk-forward), {'; '.join(parts)}." if parts else ""


def walk_forward(panel: Panel, traders: pl.DataFrame, params: WalkForwardParams, *, scenario: str, log=None) -> dict[str, pl.DataFrame]:
    """Folds, stitched OOS equity and summary of the walk-forward of one scenario.

    ``traders``: the scenario's trader table (trader_id and parameters; every panel trader).
    Returns ``folds`` (one row per fold), ``equity`` (one row per OOS session) and ``summary``
    (one row). ``log``: optional callable taking a progress line.
    """
    is_sessions, oos_sessions, windows = window_sizes(panel.sessions, params)
    params = replace(params, is_sessions=is_sessions, oos_sessions=oos_sessions)
    folds = fold_windows(panel.sessions, params)
    if log is not None:
        log(f"walk-forward windows: {is_sessions} in-sample / {oos_sessions} out-of-sample sessions of "
            f"{panel.sessions} ({windows}): {len(folds)} folds")
    n = panel.traders
    rows, series_r, series_ticks, fold_of, picks_of = [], [], [], [], []
    sums, candidates_of = [], []
    oos_trades = oos_wins = 0
    for k, fold in enumerate(folds):
        view = in_sample(panel, fold.is_lo, fold.is_hi)
        pick, candidates, is_sharpe, is_dsr = _pick(panel, view, fold.is_lo, params, traders, scenario)
        oos_r = panel.r[fold.is_hi : fold.oos_hi]
        oos_sr = np.asarray(stats.sharpe_per_period(oos_r.T, axis=1)) * SQRT_YEAR
        score = np.where(np.isnan(oos_sr), -np.inf, oos_sr)
        oos_counts = panel.count_cum[fold.oos_hi] - panel.count_cum[fold.is_hi]
        oos_wins_all = panel.win_cum[fold.oos_hi] - panel.win_cum[fold.is_hi]
        length = fold.oos_hi - fold.is_hi
        row = {
            "fold": k,
            "complete": fold.complete,
            "is_start": panel.dates[fold.is_lo],
            "is_end": panel.dates[fold.is_hi - 1],
            "oos_start": panel.dates[fold.is_hi],
            "oos_end": panel.dates[fold.oos_hi - 1],
            "is_sessions": fold.is_hi - fold.is_lo,
            "oos_sessions": length,
            "candidates": int(candidates.size),
            "trader_id": None,
            "is_trades": None,
            "is_sharpe": None,
            "is_dsr": None,
            "oos_trades": 0,
            "oos_net_r": 0.0,
            "oos_net_ticks": 0.0,
            "oos_sharpe": None,
            "oos_win_rate": None,
            "oos_percentile": None,
            "oos_top_decile": None,
        }
        if pick is None:
            series_r.append(np.zeros(length))
            series_ticks.append(np.zeros(length))
            sums.append(None)
        else:
            mine = score[pick]
            better = int((score > mine).sum())
            ties = int((score == mine).sum()) - 1
            row.update(
                trader_id=int(panel.trader_ids[pick]),
                is_trades=int(view.trades[pick]),
                is_sharpe=_finite(is_sharpe[pick]),
                is_dsr=_finite(is_dsr[pick]),
                oos_trades=int(oos_counts[pick]),
                oos_net_r=float(oos_r[:, pick].sum()),
                oos_net_ticks=float(panel.ticks[fold.is_hi : fold.oos_hi, pick].sum()),
                oos_sharpe=_finite(oos_sr[pick]),
                oos_win_rate=float(oos_wins_all[pick] / oos_counts[pick]) if oos_counts[pick] else None,
                oos_percentile=float((n - 1 - better - ties + 0.5 * ties) / (n - 1)) if n > 1 else None,
                oos_top_decile=better < math.ceil(TOP_DECILE * n),
            )
            oos_trades += int(oos_counts[pick])
            oos_wins += int(oos_wins_all[pick])
            series_r.append(oos_r[:, pick].copy())
            series_ticks.append(panel.ticks[fold.is_hi : fold.oos_hi, pick].copy())
            sums.append((oos_r.sum(axis=0), np.einsum("ij,ij->j", oos_r, oos_r), pick))
            candidates_of.append(candidates)
        rows.append(row)
        fold_of.append(np.full(length, k))
        picks_of.append(np.full(length, -1 if pick is None else int(panel.trader_ids[pick])))
        if log is not None:
            log(f"walk-forward fold {k + 1}/{len(folds)}: OOS {row['oos_start']} to {row['oos_end']}, "
                f"pick {row['trader_id']}, OOS net R {row['oos_net_r']:.2f}")

    fold_table = _fold_frame(rows, traders)
    equity = _equity(panel, folds, series_r, series_ticks, fold_of, picks_of)
    summary = _summary(panel, params, folds, rows, series_r, series_ticks, sums, candidates_of,
                       oos_trades, oos_wins, scenario, windows)
    return {"folds": fold_table, "equity": equity, "summary": summary}


def _finite(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


FOLD_SCHEMA = {
    "fold": pl.Int64, "complete": pl.Boolean, "is_start": pl.Date, "is_end": pl.Date, "oos_start": pl.Date,
    "oos_end": pl.Date, "is_sessions": pl.Int64, "oos_sessions": pl.Int64, "candidates": pl.Int64,
    "trader_id": pl.Int64, "is_trades": pl.Int64, "is_sharpe": pl.Float64, "is_dsr": pl.Float64,
    "oos_trades": pl.Int64, "oos_net_r": pl.Float64, "oos_net_ticks": pl.Float64, "oos_sharpe": pl.Float64,
    "oos_win_rate": pl.Float64, "oos_percentile": pl.Float64, "oos_top_decile": pl.Boolean,
}


def _fold_frame(rows: list[dict], traders: pl.DataFrame) -> pl.DataFrame:
    frame = pl.DataFrame(
        [{k: (v.item() if isinstance(v, np.generic) else v) for k, v in row.items()} for row in rows],
        schema=FOLD_SCHEMA, orient="row",
    )
    params = traders.drop([c for c in ("scenario",) if c in traders.columns])
    return frame.join(params, on="trader_id", how="left").sort("fold")


def _equity(panel, folds, series_r, series_ticks, fold_of, picks_of) -> pl.DataFrame:
    """Stitched OOS equity of the selection beside the 10/50/90% quantiles of every trader's."""
    if not folds:
        return pl.DataFrame(schema={
            "session_date": pl.Date, "fold": pl.Int64, "trader_id": pl.Int64, "oos_r": pl.Float64,
            "oos_cum_r": pl.Float64, "oos_cum_ticks": pl.Float64, "grid_q10_cum_r": pl.Float64,
            "grid_median_cum_r": pl.Float64, "grid_q90_cum_r": pl.Float64,
        })
    lo, hi = folds[0].is_hi, folds[-1].oos_hi
    grid_cum = np.cumsum(panel.r[lo:hi], axis=0)
    q10, q50, q90 = np.quantile(grid_cum, [0.1, 0.5, 0.9], axis=1)
    r = np.concatenate(series_r)
    picks = np.concatenate(picks_of)
    return pl.DataFrame(
        {
            "session_date": panel.dates[lo:hi],
            "fold": np.concatenate(fold_of),
            "trader_id": pl.Series(picks).replace(-1, None),
            "oos_r": r,
            "oos_cum_r": np.cumsum(r),
            "oos_cum_ticks": np.cumsum(np.concatenate(series_ticks)),
            "grid_q10_cum_r": q10,
            "grid_median_cum_r": q50,
            "grid_q90_cum_r": q90,
        }
    ).with_columns(pl.col("session_date").cast(pl.Date))


def random_pick_sharpes(sums: list, candidates_of: list[np.ndarray], n_sessions: int, paths: int, seed: int) -> np.ndarray:
    """Stitched OOS Sharpes of ``paths`` random pick sequences (folds without a pick stay flat).

    ``sums``: per fold with a pick, (every trader's OOS sum, sum of squares, pick); ``None`` for a
    flat fold. ``candidates_of``: each picked fold's candidate columns. Seeded: same inputs, same draws.
    """
    rng = np.random.default_rng(seed)
    total = np.zeros(paths)
    total_sq = np.zeros(paths)
    picked = [s for s in sums if s is not None]
    for (fold_sum, fold_sq, _), candidates in zip(picked, candidates_of):
        choice = candidates[rng.integers(0, candidates.size, size=paths)]
        total += fold_sum[choice]
        total_sq += fold_sq[choice]
    return _stitched_sharpe(total, total_sq, n_sessions)


def _summary(panel, params, folds, rows, series_r, series_ticks, sums, candidates_of, oos_trades, oos_wins, scenario,
             windows):
    n_oos = sum(f.oos_hi - f.is_hi for f in folds)
    picked = [row for row in rows if row["trader_id"] is not None]
    base = {
        "scenario": scenario, "mode": params.mode, "selection": params.selection,
        "is_sessions": params.is_sessions, "oos_sessions": params.oos_sessions, "windows": windows,
        "min_trades": params.min_trades,
        "folds": len(folds), "folds_with_pick": len(picked), "distinct_picks": len({r["trader_id"] for r in picked}),
        "oos_sessions_total": n_oos, "oos_trades": oos_trades,
    }
    schema = {
        "scenario": pl.Utf8, "mode": pl.Utf8, "selection": pl.Utf8, "is_sessions": pl.Int64,
        "oos_sessions": pl.Int64, "windows": pl.Utf8, "min_trades": pl.Int64, "folds": pl.Int64, "folds_with_pick": pl.Int64,
        "distinct_picks": pl.Int64, "oos_sessions_total": pl.Int64, "oos_trades": pl.Int64,
        "oos_net_r": pl.Float64, "oos_net_ticks": pl.Float64, "oos_sharpe": pl.Float64, "oos_win_rate": pl.Float64,
        "oos_max_drawdown_r": pl.Float64, "oos_max_drawdown_ticks": pl.Float64, "is_sharpe_mean": pl.Float64,
        "oos_sharpe_mean": pl.Float64, "sharpe_degradation": pl.Float64, "wf_efficiency": pl.Float64,
        "top_decile_share": pl.Float64, "random_paths": pl.Int64, "beats_random_share": pl.Float64,
        "oos_beats_random": pl.Boolean, "note": pl.Utf8,
    }
    if not folds:
        needed = params.is_sessions + 1
        note = (f"{panel.sessions} sessions after ATR warm-up: one fold needs more than "
                f"walk_forward.is_sessions = {params.is_sessions} ({windows}; at least {needed}); no walk-forward")
        return pl.DataFrame([{**base, "random_paths": 0, "note": note}], schema=schema)
    r = np.concatenate(series_r)
    ticks = np.concatenate(series_ticks)
    is_sharpes = [row["is_sharpe"] for row in picked if row["is_sharpe"] is not None]
    oos_sharpes = [row["oos_sharpe"] if row["oos_sharpe"] is not None else 0.0 for row in picked]
    is_mean = float(np.mean(is_sharpes)) if is_sharpes else None
    oos_mean = float(np.mean(oos_sharpes)) if oos_sharpes else None
    share = None
    if picked:
        total = sum(s[0][s[2]] for s in sums if s is not None)
        total_sq = sum(s[1][s[2]] for s in sums if s is not None)
        mine = float(_stitched_sharpe(np.array([total]), np.array([total_sq]), n_oos)[0])
        random = random_pick_sharpes(sums, candidates_of, n_oos, params.random_paths, params.seed)
        share = float((random < mine).mean() + 0.5 * (random == mine).mean())
    decile = [row["oos_top_decile"] for row in picked]
    values = {
        **base,
        "oos_net_r": float(r.sum()),
        "oos_net_ticks": float(ticks.sum()),
        "oos_sharpe": _finite(stats.annualized_sharpe(r)),
        "oos_win_rate": oos_wins / oos_trades if oos_trades else None,
        "oos_max_drawdown_r": stats.max_drawdown(r),
        "oos_max_drawdown_ticks": stats.max_drawdown(ticks),
        "is_sharpe_mean": is_mean,
        "oos_sharpe_mean": oos_mean,
        "sharpe_degradation": is_mean - oos_mean if is_mean is not None and oos_mean is not None else None,
        "wf_efficiency": oos_mean / is_mean if is_mean and is_mean > 0 and oos_mean is not None else None,
        "top_decile_share": float(np.mean(decile)) if decile else None,
        "random_paths": params.random_paths if picked else 0,
        "beats_random_share": share,
        "oos_beats_random": beats_random(share),
        "note": oos_verdict(share, len(folds)) if picked else "no trader had enough in-sample trades in any fold",
    }
    return pl.DataFrame([values], schema=schema)
