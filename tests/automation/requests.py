"""Tiny synthetic requests for the automation tests (seven weeks, short ATRs, small grids, and
small walk-forward resampling counts: these tests check what runs and what is recorded, not the
statistics, which tests/validation checks with its own settings)."""

FAMILIES = {
    "breakout-long": {"direction": "long", "offset_ticks": [0, 10], "stop_atr": [1.0], "limit_atr": [1.0]},
    "breakout-short": {"direction": "short", "offset_ticks": [0, 10], "stop_atr": [1.0], "limit_atr": [1.0]},
    "fade-long": {"direction": "long", "offset_ticks": [-10], "stop_atr": [1.0], "limit_atr": [2.0]},
}


def small_request(scenarios: int = 2, short: int = 3) -> dict:
    """A SYN:GOLD request of about seven weeks with `scenarios` tiny scenario families."""
    return {
        "ticker": "SYN:GOLD",
        "start": "2024-03-01",
        "end": "2024-04-19",
        "atr": {"short": short, "long": 5, "alpha": 0.5},
        "entry_times": ["09:30"],
        "duration_min": 90,
        "scenarios": dict(list(FAMILIES.items())[:scenarios]),
        # the defaults (10,000 random paths, 1,000 Monte Carlo paths and SPA replications) made
        # walk_forward and robustness the slowest steps of every run here
        "walk_forward": {"mc_paths": 50, "spa_reps": 50, "random_paths": 200},
    }


def materialize_request(instance, request, resources=None):
    """Register the request's ticker and materialize its `backtest_request` (as the UI launchpad does)."""
    import dagster as dg

    from mochi_assets.definitions import build_resources
    from mochi_assets.partitions import TICKER_DIMENSION
    from mochi_assets.request_asset import backtest_request, request_run_config

    instance.add_dynamic_partitions(TICKER_DIMENSION, [request.ticker_key])
    result = dg.materialize(
        [backtest_request], partition_key=request.ticker_key, instance=instance,
        resources=resources or build_resources(), run_config=request_run_config(request),
    )
    assert result.success
    return result
