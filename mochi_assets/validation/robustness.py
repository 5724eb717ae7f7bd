"""Robustness of a scenario's top traders: parameter plateau, Monte Carlo on trades, data snooping.

* **Plateau.** A trader's neighbours are the traders of the grid that differ from it by one step
  along one axis (the next lower or higher value of that parameter in the grid, every other
  parameter equal); axes are the parameters with more than one value. ``plateau_score`` is the
  mean annualized Sharpe of the neighbours (those with a defined Sharpe) over the trader's own: 1
  is a flat plateau, near 0 or below a lone spike; undefined unless the trader's Sharpe is positive.
* **Monte Carlo.** ``mc_paths`` resampled histories of the trader's daily R series (the README's
  daily series: trades summed per session date, zero without a trade) by a circular block
  bootstrap over sessions: blocks of ``block_sessions`` consecutive sessions (so a day keeps its
  trades and short-range dependence survives) starting at uniform random sessions, wrapped around
  the end, concatenated and cut to the history's length. Seeded. Reported: 5/50/95 percentiles of
  the maximum drawdown (cumulative R from a peak starting at 0) and of the final R, and the share of
  paths ending below 0.
* **Data snooping.** Hansen's Superior Predictive Ability test and White's Reality Check over every
  trader of the scenario against not trading (loss = -daily R, the benchmark's loss 0), with the
  stationary bootstrap of the ``arch`` package (its index stream, seed and average block length
  sqrt(T), as ``arch.bootstrap.SPA`` uses them; the indices are drawn here exactly as arch 8 draws
  them, without importing arch, and tests check them against arch's). The p-values are arch's: ``spa_pvalue`` its
  "consistent" p-value, ``reality_check_pvalue`` its "upper" one (White's Reality Check). A small
  p-value says the best trader's edge is unlikely to be the luck of the best of N.

  ``arch.bootstrap.SPA`` itself computes the variances with an O(T^2 K) loop and resamples the
  whole T x K matrix once per replication (minutes for 2,600 sessions x 2,000 traders); this module
  takes the same bootstrap indices as arch and evaluates the same statistics as one matrix
  product of resampling counts (reps x T) with the daily series (T x K), and the variances'
  autocovariances by FFT. ``tests/validation`` checks the p-values equal arch's on small cases.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import polars as pl
from numba import njit
from scipy import fft as sfft

from mochi_assets.contracts import TRADER_PARAMETERS
from mochi_resources.errors import MochiError

PERCENTILES = (5, 50, 95)
_FFT_COLUMNS = 512


def grid_axes(traders: pl.DataFrame) -> list[str]:
    """Trader parameters with more than one value in the grid (in the contract's order)."""
    return [c for c in TRADER_PARAMETERS if c in traders.columns and traders[c].n_unique() > 1]


def neighbours(traders: pl.DataFrame, trader_id: int) -> list[tuple[str, object, int]]:
    """(axis, neighbour's value, neighbour trader_id) one grid step from ``trader_id`` along each axis."""
    axes = grid_axes(traders)
    params = [c for c in TRADER_PARAMETERS if c in traders.columns]
    index = {tuple(row[c] for c in params): row["trader_id"] for row in traders.iter_rows(named=True)}
    me = traders.filter(pl.col("trader_id") == trader_id)
    if me.is_empty():
        raise MochiError(f"plateau: trader_id {trader_id} is not in the trader table")
    mine = me.row(0, named=True)
    found = []
    for axis in axes:
        values = sorted(traders[axis].unique().to_list())
        at = values.index(mine[axis])
        for step in (-1, 1):
            if 0 <= at + step < len(values):
                key = tuple(values[at + step] if c == axis else mine[c] for c in params)
                if key in index:
                    found.append((axis, values[at + step], int(index[key])))
    return found


def plateau(traders: pl.DataFrame, sharpe: dict[int, float | None], trader_ids: list[int]) -> pl.DataFrame:
    """Plateau figures of ``trader_ids`` (see the module docstring); ``sharpe`` maps every trader."""
    rows = []
    for trader_id in trader_ids:
        near = neighbours(traders, trader_id)
        values = [sharpe.get(n) for _, _, n in near]
        defined = [v for v in values if v is not None and math.isfinite(v)]
        own = sharpe.get(trader_id)
        mean = float(np.mean(defined)) if defined else None
        rows.append(
            {
                "trader_id": trader_id,
                "neighbours": len(near),
                "neighbour_sharpe_mean": mean,
                "neighbour_sharpe_min": float(min(defined)) if defined else None,
                "neighbours_positive_share": float(np.mean([v > 0 for v in defined])) if defined else None,
                "plateau_score": mean / own if mean is not None and own is not None and own > 0 else None,
            }
        )
    return pl.DataFrame(
        rows,
        schema={
            "trader_id": pl.Int64, "neighbours": pl.Int64, "neighbour_sharpe_mean": pl.Float64,
            "neighbour_sharpe_min": pl.Float64, "neighbours_positive_share": pl.Float64, "plateau_score": pl.Float64,
        },
    )


def block_bootstrap_indices(n_sessions: int, block: int, paths: int, seed: int) -> np.ndarray:
    """(paths, n_sessions) session indices of circular block bootstrap histories (seeded)."""
    if n_sessions < 1 or block < 1 or paths < 1:
        raise MochiError(f"Monte Carlo: needs sessions, block and paths >= 1 (got {n_sessions}, {block}, {paths})")
    blocks = -(-n_sessions // block)
    starts = np.random.default_rng(seed).integers(0, n_sessions, size=(paths, blocks))
    idx = (starts[:, :, None] + np.arange(block)) % n_sessions
    return np.ascontiguousarray(idx.reshape(paths, blocks * block)[:, :n_sessions])


@njit(cache=True)
def _path_extremes(daily: np.ndarray, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(max drawdown, final R) of each resampled history (a row of session `indices` into `daily`),
    one pass per path without the paths x sessions matrices: the equity is the running sum in
    session order (the additions np.cumsum makes, in its order), the peak starts at 0."""
    paths, sessions = indices.shape
    drawdown = np.empty(paths)
    final = np.empty(paths)
    for p in range(paths):
        equity = 0.0
        peak = 0.0
        worst = 0.0
        for i in range(sessions):
            equity += daily[indices[p, i]]
            if equity > peak:
                peak = equity
            if peak - equity > worst:
                worst = peak - equity
        drawdown[p] = worst
        final[p] = equity
    return drawdown, final


def monte_carlo(daily: np.ndarray, indices: np.ndarray) -> dict[str, float]:
    """Percentiles of max drawdown and final R over the resampled histories of one daily series."""
    daily = np.ascontiguousarray(daily, dtype=np.float64)
    indices = np.ascontiguousarray(indices, dtype=np.int64)
    if indices.size and (indices.min() < 0 or indices.max() >= daily.shape[0]):
        raise MochiError(f"Monte Carlo: session indices must lie in 0..{daily.shape[0] - 1}")
    if not np.isfinite(daily).all():
        raise MochiError("Monte Carlo: the daily R series holds a NaN or an infinity")
    drawdown, final = _path_extremes(daily, indices)
    out = {}
    for p, dd, fin in zip(PERCENTILES, np.percentile(drawdown, PERCENTILES), np.percentile(final, PERCENTILES)):
        out[f"mc_max_drawdown_p{p}"] = float(dd)
        out[f"mc_final_r_p{p}"] = float(fin)
    out["mc_loss_share"] = float((final < 0).mean())
    return out


_BOOTSTRAP_CHUNK = 128  # replications drawn and counted at a time (bounds the index arrays' memory)


def _stationary_index_chunks(n_sessions: int, reps: int, block: int, seed: int) -> Iterator[np.ndarray]:
    """``stationary_bootstrap_indices`` in consecutive blocks of at most ``_BOOTSTRAP_CHUNK`` rows
    (arguments checked at the call, not at the first block)."""
    if n_sessions < 1 or reps < 1 or block < 1:
        raise MochiError(f"stationary bootstrap: needs sessions, reps and block >= 1 (got {n_sessions}, {reps}, {block})")
    return _index_blocks(n_sessions, reps, block, seed)


def _index_blocks(n_sessions: int, reps: int, block: int, seed: int) -> Iterator[np.ndarray]:
    """arch's stationary bootstrap, ``_BOOTSTRAP_CHUNK`` replications at a time: per replication
    ``integers(n, size=n)`` then ``random(n)`` from ``numpy.random.default_rng(seed)``, walked into
    session indices by ``_walk_stationary``."""
    generator = np.random.default_rng(int(seed))
    for lo in range(0, reps, _BOOTSTRAP_CHUNK):
        rows = min(_BOOTSTRAP_CHUNK, reps - lo)
        draws = np.empty((rows, n_sessions), dtype=np.int64)
        uniforms = np.empty((rows, n_sessions), dtype=np.float64)
        for i in range(rows):  # the stream interleaves the two kinds of draws: one call pair per replication
            draws[i] = generator.integers(n_sessions, size=n_sessions, dtype=np.int64)
            uniforms[i] = generator.random(n_sessions)
        yield _walk_stationary(draws, uniforms, 1.0 / block)


@njit(cache=True)
def _walk_stationary(draws: np.ndarray, uniforms: np.ndarray, p: float) -> np.ndarray:
    """Each replication's (row's) session indices: position 0 takes its draw; position i > 0
    takes its own draw when its uniform is at most p, else continues the previous session
    (wrapping to 0 at the end)."""
    rows, n = draws.shape
    indices = np.empty((rows, n), dtype=np.int64)
    for r in range(rows):
        index = draws[r, 0]
        indices[r, 0] = index
        for i in range(1, n):
            if uniforms[r, i] <= p:
                index = draws[r, i]
            else:
                index += 1
                if index == n:
                    index = 0
            indices[r, i] = index
    return indices


def stationary_bootstrap_indices(n_sessions: int, reps: int, block: int, seed: int) -> np.ndarray:
    """(reps, n_sessions) session indices of ``arch.bootstrap.StationaryBootstrap(block, ..., seed=seed)``.

    The same draws, in the same order, as arch 8's ``update_indices``: per replication
    ``integers(n, size=n)`` then ``random(n)`` from ``numpy.random.default_rng(seed)``; position
    i > 0 continues the previous one (wrapping to 0 at the end) when its uniform is above
    p = 1/block, otherwise keeps its own draw. arch is not imported for this: its package import
    (pandas, statsmodels, matplotlib) cost about 2 s of every process that ran a robustness step.
    ``tests/validation`` checks the indices equal arch's.
    """
    return np.concatenate(list(_stationary_index_chunks(n_sessions, reps, block, seed)))


def bootstrap_counts(n_sessions: int, reps: int, block: int, seed: int) -> np.ndarray:
    """(reps, n_sessions) how often each session appears in each stationary bootstrap draw
    (``stationary_bootstrap_indices``), counted a chunk of replications at a time."""
    counts = np.empty((reps, n_sessions), dtype=np.float64)
    lo = 0
    for indices in _stationary_index_chunks(n_sessions, reps, block, seed):
        rows = indices.shape[0]
        flat = indices + (np.arange(rows, dtype=np.int64) * n_sessions)[:, None]
        counts[lo : lo + rows] = np.bincount(flat.ravel(), minlength=rows * n_sessions).reshape(rows, n_sessions)
        lo += rows
    return counts


def _kernel_variances(loss_diff: np.ndarray, block: int) -> np.ndarray:
    """arch SPA's variance of each column's mean loss differential (stationary-bootstrap kernel).

    ``gamma_0 + 2 sum_i kappa_i gamma_i``, gamma_i the lag-i autocovariance (divided by T) and
    kappa_i = (1 - i/T)(1 - p)^i + (i/T)(1 - p)^(T - i), p = 1/block. The autocovariances are the
    inverse FFT of the power spectrum; the weighted sum of them is taken in the frequency domain
    (one real FFT of the data, one of the weights).
    """
    t, k = loss_diff.shape
    size = sfft.next_fast_len(2 * t, real=True)
    lags = np.arange(1, t)
    p = 1.0 / block
    weights = np.zeros(size)
    weights[0] = 1.0
    weights[1:t] = 2.0 * ((1.0 - lags / t) * (1.0 - p) ** lags + (lags / t) * (1.0 - p) ** (t - lags))
    # sum_j w_j irfft(P)_j = sum_f P_f c_f for a real spectrum P
    coeff = sfft.rfft(weights).real / size
    coeff[1:] *= 2.0
    if size % 2 == 0:
        coeff[-1] /= 2.0
    out = np.empty(k)
    for lo in range(0, k, _FFT_COLUMNS):  # a few traders at a time: the spectra stay small
        chunk = loss_diff[:, lo : lo + _FFT_COLUMNS]
        spectrum = sfft.rfft(chunk - chunk.mean(axis=0), n=size, axis=0, workers=-1)
        power = spectrum.real**2
        power += spectrum.imag**2
        out[lo : lo + _FFT_COLUMNS] = (coeff @ power) / t
    return out


def data_snooping_pvalues(daily: np.ndarray, reps: int = 1000, seed: int = 0, block: int | None = None) -> dict[str, float]:
    """SPA (lower, consistent) and Reality Check (upper) p-values of sessions x traders ``daily``.

    The models' losses are -daily, the benchmark's 0 (not trading), so the loss differentials are
    the daily series. ``nan`` p-values with fewer than 2 sessions or no trader.
    """
    x = np.asarray(daily, dtype=np.float64)
    if x.ndim != 2:
        raise MochiError(f"data snooping: daily must be sessions x traders, got shape {x.shape}")
    t, k = x.shape
    if t < 2 or k == 0:
        nan = float("nan")
        return {"spa_pvalue_lower": nan, "spa_pvalue": nan, "reality_check_pvalue": nan}
    block = int(np.sqrt(t)) if block is None else block
    mean = x.mean(axis=0)
    variances = _kernel_variances(x, block)
    valid = mean >= -np.sqrt((variances / t) * 2 * np.log(np.log(t)))
    boot_means = bootstrap_counts(t, reps, block, seed) @ x / t  # reps x k
    centres = {
        "spa_pvalue_lower": np.maximum(mean, 0.0),
        "spa_pvalue": np.where(valid, mean, 0.0),
        "reality_check_pvalue": mean,
    }
    observed = mean.max()
    return {name: float(((boot_means - centre).max(axis=1) > observed).mean()) for name, centre in centres.items()}


def robustness_table(
    traders: pl.DataFrame,
    ranked: pl.DataFrame,
    daily: np.ndarray,
    trader_ids: np.ndarray,
    *,
    top: int,
    mc_paths: int,
    block_sessions: int,
    spa_reps: int,
    seed: int,
    pbo: float | None,
) -> pl.DataFrame:
    """One row per top trader (by ``ranked``'s rank): Sharpe, DSR, plateau, Monte Carlo, and the
    scenario's SPA / Reality Check p-values beside its PBO.

    ``daily``: sessions x traders R matrix whose columns are ``trader_ids`` (sorted).
    """
    if top < 1:
        raise MochiError(f"walk_forward.top: must be at least 1, got {top}")
    head = ranked.sort("rank").head(top).select("rank", "trader_id", "sharpe", "dsr")
    sharpe = dict(zip(ranked["trader_id"].to_list(), ranked["sharpe"].to_list()))
    plateau_rows = plateau(traders, sharpe, head["trader_id"].to_list())
    snoop = data_snooping_pvalues(daily, reps=spa_reps, seed=seed)
    n_sessions = daily.shape[0]
    mc_rows = []
    if n_sessions:
        indices = block_bootstrap_indices(n_sessions, block_sessions, mc_paths, seed)
        for trader_id in head["trader_id"].to_list():
            column = int(np.searchsorted(trader_ids, trader_id))
            mc_rows.append({"trader_id": trader_id, **monte_carlo(daily[:, column], indices)})
    mc_schema = {"trader_id": pl.Int64, **{f"mc_{m}_p{p}": pl.Float64 for m in ("max_drawdown", "final_r") for p in PERCENTILES},
                 "mc_loss_share": pl.Float64}
    mc = pl.DataFrame(mc_rows, schema=mc_schema)
    return (
        head.join(plateau_rows, on="trader_id", how="left")
        .join(mc, on="trader_id", how="left")
        .with_columns(
            pl.lit(snoop["spa_pvalue"], dtype=pl.Float64).fill_nan(None).alias("spa_pvalue"),
            pl.lit(snoop["spa_pvalue_lower"], dtype=pl.Float64).fill_nan(None).alias("spa_pvalue_lower"),
            pl.lit(snoop["reality_check_pvalue"], dtype=pl.Float64).fill_nan(None).alias("reality_check_pvalue"),
            pl.lit(pbo, dtype=pl.Float64).fill_nan(None).alias("pbo"),
            pl.lit(mc_paths, dtype=pl.Int64).alias("mc_paths"),
            pl.lit(block_sessions, dtype=pl.Int64).alias("mc_block_sessions"),
        )
        .sort("rank")
    )
