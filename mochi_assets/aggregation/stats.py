"""Overfitting-aware statistics of trader return series (NumPy/SciPy, one numba kernel; no I/O).

Inputs are per-period (per session date) return series, typically a ``traders x T`` matrix whose
row is a trader's daily series: the sum of its trades' ``r`` on each session date after ATR
warm-up, zero on dates without a trade (the README's "Statistics, verdict and units", which
states every convention below).

Conventions chosen here (and tested):

* A Sharpe ratio is undefined (``nan``) when the series has fewer than 2 values or a zero standard
  deviation (e.g. a trader that never traded). Nothing is coerced to 0.
* ``deflated_sharpe_ratios``: the number of trials N is every trader (row) of the scenario, idle
  ones included; the variance V of the trial Sharpes is taken over the traders whose per-period
  Sharpe is defined (an undefined Sharpe is left out of the variance only). A trader with an
  undefined Sharpe cannot be the selected "best" trial and gets ``nan``. With fewer than 2 defined
  Sharpes V is 0, so SR0 = 0 and the DSR equals the PSR against zero; with N = 1 there is no
  selection to deflate for either. T < 2 gives all ``nan``.
* ``effective_trials``: many traders of a grid differ by one notch of one parameter and trade
  almost alike, so N overstates how many independent tries were made. The effective number is the
  participation ratio of the eigenvalues of the correlation matrix of the defined traders' daily
  series, ``(sum l)^2 / sum l^2 = n^2 / sum_ij C_ij^2`` (``n`` = traders with a defined Sharpe),
  plus one trial for the traders without a defined Sharpe (nearly always idle traders, identical
  to one another). It is n for uncorrelated series, k for k groups of perfectly correlated ones,
  and always between 1 and n; unlike a count of identical outcomes it also discounts traders that
  differ by a few trades, and unlike a threshold clustering it has no tuning parameter. It needs
  only the sum of squared correlations (the squared Frobenius norm of a Gram matrix, computed on
  the smaller side), not an eigendecomposition. ``dsr_eff`` is the DSR against the SR0 of this
  effective number (rounded to a whole number of trials); the conservative ``dsr`` (every trader
  a trial) is the one that ranks.
* ``probability_of_backtest_overfitting``: the trials are the traders with a defined full-series
  Sharpe (an idle trader has nothing to rank). Each half must hold at least 2 dates, so the
  block count is ``min(n_blocks, T // 2)`` rounded down to even; fewer than 2 blocks or 2 trials gives ``nan``.
  A half in which a trial is flat (no trade there) scores 0 (or +/-inf for a constant non-zero
  series), so it still takes part in that split's ranking.
"""

from __future__ import annotations

import itertools
import math
from typing import NamedTuple

import numpy as np
from numba import njit
from scipy.special import ndtr, ndtri  # the normal CDF and its inverse, as scipy.stats.norm uses them

from mochi_assets.kernel_threads import run_ranges

EULER_GAMMA = 0.5772156649
PERIODS_PER_YEAR = 252


def sharpe_per_period(series: np.ndarray, axis: int = -1) -> np.ndarray | float:
    """Mean over standard deviation (ddof 1) along ``axis``; ``nan`` where undefined.

    Undefined means fewer than 2 values or a zero standard deviation. A 1-D input returns a float.
    """
    x = np.asarray(series, dtype=np.float64)
    if x.ndim == 0:
        return float("nan")
    if x.shape[axis] < 2:
        out = np.full(np.moveaxis(x, axis, -1).shape[:-1], np.nan)
        return float(out) if out.ndim == 0 else out
    mean = x.mean(axis=axis)
    std = x.std(axis=axis, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        # A zero std from rounding is still zero: the series is constant, the ratio undefined.
        sr = np.where(std > 1e-14 * np.maximum(np.abs(mean), 1e-300), mean / std, np.nan)
    return float(sr) if np.ndim(sr) == 0 else sr


def annualized_sharpe(series: np.ndarray, axis: int = -1) -> np.ndarray | float:
    """Per-period Sharpe times sqrt(252) (session dates per year); ``nan`` where undefined."""
    sr = sharpe_per_period(series, axis=axis)
    return sr * math.sqrt(PERIODS_PER_YEAR)


def _psr_array(
    sr: np.ndarray, n: int, skew: np.ndarray, kurtosis: np.ndarray, sr_benchmark: np.ndarray | float
) -> np.ndarray:
    """Vectorized PSR; ``nan`` where an input is undefined or the variance term is not positive."""
    sr = np.asarray(sr, dtype=np.float64)
    if n < 2:
        return np.full(sr.shape, np.nan)
    var_term = 1.0 - skew * sr + (kurtosis - 1.0) / 4.0 * sr**2
    with np.errstate(invalid="ignore", divide="ignore"):
        z = (sr - sr_benchmark) * math.sqrt(n - 1) / np.sqrt(np.where(var_term > 0, var_term, np.nan))
    return ndtr(z)


def probabilistic_sharpe_ratio(
    sr: float, n: int, skew: float = 0.0, kurtosis: float = 3.0, sr_benchmark: float = 0.0
) -> float:
    """Probability that the true per-period Sharpe exceeds ``sr_benchmark`` (Bailey & Lopez de Prado).

    ``PSR = Phi((sr - sr0) * sqrt(n - 1) / sqrt(1 - skew*sr + (kurtosis - 1)/4 * sr^2))`` with raw
    (non-excess, normal = 3) kurtosis and ``n`` observations. ``nan`` when n < 2, an input is nan, or
    the variance term is not positive.
    """
    value = _psr_array(np.asarray(sr), int(n), np.asarray(skew), np.asarray(kurtosis), sr_benchmark)
    return float(value)


def expected_max_sharpe(variance: float, n_trials: int) -> float:
    """SR0: expected maximum per-period Sharpe of ``n_trials`` unskilled trials (README, "Statistics").

    ``sqrt(V) * ((1 - g) * Phi^-1(1 - 1/N) + g * Phi^-1(1 - 1/(N e)))``, g = Euler's constant.
    One trial has no selection bias: 0. ``nan`` for a negative or nan variance or N < 1.
    """
    if not n_trials >= 1 or not variance >= 0:
        return float("nan")
    if n_trials == 1:
        return 0.0
    n = float(n_trials)
    quantiles = (1.0 - EULER_GAMMA) * ndtri(1.0 - 1.0 / n) + EULER_GAMMA * ndtri(1.0 - 1.0 / (n * math.e))
    return float(math.sqrt(variance) * quantiles)


def _moments(daily: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-row per-period Sharpe, skewness and raw kurtosis (biased estimators, scipy's defaults).

    Skewness m3 / m2^1.5 and kurtosis m4 / m2^2 from the central moments m_k = mean((x - mean)^k),
    what ``scipy.stats.skew`` and ``kurtosis(fisher=False)`` return, sharing one pass of deviations
    (scipy's near-constant guard never applies: rows without a defined Sharpe are skipped).
    """
    x = np.asarray(daily, dtype=np.float64)
    if x.shape[1] < 2:
        undefined = np.full(x.shape[0], np.nan)
        return undefined, undefined.copy(), undefined.copy()
    sr, skew, kurt, _ = _moments_and_deviations(x)
    return sr, skew, kurt


def _moments_and_deviations(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``_moments`` of the rows of the 2-D ``x`` (T >= 2), plus the rows with a defined Sharpe
    minus their means (for ``effective_trials``).

    One set of deviations serves the Sharpe and every moment: the same operations in the same
    order as ``x.mean`` / ``x.std(ddof=1)`` (NumPy's ``_var``: sum of squared deviations over
    T - 1, square root) and the per-moment means, so the same bits, in about half the passes
    over the traders x T matrix.
    """
    n_periods = x.shape[1]
    mean = x.mean(axis=1)
    dev = x - mean[:, None]
    power = dev * dev
    sum_sq = power.sum(axis=1)
    std = np.sqrt(sum_sq / (n_periods - 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        # as in sharpe_per_period: a zero std from rounding is still zero
        sr = np.where(std > 1e-14 * np.maximum(np.abs(mean), 1e-300), mean / std, np.nan)
    defined = np.isfinite(sr)
    skew = np.full(sr.shape, np.nan)
    kurt = np.full(sr.shape, np.nan)
    every = bool(defined.all())
    if defined.any():
        if not every:
            dev, power, sum_sq = dev[defined], power[defined], sum_sq[defined]
        m2 = sum_sq / n_periods
        power *= dev
        m3 = power.mean(axis=1)
        power *= dev
        m4 = power.mean(axis=1)
        skew[defined] = m3 / m2**1.5
        kurt[defined] = m4 / m2**2
    elif not every:
        dev = dev[defined]
    return sr, skew, kurt, dev


class SharpeTests(NamedTuple):
    """Per-trader Sharpe statistics of a traders x T matrix (see ``sharpe_tests``)."""

    sharpe: np.ndarray  # per-period Sharpe, nan where undefined
    dsr: np.ndarray  # Deflated Sharpe Ratio against all traders as trials
    psr: np.ndarray  # Probabilistic Sharpe Ratio against 0
    sr0: float  # the DSR's benchmark: expected maximum per-period Sharpe of n_trials unskilled trials
    n_trials: int  # every trader (row), idle ones included
    dsr_eff: np.ndarray  # Deflated Sharpe Ratio against round(n_trials_eff) trials
    sr0_eff: float  # expected maximum per-period Sharpe of round(n_trials_eff) unskilled trials
    n_trials_eff: float  # effective number of independent trials (``effective_trials``)


def sharpe_tests(daily: np.ndarray, effective: bool = True) -> SharpeTests:
    """Sharpe, DSR, PSR, SR0 and N of every row of ``daily`` (traders x T), moments computed once.

    The same numbers as ``sharpe_per_period(daily, axis=1)``, ``deflated_sharpe_ratios``,
    ``probabilistic_sharpe_ratios`` and ``dsr_benchmark``; skewness and kurtosis of a large matrix
    are the costly part, so callers that need several of these should use this.
    ``effective=False`` skips the effective number of trials (a traders x traders Gram matrix, the
    other costly part): ``dsr_eff`` is then all NaN and ``sr0_eff`` / ``n_trials_eff`` are NaN.
    """
    x = np.asarray(daily, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"daily must be a 2-D traders x dates matrix, got shape {x.shape}")
    n_traders, n_periods = x.shape
    nan = float("nan")
    if n_traders == 0:
        return SharpeTests(np.empty(0), np.empty(0), np.empty(0), nan, 0, np.empty(0), nan, nan)
    if n_periods < 2:
        undefined = np.full(n_traders, np.nan)
        return SharpeTests(undefined, undefined.copy(), undefined.copy(), nan, n_traders, undefined.copy(), nan, nan)
    sr, skew, kurt, deviations = _moments_and_deviations(x)
    sr0, n_trials = dsr_benchmark(sr)
    dsr = _psr_array(sr, n_periods, skew, kurt, sr0)
    if effective:
        n_eff = _participation_ratio(deviations, n_traders)
        sr0_eff, _ = dsr_benchmark(sr, n_trials=max(1, round(n_eff)))
        dsr_eff = _psr_array(sr, n_periods, skew, kurt, sr0_eff)
    else:
        n_eff = sr0_eff = nan
        dsr_eff = np.full(n_traders, np.nan)
    del deviations
    psr = _psr_array(sr, n_periods, skew, kurt, 0.0)
    return SharpeTests(sr, dsr, psr, sr0, n_trials, dsr_eff, sr0_eff, n_eff)


def deflated_sharpe_ratios(daily: np.ndarray) -> np.ndarray:
    """Deflated Sharpe Ratio of every row of ``daily`` (traders x T) against all rows as trials.

    For each trader: PSR of its per-period Sharpe with its own skewness and raw kurtosis over T
    periods, against SR0 = ``expected_max_sharpe(V, N)`` where N counts every trader (idle ones
    included) and V is the variance (ddof 1) of the defined Sharpes. Returns an array of probabilities in
    [0, 1], ``nan`` for traders with an undefined Sharpe and everywhere when T < 2.
    """
    return sharpe_tests(daily).dsr


def dsr_benchmark(sharpes_per_period: np.ndarray, n_trials: int | None = None) -> tuple[float, int]:
    """SR0 and the trial count N used by the DSR, from all traders' per-period Sharpes.

    N is ``n_trials`` or, by default, every trader (undefined Sharpes included); V is the
    variance (ddof 1) of the defined (finite) Sharpes, 0 with fewer than two. Returns
    ``(expected_max_sharpe(V, N), N)``; SR0 is ``nan`` without a defined Sharpe or with N < 1.
    """
    sr = np.asarray(sharpes_per_period, dtype=np.float64)
    n = int(sr.size if n_trials is None else n_trials)
    trials = sr[np.isfinite(sr)]
    if trials.size == 0:
        return float("nan"), n
    variance = float(np.var(trials, ddof=1)) if trials.size > 1 else 0.0
    return expected_max_sharpe(variance, n), n


def effective_trials(daily: np.ndarray, sharpes_per_period: np.ndarray | None = None) -> float:
    """Effective number of independent trials among the rows of ``daily`` (traders x T).

    The participation ratio ``n^2 / sum_ij C_ij^2`` of the correlation matrix C of the rows with a
    defined Sharpe (n of them), plus 1 when some rows have none (see the module docstring). ``nan``
    without rows or with T < 2; 1 for a single row. ``sharpes_per_period`` (the rows' per-period
    Sharpes) saves recomputing them.
    """
    x = np.asarray(daily, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"daily must be a 2-D traders x dates matrix, got shape {x.shape}")
    if x.shape[0] == 0 or x.shape[1] < 2:
        return float("nan")
    sr = sharpe_per_period(x, axis=1) if sharpes_per_period is None else np.asarray(sharpes_per_period)
    defined = np.isfinite(sr)
    z = x[defined]
    return _participation_ratio(z - z.mean(axis=1, keepdims=True), x.shape[0])


def _participation_ratio(deviations: np.ndarray, n_rows: int) -> float:
    """``effective_trials`` from the defined rows minus their means (overwritten) and the row count."""
    n = deviations.shape[0]
    undefined_trial = 1.0 if n < n_rows else 0.0
    if n <= 1:
        return n + undefined_trial
    z = deviations
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    # Unit rows: C = z z^T, and ||z z^T||_F = ||z^T z||_F, so the Gram matrix is formed on the
    # smaller side. float32 halves the work; squared correlations need no more precision.
    z = np.ascontiguousarray(z, dtype=np.float32)
    gram = z @ z.T if z.shape[0] <= z.shape[1] else z.T @ z
    sum_sq = float(np.square(gram, dtype=np.float64).sum())
    return float(min(n, max(1.0, n * n / sum_sq))) + undefined_trial


def probabilistic_sharpe_ratios(daily: np.ndarray) -> np.ndarray:
    """PSR against a zero benchmark of every row of ``daily`` (traders x T); ``nan`` where undefined."""
    return sharpe_tests(daily).psr


@njit(cache=True)
def _half_sharpe(total: float, total_sq: float, count: float) -> float:
    """Per-period Sharpe of a half from its sum, sum of squares and length (count >= 2).

    A zero-variance half has no ratio: it ranks as 0 when its mean is 0 (no trades there) and as
    +/-inf otherwise (the limit of mean/std), so every trader gets a comparable score. NaN (only
    from non-finite sums) is replaced by -inf, the lowest rank.
    """
    mean = total / count
    std = math.sqrt(max(total_sq - total * mean, 0.0) / (count - 1.0))
    # Sum-of-squares cancellation leaves noise of about sqrt(eps) * |mean| for a constant half; a
    # ratio beyond 1e6 is infinite for ranking purposes anyway.
    if std <= abs(mean) * 1e-6:
        if mean == 0.0:
            return 0.0
        return math.copysign(math.inf, mean)
    sr = mean / std
    return -math.inf if math.isnan(sr) else sr


@njit(cache=True)
def _overfit(is_score: np.ndarray, oos_score: np.ndarray) -> int:
    """1 if the logit of the in-sample winner's out-of-sample rank is <= 0, else 0.

    ``is_score`` / ``oos_score``: the traders' per-period Sharpes of each half, without NaN
    (``_half_sharpe`` ranks an undefined one as -inf, the lowest). The winner is the highest
    in-sample Sharpe (ties: lowest row); its rank r among the N traders out of sample is 1 for the
    worst, ties averaged; logit = log(w / (1 - w)), w = r / (N + 1).
    """
    n_traders = is_score.shape[0]
    winner = 0
    for i in range(1, n_traders):
        if is_score[i] > is_score[winner]:
            winner = i
    target = oos_score[winner]
    below = 0
    equal = 0
    for i in range(n_traders):
        if oos_score[i] < target:
            below += 1
        elif oos_score[i] == target:
            equal += 1
    omega = (below + (equal + 1) / 2.0) / (n_traders + 1)
    return 1 if math.log(omega / (1.0 - omega)) <= 0.0 else 0


@njit(cache=True, nogil=True)
def _overfit_range(
    block_sum: np.ndarray, block_sq: np.ndarray, block_len: np.ndarray, combos: np.ndarray, lo: int, hi: int,
    hits: np.ndarray,
) -> None:
    """``hits[c]`` for the splits ``combos[lo:hi]`` (see ``_overfit_splits``), in scalar loops."""
    n_blocks, n_traders = block_sum.shape
    half = combos.shape[1]
    in_first = np.empty(n_blocks, dtype=np.bool_)
    s1 = np.empty(n_traders)
    q1 = np.empty(n_traders)
    s2 = np.empty(n_traders)
    q2 = np.empty(n_traders)
    for c in range(lo, hi):
        in_first[:] = False
        for j in range(half):
            in_first[combos[c, j]] = True
        s1[:] = 0.0
        q1[:] = 0.0
        s2[:] = 0.0
        q2[:] = 0.0
        first_len = 0.0
        second_len = 0.0
        for b in range(n_blocks):
            if in_first[b]:
                first_len += block_len[b]
                for i in range(n_traders):
                    s1[i] += block_sum[b, i]
                    q1[i] += block_sq[b, i]
            else:
                second_len += block_len[b]
                for i in range(n_traders):
                    s2[i] += block_sum[b, i]
                    q2[i] += block_sq[b, i]
        for i in range(n_traders):
            s1[i] = _half_sharpe(s1[i], q1[i], first_len)
            s2[i] = _half_sharpe(s2[i], q2[i], second_len)
        hits[c] = _overfit(s1, s2) + _overfit(s2, s1)


def _overfit_splits(
    block_sum: np.ndarray, block_sq: np.ndarray, block_len: np.ndarray, combos: np.ndarray
) -> int:
    """How many of the splits ``combos`` (rows of in-sample block indices) and their complements
    have a logit <= 0: each split is scored both ways round (the halves swap roles).

    ``block_sum`` / ``block_sq``: blocks x traders sums and sums of squares. A half's sums add its
    blocks' sums in block order: the same numbers whatever the thread count or the machine's BLAS
    (a matrix product may group the additions differently, and a last-bit difference can decide
    a tie between two traders).

    The splits are shared among numba's thread count (NUMBA_NUM_THREADS, the pod's CPU limit) of
    Python threads, each running the compiled loop without the GIL on its range: a ``prange``
    kernel gave the same speed but took numba 5-10 s to compile (its parallel lowering of the loop's
    array arithmetic), paid by the first backtest after an install in each of its processes.
    """
    n_splits = combos.shape[0]
    hits = np.zeros(n_splits, dtype=np.int64)
    run_ranges(n_splits, lambda start, stop: _overfit_range(block_sum, block_sq, block_len, combos, start, stop, hits),
               "mochi-pbo")
    return int(hits.sum())


def probability_of_backtest_overfitting(daily: np.ndarray, n_blocks: int = 16) -> tuple[float, int]:
    """PBO by combinatorially symmetric cross-validation (Bailey, Borwein, Lopez de Prado, Zhu).

    ``daily`` is traders x T in date order. The dates are cut into S contiguous blocks
    (S = ``n_blocks`` reduced to an even number with at least 2 dates per half, sizes differing by
    at most one). For every choice of S/2 blocks as in-sample (the rest out-of-sample), the trader
    with the best in-sample per-period Sharpe is found (ties: lowest row), its out-of-sample rank r
    among the N traders (1 = worst, ties averaged) gives w = r / (N + 1) and logit log(w / (1 - w));
    PBO is the share of splits with logit <= 0. Only rows with a defined full-series Sharpe are
    trials (a trader that never traded is left out: it has nothing to rank). Returns
    ``(pbo, S)``; ``(nan, S)`` when fewer than 2 trials or S < 2.
    """
    x = np.asarray(daily, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"daily must be a 2-D traders x dates matrix, got shape {x.shape}")
    n_periods = x.shape[1]
    if n_periods >= 2:
        x = x[np.isfinite(np.asarray(sharpe_per_period(x, axis=1)))]
    n_traders = x.shape[0]
    blocks = min(int(n_blocks), n_periods // 2)
    blocks -= blocks % 2
    if n_traders < 2 or blocks < 2:
        return float("nan"), max(blocks, 0)

    edges = np.linspace(0, n_periods, blocks + 1).round().astype(np.int64)
    block_sum = np.ascontiguousarray(np.add.reduceat(x, edges[:-1], axis=1).T)  # blocks x traders
    block_sq = np.ascontiguousarray(np.add.reduceat(x * x, edges[:-1], axis=1).T)
    block_len = np.diff(edges).astype(np.float64)

    # Every combination and its complement are evaluated, as in the paper. A split and its
    # complement swap the two halves, so the halves' Sharpes are computed once per pair: over the
    # combinations that hold block 0, each scored both ways round.
    combos = np.array(
        [c for c in itertools.combinations(range(blocks), blocks // 2) if c[0] == 0], dtype=np.int64
    )
    return _overfit_splits(block_sum, block_sq, block_len, combos) / (2 * len(combos)), blocks


def max_drawdown(pnl_in_order: np.ndarray) -> float:
    """Largest fall of cumulative pnl from a running peak that starts at 0; 0 for no trades. >= 0."""
    pnl = np.asarray(pnl_in_order, dtype=np.float64)
    if pnl.size == 0:
        return 0.0
    equity = np.cumsum(pnl)
    peak = np.maximum.accumulate(np.maximum(equity, 0.0))
    return float(np.max(peak - equity))
