"""Overfitting-aware statistics of trader return series (NumPy/SciPy only, no I/O).

Inputs are per-period (per session date) return series, typically a ``traders x T`` matrix whose
row is a trader's daily series: the sum of its trades' ``r`` on each session date after ATR
warm-up, zero on dates without a trade (DESIGN.md, "Statistics conventions").

Conventions chosen here (and tested):

* A Sharpe ratio is undefined (``nan``) when the series has fewer than 2 values or a zero standard
  deviation (e.g. a trader that never traded). Nothing is coerced to 0.
* ``deflated_sharpe_ratios``: the number of trials N and the variance V of the trial Sharpes are
  taken over the traders whose per-period Sharpe is defined; a trader with an undefined Sharpe
  cannot be the selected "best" trial and gets ``nan``. With a single defined trial there is no
  selection to deflate for: SR0 = 0 and DSR equals the PSR against zero. T < 2 gives all ``nan``.
* ``probability_of_backtest_overfitting``: the trials are the same traders as for the DSR (defined
  full-series Sharpe). Each half must hold at least 2 dates, so the block count is
  ``min(n_blocks, T // 2)`` rounded down to even; fewer than 2 blocks or 2 trials gives ``nan``.
  A half in which a trial is flat (no trade there) scores 0 (or +/-inf for a constant non-zero
  series), so it still takes part in that split's ranking.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
from scipy import stats as sps

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
    return sps.norm.cdf(z)


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
    """SR0: expected maximum per-period Sharpe of ``n_trials`` unskilled trials (DESIGN.md).

    ``sqrt(V) * ((1 - g) * Phi^-1(1 - 1/N) + g * Phi^-1(1 - 1/(N e)))``, g = Euler's constant.
    One trial has no selection bias: 0. ``nan`` for a negative or nan variance or N < 1.
    """
    if n_trials < 1 or not variance >= 0:
        return float("nan")
    if n_trials == 1:
        return 0.0
    n = float(n_trials)
    quantiles = (1.0 - EULER_GAMMA) * sps.norm.ppf(1.0 - 1.0 / n) + EULER_GAMMA * sps.norm.ppf(
        1.0 - 1.0 / (n * math.e)
    )
    return float(math.sqrt(variance) * quantiles)


def _moments(daily: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-row per-period Sharpe, skewness and raw kurtosis (scipy defaults, biased estimators)."""
    sr = np.asarray(sharpe_per_period(daily, axis=1), dtype=np.float64)
    defined = np.isfinite(sr)
    skew = np.full(sr.shape, np.nan)
    kurt = np.full(sr.shape, np.nan)
    if defined.any():
        rows = daily[defined]
        skew[defined] = sps.skew(rows, axis=1)
        kurt[defined] = sps.kurtosis(rows, axis=1, fisher=False)
    return sr, skew, kurt


def deflated_sharpe_ratios(daily: np.ndarray) -> np.ndarray:
    """Deflated Sharpe Ratio of every row of ``daily`` (traders x T) against all rows as trials.

    For each trader: PSR of its per-period Sharpe with its own skewness and raw kurtosis over T
    periods, against SR0 = ``expected_max_sharpe(V, N)`` where N counts the traders with a defined
    Sharpe and V is the variance (ddof 1) of those Sharpes. Returns an array of probabilities in
    [0, 1], ``nan`` for traders with an undefined Sharpe and everywhere when T < 2.
    """
    x = np.asarray(daily, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"daily must be a 2-D traders x dates matrix, got shape {x.shape}")
    n_traders, n_periods = x.shape
    if n_traders == 0:
        return np.empty(0)
    if n_periods < 2:
        return np.full(n_traders, np.nan)
    sr, skew, kurt = _moments(x)
    sr0, n_trials = dsr_benchmark(sr)
    if n_trials == 0:
        return np.full(n_traders, np.nan)
    return _psr_array(sr, n_periods, skew, kurt, sr0)


def dsr_benchmark(sharpes_per_period: np.ndarray) -> tuple[float, int]:
    """SR0 and the trial count N used by the DSR, from all traders' per-period Sharpes.

    N counts the defined (finite) Sharpes and V is their variance (ddof 1); returns
    ``(expected_max_sharpe(V, N), N)``, ``(nan, 0)`` without a defined Sharpe and ``(0, 1)`` for one.
    """
    sr = np.asarray(sharpes_per_period, dtype=np.float64)
    trials = sr[np.isfinite(sr)]
    if trials.size == 0:
        return float("nan"), 0
    variance = float(np.var(trials, ddof=1)) if trials.size > 1 else 0.0
    return expected_max_sharpe(variance, int(trials.size)), int(trials.size)


def probabilistic_sharpe_ratios(daily: np.ndarray) -> np.ndarray:
    """PSR against a zero benchmark of every row of ``daily`` (traders x T); ``nan`` where undefined."""
    x = np.asarray(daily, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"daily must be a 2-D traders x dates matrix, got shape {x.shape}")
    if x.shape[0] == 0:
        return np.empty(0)
    if x.shape[1] < 2:
        return np.full(x.shape[0], np.nan)
    sr, skew, kurt = _moments(x)
    return _psr_array(sr, x.shape[1], skew, kurt, 0.0)


def _half_sharpe(total: np.ndarray, total_sq: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Per-period Sharpe of a half from its sum, sum of squares and length (count >= 2).

    A zero-variance half has no ratio: it ranks as 0 when its mean is 0 (no trades there) and as
    +/-inf otherwise (the limit of mean/std), so every trader gets a comparable score.
    """
    mean = total / count
    var = np.maximum(total_sq - total * mean, 0.0) / (count - 1)
    std = np.sqrt(var)
    # Sum-of-squares cancellation leaves noise of about sqrt(eps) * |mean| for a constant half; a
    # ratio beyond 1e6 is infinite for ranking purposes anyway.
    flat = std <= 1e-6 * np.abs(mean)
    with np.errstate(divide="ignore", invalid="ignore"):
        sr = mean / std
    return np.where(flat, np.sign(mean) * np.where(mean == 0, 0.0, np.inf), sr)


def probability_of_backtest_overfitting(daily: np.ndarray, n_blocks: int = 16) -> tuple[float, int]:
    """PBO by combinatorially symmetric cross-validation (Bailey, Borwein, Lopez de Prado, Zhu).

    ``daily`` is traders x T in date order. The dates are cut into S contiguous blocks
    (S = ``n_blocks`` reduced to an even number with at least 2 dates per half, sizes differing by
    at most one). For every choice of S/2 blocks as in-sample (the rest out-of-sample), the trader
    with the best in-sample per-period Sharpe is found (ties: lowest row), its out-of-sample rank r
    among the N traders (1 = worst, ties averaged) gives w = r / (N + 1) and logit log(w / (1 - w));
    PBO is the share of splits with logit <= 0. As in the DSR, only rows with a defined full-series
    Sharpe are trials (a trader that never traded is left out). Returns ``(pbo, S)``; ``(nan, S)``
    when fewer than 2 trials or S < 2.
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
    block_sum = np.add.reduceat(x, edges[:-1], axis=1)
    block_sq = np.add.reduceat(x * x, edges[:-1], axis=1)
    block_len = np.diff(edges).astype(np.float64)
    total_sum = block_sum.sum(axis=1, keepdims=True)
    total_sq = block_sq.sum(axis=1, keepdims=True)

    # Each combination and its complement are both evaluated, as in the paper.
    combos = np.array(list(itertools.combinations(range(blocks), blocks // 2)), dtype=np.int64)
    chosen = np.zeros((len(combos), blocks), dtype=np.float64)
    np.put_along_axis(chosen, combos, 1.0, axis=1)

    at_or_below = 0
    chunk = max(1, 2_000_000 // n_traders)
    for start in range(0, len(chosen), chunk):
        mask = chosen[start : start + chunk].T  # blocks x C
        is_sum = block_sum @ mask
        is_sq = block_sq @ mask
        is_len = block_len @ mask
        oos_len = n_periods - is_len
        is_sr = _half_sharpe(is_sum, is_sq, is_len)
        oos_sr = _half_sharpe(total_sum - is_sum, total_sq - is_sq, oos_len)
        is_sr = np.where(np.isnan(is_sr), -np.inf, is_sr)
        oos_sr = np.where(np.isnan(oos_sr), -np.inf, oos_sr)
        winner = np.argmax(is_sr, axis=0)
        columns = np.arange(is_sr.shape[1])
        winner_oos = oos_sr[winner, columns]
        below = (oos_sr < winner_oos).sum(axis=0)
        equal = (oos_sr == winner_oos).sum(axis=0)
        rank = below + (equal + 1) / 2.0
        omega = rank / (n_traders + 1)
        logit = np.log(omega / (1.0 - omega))
        at_or_below += int((logit <= 0).sum())
    return at_or_below / len(chosen), blocks


def max_drawdown(pnl_in_order: np.ndarray) -> float:
    """Largest fall of cumulative pnl from a running peak that starts at 0; 0 for no trades. >= 0."""
    pnl = np.asarray(pnl_in_order, dtype=np.float64)
    if pnl.size == 0:
        return 0.0
    equity = np.cumsum(pnl)
    peak = np.maximum.accumulate(np.maximum(equity, 0.0))
    return float(np.max(peak - equity))
