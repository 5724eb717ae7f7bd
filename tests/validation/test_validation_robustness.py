"""Plateau, Monte Carlo and data-snooping figures against direct computations and arch itself."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from arch.bootstrap import SPA, StationaryBootstrap
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from mochi_assets.validation.robustness import (
    block_bootstrap_indices,
    data_snooping_pvalues,
    grid_axes,
    monte_carlo,
    neighbours,
    plateau,
    robustness_table,
    stationary_bootstrap_indices,
)
from mochi_resources.errors import MochiError
from tests.validation.synthetic import grid


def test_neighbours_are_one_grid_step_along_each_axis():
    traders = grid(3, 3, 1)  # stop 0.5/1.0/1.5 x limit 1/2/3, ids row-major by stop then limit
    assert grid_axes(traders) == ["stop_atr", "limit_atr"]
    centre = traders.filter((pl.col("stop_atr") == 1.0) & (pl.col("limit_atr") == 2.0))["trader_id"].item()
    found = sorted(neighbours(traders, centre))
    assert [(axis, value) for axis, value, _ in found] == [
        ("limit_atr", 1.0), ("limit_atr", 3.0), ("stop_atr", 0.5), ("stop_atr", 1.5)
    ]
    ids = {(a, v): i for a, v, i in found}
    row = traders.filter(pl.col("trader_id") == ids[("stop_atr", 0.5)]).row(0, named=True)
    assert (row["stop_atr"], row["limit_atr"]) == (0.5, 2.0)
    corner = traders.filter((pl.col("stop_atr") == 0.5) & (pl.col("limit_atr") == 1.0))["trader_id"].item()
    assert len(neighbours(traders, corner)) == 2


def test_plateau_against_a_direct_computation():
    traders = grid(3, 3, 1)
    sharpe = {i: float(i) for i in traders["trader_id"].to_list()}
    sharpe[0] = None  # an idle neighbour has no Sharpe and is left out of the mean
    table = plateau(traders, sharpe, [4, 8])
    row = table.row(0, named=True)  # centre: ids 1, 3, 5, 7 around 4
    assert row["neighbours"] == 4
    assert row["neighbour_sharpe_mean"] == pytest.approx((1 + 3 + 5 + 7) / 4)
    assert row["neighbour_sharpe_min"] == 1.0
    assert row["plateau_score"] == pytest.approx(4.0 / 4.0)
    spike = plateau(traders, {**sharpe, 4: 20.0}, [4]).row(0, named=True)
    assert spike["plateau_score"] == pytest.approx(4.0 / 20.0)
    losing = plateau(traders, {**sharpe, 4: -1.0}, [4]).row(0, named=True)
    assert losing["plateau_score"] is None
    with pytest.raises(MochiError, match="trader_id 99"):
        plateau(traders, sharpe, [99])


@given(n=st.integers(1, 40), block=st.integers(1, 9), paths=st.integers(1, 5), seed=st.integers(0, 2**31))
@settings(max_examples=30, deadline=None)
def test_block_bootstrap_indices_are_circular_blocks(n, block, paths, seed):
    idx = block_bootstrap_indices(n, block, paths, seed)
    assert idx.shape == (paths, n) and idx.min() >= 0 and idx.max() < n
    steps = (np.diff(idx, axis=1)) % n
    within = np.ones(n - 1, dtype=bool)
    within[block - 1 :: block] = False  # positions where a new block starts
    assert (steps[:, within] == 1 % n).all()
    assert (idx == block_bootstrap_indices(n, block, paths, seed)).all()


def test_monte_carlo_against_a_loop_over_paths():
    rng = np.random.default_rng(2)
    daily = rng.normal(0.05, 1.0, 60) * (rng.random(60) < 0.5)
    idx = block_bootstrap_indices(60, 5, 200, seed=7)
    figures = monte_carlo(daily, idx)
    drawdowns, finals = [], []
    for path in idx:
        equity, peak, worst = 0.0, 0.0, 0.0
        for i in path:
            equity += daily[i]
            peak = max(peak, equity)
            worst = max(worst, peak - equity)
        drawdowns.append(worst)
        finals.append(equity)
    for p in (5, 50, 95):
        assert figures[f"mc_max_drawdown_p{p}"] == pytest.approx(np.percentile(drawdowns, p))
        assert figures[f"mc_final_r_p{p}"] == pytest.approx(np.percentile(finals, p))
    assert figures["mc_loss_share"] == pytest.approx(np.mean(np.array(finals) < 0))


@settings(max_examples=40, deadline=None)
@given(
    n_sessions=st.integers(1, 300),
    reps=st.integers(1, 300),  # past _BOOTSTRAP_CHUNK: chunks continue one stream
    block=st.integers(1, 30),
    seed=st.integers(0, 2**32 - 1),
)
def test_stationary_bootstrap_indices_equal_arch(n_sessions, reps, block, seed):
    """The indices drawn without arch are arch's, draw for draw (same seed, same stream)."""
    bs = StationaryBootstrap(block, np.arange(n_sessions), seed=seed)
    want = np.array([pos[0] for pos, _ in bs.bootstrap(reps)], dtype=np.int64).reshape(reps, n_sessions)
    got = stationary_bootstrap_indices(n_sessions, reps, block, seed)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_snooping_pvalues_equal_arch_spa(seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, (240, 12)) * (rng.random((240, 12)) < 0.5)
    x[:, 4] += 0.04 * seed
    x[:, 7] -= 0.3  # a clearly bad model: the consistent p-value leaves it out of re-centring
    spa = SPA(np.zeros(240), -x, reps=300, seed=seed)
    spa.compute()
    mine = data_snooping_pvalues(x, reps=300, seed=seed)
    assert mine["spa_pvalue_lower"] == pytest.approx(spa.pvalues["lower"], abs=1e-12)
    assert mine["spa_pvalue"] == pytest.approx(spa.pvalues["consistent"], abs=1e-12)
    assert mine["reality_check_pvalue"] == pytest.approx(spa.pvalues["upper"], abs=1e-12)


def test_snooping_pvalue_is_not_small_on_noise_and_small_on_a_planted_edge():
    pvalues = []
    for seed in range(5):
        rng = np.random.default_rng(100 + seed)
        noise = rng.normal(0, 1, (500, 40)) * (rng.random((500, 40)) < 0.4)
        pvalues.append(data_snooping_pvalues(noise, reps=400, seed=seed)["spa_pvalue"])
    assert np.median(pvalues) > 0.2 and min(pvalues) > 0.02, pvalues
    rng = np.random.default_rng(7)
    planted = rng.normal(0, 1, (500, 40)) * (rng.random((500, 40)) < 0.4)
    planted[:, 13] += 0.4 * (rng.random(500) < 0.4)  # t-statistic about 5
    result = data_snooping_pvalues(planted, reps=400, seed=0)
    assert result["spa_pvalue"] < 0.05 and result["reality_check_pvalue"] < 0.05


def test_robustness_table_reruns_are_identical():
    traders = grid(3, 2, 2)
    rng = np.random.default_rng(4)
    daily = rng.normal(0, 1, (120, traders.height)) * (rng.random((120, traders.height)) < 0.5)
    sharpe = daily.mean(axis=0) / daily.std(axis=0, ddof=1) * np.sqrt(252)
    ranked = pl.DataFrame({"trader_id": traders["trader_id"], "sharpe": sharpe, "dsr": sharpe / 100}).sort(
        "sharpe", descending=True
    ).with_row_index("rank", offset=1)
    kwargs = dict(top=3, mc_paths=200, block_sessions=5, spa_reps=200, seed=3, pbo=0.4)
    first = robustness_table(traders, ranked, daily, traders["trader_id"].to_numpy(), **kwargs)
    assert_frame_equal(first, robustness_table(traders, ranked, daily, traders["trader_id"].to_numpy(), **kwargs))
    assert first["trader_id"].to_list() == ranked.head(3)["trader_id"].to_list()
    assert first["pbo"].to_list() == [0.4] * 3 and first["spa_pvalue"].n_unique() == 1
    best = int(np.argmax(sharpe))
    direct = monte_carlo(daily[:, best], block_bootstrap_indices(120, 5, 200, 3))
    assert first.row(0, named=True)["mc_final_r_p50"] == pytest.approx(direct["mc_final_r_p50"])


def _monte_carlo_arrays(daily, indices):
    """The paths x sessions NumPy formulation the kernel replaced (the reference, bit for bit)."""
    equity = np.cumsum(np.asarray(daily, dtype=np.float64)[indices], axis=1)
    peak = np.maximum.accumulate(np.maximum(equity, 0.0), axis=1)
    return (peak - equity).max(axis=1), equity[:, -1]


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 80), block=st.integers(1, 12), paths=st.integers(1, 40), seed=st.integers(0, 2**31),
    scale=st.sampled_from([1e-6, 1.0, 1e6]),
)
def test_monte_carlo_kernel_equals_the_matrix_formulation_bit_for_bit(n, block, paths, seed, scale):
    from mochi_assets.validation.robustness import _path_extremes

    rng = np.random.default_rng(seed)
    daily = rng.normal(0.02, 1.0, n) * scale * (rng.random(n) < 0.6)
    idx = block_bootstrap_indices(n, block, paths, seed)
    drawdown, final = _path_extremes(daily, idx)
    ref_drawdown, ref_final = _monte_carlo_arrays(daily, idx)
    assert np.array_equal(drawdown, ref_drawdown) and np.array_equal(final, ref_final)


def test_monte_carlo_refuses_indices_outside_the_series_and_non_finite_days():
    with pytest.raises(MochiError, match="indices must lie in 0..2"):
        monte_carlo(np.zeros(3), np.array([[0, 1, 3]]))
    with pytest.raises(MochiError, match="NaN or an infinity"):
        monte_carlo(np.array([0.0, np.nan, 1.0]), np.array([[0, 1, 2]]))


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 200), reps=st.integers(1, 300), block=st.integers(1, 30), seed=st.integers(0, 2**32 - 1))
def test_bootstrap_counts_count_the_stationary_indices(n, reps, block, seed):
    """The counting kernel walks the paths arch's indices describe (checked against them above)."""
    from mochi_assets.validation.robustness import bootstrap_counts

    indices = stationary_bootstrap_indices(n, reps, block, seed)
    expected = np.stack([np.bincount(row, minlength=n) for row in indices]).astype(np.float64)
    assert np.array_equal(bootstrap_counts(n, reps, block, seed), expected)
