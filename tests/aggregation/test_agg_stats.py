"""Statistics kernels: Sharpe, PSR, DSR, PBO and drawdown against published values and references."""

from __future__ import annotations

import itertools
import math
from statistics import NormalDist

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from mochi_assets.aggregation import stats

GAMMA = 0.5772156649


# ---- Sharpe and drawdown on hand-computed cases -------------------------------------------------


def test_sharpe_hand_computed():
    # mean 2, sample std 1
    assert stats.sharpe_per_period(np.array([1.0, 2.0, 3.0])) == pytest.approx(2.0)
    assert stats.annualized_sharpe(np.array([1.0, 2.0, 3.0])) == pytest.approx(2.0 * math.sqrt(252))
    # mean 0.25, deviations 1, -1, 0.5, -0.5 -> sample variance 2.5 / 3
    x = np.array([1.0, -1.0, 0.5, -0.5]) + 0.25
    assert stats.sharpe_per_period(x) == pytest.approx(0.25 / math.sqrt(2.5 / 3))


def test_sharpe_undefined_cases_are_nan():
    assert math.isnan(stats.sharpe_per_period(np.zeros(5)))
    assert math.isnan(stats.sharpe_per_period(np.full(4, 0.1)))
    assert math.isnan(stats.sharpe_per_period(np.array([1.5])))
    assert math.isnan(stats.sharpe_per_period(np.array([])))


def test_sharpe_along_axis():
    m = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0], [-3.0, -2.0, -1.0]])
    np.testing.assert_allclose(stats.sharpe_per_period(m, axis=1), [2.0, np.nan, -2.0])
    np.testing.assert_allclose(stats.sharpe_per_period(m.T, axis=0), [2.0, np.nan, -2.0])
    assert stats.sharpe_per_period(np.ones((3, 1)), axis=1).shape == (3,)


@pytest.mark.parametrize(
    ("pnl", "expected"),
    [
        ([], 0.0),
        ([1.0, 2.0, 3.0], 0.0),
        ([-1.0], 1.0),  # the peak starts at 0: an opening loss is a drawdown
        ([1.0, -2.0, 3.0, -1.0, -1.5], 2.5),  # peak 2 after the third trade, trough -0.5
        ([2.0, -1.0, -1.0, 5.0, -0.5], 2.0),
    ],
)
def test_max_drawdown_hand_computed(pnl, expected):
    assert stats.max_drawdown(np.array(pnl)) == pytest.approx(expected)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-100, 100, allow_nan=False), max_size=30))
def test_max_drawdown_matches_all_pairs(pnl):
    equity = [0.0] + list(itertools.accumulate(pnl))
    brute = max((equity[i] - equity[j] for i in range(len(equity)) for j in range(i, len(equity))), default=0.0)
    assert stats.max_drawdown(np.array(pnl)) == pytest.approx(brute, abs=1e-9)


# ---- PSR: the published examples of Bailey and Lopez de Prado -----------------------------------


def test_psr_published_examples():
    assert round(stats.probabilistic_sharpe_ratio(0.458, 24), 3) == 0.982
    assert round(stats.probabilistic_sharpe_ratio(0.458, 24, skew=-2.448, kurtosis=10.164), 3) == 0.913


def test_psr_benchmark_and_undefined():
    assert stats.probabilistic_sharpe_ratio(0.2, 100, sr_benchmark=0.2) == pytest.approx(0.5)
    assert math.isnan(stats.probabilistic_sharpe_ratio(0.2, 1))
    assert math.isnan(stats.probabilistic_sharpe_ratio(float("nan"), 100))


# ---- DSR ------------------------------------------------------------------------------------------


def _reference_dsr(daily: np.ndarray, n_trials: int | None = None) -> list[float]:
    """Straightforward loops, biased moments as scipy computes them, stdlib normal distribution.

    N is ``n_trials`` (default: every row, README "Statistics"); the variance of the Sharpes is taken over
    the rows that have one (a row without spread has no Sharpe and gets nan).
    """
    n_rows, t = daily.shape
    n_trials = n_rows if n_trials is None else n_trials
    rows = [list(map(float, r)) for r in daily]
    sharpes, skews, kurts = [], [], []
    for r in rows:
        mean = sum(r) / t
        m2 = sum((v - mean) ** 2 for v in r) / t
        if m2 == 0:
            sharpes.append(None)
            skews.append(None)
            kurts.append(None)
            continue
        m3 = sum((v - mean) ** 3 for v in r) / t
        m4 = sum((v - mean) ** 4 for v in r) / t
        std = math.sqrt(sum((v - mean) ** 2 for v in r) / (t - 1))
        sharpes.append(mean / std)
        skews.append(m3 / m2**1.5)
        kurts.append(m4 / m2**2)
    defined = [s for s in sharpes if s is not None]
    sr_mean = sum(defined) / len(defined)
    variance = sum((s - sr_mean) ** 2 for s in defined) / (len(defined) - 1)
    nd = NormalDist()
    sr0 = math.sqrt(variance) * (
        (1 - GAMMA) * nd.inv_cdf(1 - 1 / n_trials) + GAMMA * nd.inv_cdf(1 - 1 / (n_trials * math.e))
    )
    out = []
    for sr, g3, g4 in zip(sharpes, skews, kurts):
        if sr is None:
            out.append(math.nan)
            continue
        z = (sr - sr0) * math.sqrt(t - 1) / math.sqrt(1 - g3 * sr + (g4 - 1) / 4 * sr**2)
        out.append(nd.cdf(z))
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dsr_matches_reference_loops(seed):
    rng = np.random.default_rng(seed)
    # Skewed, fat-tailed daily r with many zero days, like real trader series.
    daily = rng.standard_t(4, size=(15, 300)) * (rng.random((15, 300)) < 0.4)
    daily += rng.normal(0.02, 0.01, size=(15, 1)) * (daily != 0)
    np.testing.assert_allclose(stats.deflated_sharpe_ratios(daily), _reference_dsr(daily), rtol=1e-9, atol=1e-12)


def test_expected_max_sharpe_formula_and_growth():
    nd = NormalDist()
    expected = 0.5 * ((1 - GAMMA) * nd.inv_cdf(1 - 1 / 10) + GAMMA * nd.inv_cdf(1 - 1 / (10 * math.e)))
    assert stats.expected_max_sharpe(0.25, 10) == pytest.approx(expected, rel=1e-12)
    assert stats.expected_max_sharpe(0.25, 1) == 0.0
    values = [stats.expected_max_sharpe(0.01, n) for n in (2, 10, 100, 1000, 10000)]
    assert values == sorted(values) and len(set(values)) == len(values)
    assert math.isnan(stats.expected_max_sharpe(float("nan"), 10))


def test_dsr_monotone_in_sharpe_for_equal_moments():
    rng = np.random.default_rng(5)
    shape = rng.standard_t(5, size=500)
    shape = (shape - shape.mean()) / shape.std()
    # Same spread, skewness and kurtosis on every row: only the mean (hence the Sharpe) differs.
    means = np.linspace(-0.05, 0.15, 12)
    dsr = stats.deflated_sharpe_ratios(means[:, None] + shape[None, :])
    assert np.all(np.diff(dsr) > 0)


def test_more_trials_lower_dsr():
    rng = np.random.default_rng(7)
    daily = rng.normal(0.0, 1.0, size=(20, 400))
    daily[0] += 0.12
    few = stats.deflated_sharpe_ratios(daily)[0]
    # The same trials twice: same Sharpe distribution, twice the number of tries.
    many = stats.deflated_sharpe_ratios(np.vstack([daily, daily]))[0]
    assert many < few


def test_dsr_single_trader_is_psr_against_zero():
    rng = np.random.default_rng(3)
    row = rng.normal(0.05, 1.0, size=(1, 250))
    expected = stats.probabilistic_sharpe_ratios(row)[0]
    assert stats.deflated_sharpe_ratios(row)[0] == pytest.approx(expected)
    assert 0.0 < expected < 1.0


def test_dsr_idle_traders_count_in_n_but_not_in_the_variance():
    """Brute force on a small grid: 6 active traders and 3 that never traded, N = 9 (README "Statistics")."""
    rng = np.random.default_rng(4)
    daily = rng.normal(0.0, 1.0, size=(6, 200)) * (rng.random((6, 200)) < 0.5)
    daily[1] += 0.05 * (daily[1] != 0)
    with_idle = np.vstack([daily[:2], np.zeros((2, 200)), daily[2:], np.zeros((1, 200))])
    dsr = stats.deflated_sharpe_ratios(with_idle)
    idle = [2, 3, 8]
    assert all(math.isnan(dsr[i]) for i in idle)
    np.testing.assert_allclose(dsr, _reference_dsr(with_idle, n_trials=9), rtol=1e-9, atol=1e-12)
    # More trials, same Sharpe variance: the idle traders deflate every active trader's DSR
    without = stats.deflated_sharpe_ratios(daily)
    active = np.delete(dsr, idle)
    assert np.all(active < without)
    out = stats.sharpe_tests(with_idle)
    assert out.n_trials == 9
    assert out.sr0 == pytest.approx(
        stats.expected_max_sharpe(float(np.var(out.sharpe[np.isfinite(out.sharpe)], ddof=1)), 9)
    )


def test_dsr_too_few_periods_is_nan():
    assert np.isnan(stats.deflated_sharpe_ratios(np.ones((3, 1)))).all()
    assert stats.deflated_sharpe_ratios(np.empty((0, 10))).shape == (0,)


# ---- PBO ------------------------------------------------------------------------------------------


def _reference_pbo(daily: np.ndarray, blocks: int) -> float:
    """CSCV written out: contiguous blocks, every half, in-sample best, its out-of-sample rank."""
    n, t = daily.shape
    edges = [round(i * t / blocks) for i in range(blocks + 1)]
    parts = [list(range(edges[i], edges[i + 1])) for i in range(blocks)]
    splits = list(itertools.combinations(range(blocks), blocks // 2))
    overfit = 0
    for chosen in splits:
        ins = [c for b in chosen for c in parts[b]]
        oos = [c for b in range(blocks) if b not in chosen for c in parts[b]]
        is_sr = [np.mean(daily[i, ins]) / np.std(daily[i, ins], ddof=1) for i in range(n)]
        oos_sr = [np.mean(daily[i, oos]) / np.std(daily[i, oos], ddof=1) for i in range(n)]
        best = max(range(n), key=lambda i: (is_sr[i], -i))
        rank = 1 + sum(1 for i in range(n) if oos_sr[i] < oos_sr[best])
        w = rank / (n + 1)
        if math.log(w / (1 - w)) <= 0:
            overfit += 1
    return overfit / len(splits)


@pytest.mark.parametrize("seed", [0, 1])
def test_pbo_matches_reference_loops(seed):
    rng = np.random.default_rng(seed)
    daily = rng.normal(0.0, 1.0, size=(7, 61))
    pbo, used = stats.probability_of_backtest_overfitting(daily, n_blocks=6)
    assert used == 6
    assert pbo == pytest.approx(_reference_pbo(daily, 6), abs=1e-15)


@pytest.mark.parametrize("traders", [36, 64, 2000])
def test_pbo_identical_traders_tie_in_every_split(traders):
    # Identical traders must get identical half Sharpes in every split: the in-sample winner then
    # ties with all of them out of sample, its averaged rank is (N + 1) / 2, w = 1/2 and logit 0,
    # so every split counts and PBO is exactly 1. Half sums taken by a BLAS matrix product broke
    # such ties by the rows' positions in its tiles (PBO 0.9988-0.9999 on these shapes).
    rng = np.random.default_rng(traders)
    daily = np.repeat(rng.normal(0.01, 1.0, size=(1, 262)), traders, axis=0)
    assert stats.probability_of_backtest_overfitting(daily) == (1.0, 16)


def test_pbo_near_half_on_noise():
    # One noise sample has a wide PBO spread (splits are correlated); the average over samples is 1/2.
    values = []
    for seed in range(8):
        daily = np.random.default_rng(seed).normal(0.0, 1.0, size=(50, 800))
        pbo, used = stats.probability_of_backtest_overfitting(daily)
        assert used == 16
        values.append(pbo)
    assert 0.35 <= float(np.mean(values)) <= 0.65


def test_pbo_near_zero_for_dominant_trader():
    daily = np.random.default_rng(11).normal(0.0, 1.0, size=(50, 800))
    daily[17] += 0.4
    pbo, _ = stats.probability_of_backtest_overfitting(daily)
    assert pbo < 0.1


def test_pbo_block_reduction_and_undefined():
    rng = np.random.default_rng(2)
    assert stats.probability_of_backtest_overfitting(rng.normal(size=(5, 10)))[1] == 4
    assert stats.probability_of_backtest_overfitting(rng.normal(size=(5, 200)), n_blocks=7)[1] == 6
    pbo, used = stats.probability_of_backtest_overfitting(rng.normal(size=(5, 3)))
    assert math.isnan(pbo) and used == 0
    pbo, used = stats.probability_of_backtest_overfitting(rng.normal(size=(1, 100)))
    assert math.isnan(pbo) and used == 16


def test_pbo_leaves_idle_traders_out():
    rng = np.random.default_rng(9)
    active = rng.normal(0.0, 1.0, size=(6, 120))
    with_idle = np.vstack([active[:3], np.zeros((4, 120)), active[3:]])
    assert stats.probability_of_backtest_overfitting(with_idle, n_blocks=4) == (
        stats.probability_of_backtest_overfitting(active, n_blocks=4)
    )
    pbo, used = stats.probability_of_backtest_overfitting(np.zeros((5, 120)))
    assert math.isnan(pbo) and used == 16


def test_pbo_half_without_trades_scores_zero():
    # Trader 0 trades only in the first half of the dates and wins there; a split that puts its
    # active blocks out-of-sample scores it 0, between the positive and negative traders.
    rng = np.random.default_rng(10)
    daily = rng.normal(0.0, 1.0, size=(5, 80))
    daily[0, 40:] = 0.0
    daily[0, :40] = np.abs(daily[0, :40]) + 0.5
    pbo, used = stats.probability_of_backtest_overfitting(daily, n_blocks=2)
    assert used == 2
    # Two splits: first half in-sample -> trader 0 wins in-sample and scores 0 out-of-sample.
    oos = [stats.sharpe_per_period(daily[i, 40:]) for i in range(1, 5)]
    rank_first = 1 + sum(1 for v in oos if v < 0.0)
    is_second = [stats.sharpe_per_period(daily[i, 40:]) for i in range(5)]
    is_second[0] = 0.0
    winner = int(np.argmax(is_second))
    oos_second = [stats.sharpe_per_period(daily[i, :40]) for i in range(5)]
    rank_second = 1 + sum(1 for v in oos_second if v < oos_second[winner])
    expected = ((rank_first <= 3) + (rank_second <= 3)) / 2
    assert pbo == expected


def test_sharpe_tests_equal_the_separate_statistics():
    rng = np.random.default_rng(4)
    daily = rng.standard_t(5, size=(9, 250)) * (rng.random((9, 250)) < 0.5)
    daily[2] = 0.0  # a trader that never traded: undefined everywhere, a trial all the same
    out = stats.sharpe_tests(daily)
    np.testing.assert_array_equal(out.sharpe, stats.sharpe_per_period(daily, axis=1))
    np.testing.assert_array_equal(out.dsr, stats.deflated_sharpe_ratios(daily))
    np.testing.assert_array_equal(out.psr, stats.probabilistic_sharpe_ratios(daily))
    assert (out.sr0, out.n_trials) == stats.dsr_benchmark(out.sharpe) and out.n_trials == 9
    # the moments are scipy's biased skewness and raw kurtosis
    _, skew, kurt = stats._moments(daily)
    active = np.arange(9) != 2
    np.testing.assert_allclose(skew[active], sps.skew(daily[active], axis=1), rtol=1e-12)
    np.testing.assert_allclose(kurt[active], sps.kurtosis(daily[active], axis=1, fisher=False), rtol=1e-12)
    assert np.isnan(skew[2]) and np.isnan(kurt[2])
    # without the effective trials: the same Sharpe, DSR and PSR, bit for bit, and no dsr_eff
    lean = stats.sharpe_tests(daily, effective=False)
    for name in ("sharpe", "dsr", "psr"):
        np.testing.assert_array_equal(getattr(lean, name), getattr(out, name))
    assert (lean.sr0, lean.n_trials) == (out.sr0, out.n_trials)
    assert np.isnan(lean.dsr_eff).all() and lean.dsr_eff.shape == (9,)
    assert np.isnan(lean.sr0_eff) and np.isnan(lean.n_trials_eff)
    empty = stats.sharpe_tests(np.zeros((0, 10)))
    assert empty.dsr.size == 0 and empty.n_trials == 0
    short = stats.sharpe_tests(np.ones((3, 1)))
    assert np.isnan(short.dsr).all() and np.isnan(short.psr).all() and short.n_trials == 3


# ---- effective number of trials ---------------------------------------------------------------


def _reference_effective_trials(daily: np.ndarray) -> float:
    """From the eigenvalues of the correlation matrix (numpy's corrcoef and eigvalsh)."""
    defined = daily.std(axis=1) > 0
    eig = np.linalg.eigvalsh(np.corrcoef(daily[defined]))
    return float(eig.sum() ** 2 / (eig**2).sum()) + (0.0 if defined.all() else 1.0)


def test_effective_trials_matches_eigenvalues_and_counts_clusters():
    rng = np.random.default_rng(11)
    base = rng.normal(size=(4, 300))
    # 4 independent series, each repeated 3 times with a little noise; one idle trader
    daily = np.vstack([np.repeat(base, 3, axis=0) + 1e-3 * rng.normal(size=(12, 300)), np.zeros((1, 300))])
    n_eff = stats.effective_trials(daily)
    assert n_eff == pytest.approx(_reference_effective_trials(daily), rel=1e-4)
    assert n_eff == pytest.approx(4 + 1, rel=0.02)  # four clusters plus the idle outcome
    independent = rng.normal(size=(30, 2000))
    assert stats.effective_trials(independent) == pytest.approx(_reference_effective_trials(independent), rel=1e-4)
    assert 25 < stats.effective_trials(independent) <= 30
    assert stats.effective_trials(np.vstack([base[0], base[0], 2 * base[0]])) == pytest.approx(1.0, rel=1e-5)
    assert math.isnan(stats.effective_trials(np.zeros((0, 5))))


def test_dsr_eff_uses_the_effective_number_of_trials():
    rng = np.random.default_rng(12)
    base = rng.normal(0.0, 1.0, size=(3, 400))
    base[0] += 0.1
    daily = np.repeat(base, 5, axis=0) + 0.05 * rng.normal(size=(15, 400))
    out = stats.sharpe_tests(daily)
    assert out.n_trials == 15 and 2.5 < out.n_trials_eff < 4
    expected = _reference_dsr(daily, n_trials=round(out.n_trials_eff))
    np.testing.assert_allclose(out.dsr_eff, expected, rtol=1e-9)
    # fewer effective trials deflate less: dsr_eff >= dsr for every trader
    assert np.all(out.dsr_eff >= out.dsr)
