"""Test helper: run the `trades` step of one ticker x scenario partition in its own process.

Used by test_pool.py to launch several simulations together against one Dagster instance
(DAGSTER_HOME). The simulation is slowed down (MOCHI_TEST_SIM_DELAY seconds) so that runs
without a pool would overlap for certain; MOCHI_TEST_SIM_FAIL=1 makes it fail half-way.
"""

import os
import sys
import time

import dagster as dg

from mochi_assets.simulation import assets as simulation


def _patched(real):
    def simulate(bars, traders, staged, **kwargs):
        time.sleep(float(os.environ.get("MOCHI_TEST_SIM_DELAY", "0")))
        if os.environ.get("MOCHI_TEST_SIM_FAIL") == "1":
            raise dg.Failure("simulation failed half-way (test)", allow_retries=False)
        return real(bars, traders, staged, **kwargs)
    return simulate


def main() -> int:
    from mochi_assets.definitions import defs
    from mochi_assets.partitions import ticker_scenario_key

    ticker, scenario = sys.argv[1], sys.argv[2]
    simulation.simulate_to_parquet = _patched(simulation.simulate_to_parquet)
    job = defs.resolve_job_def("scenario_job")
    result = job.execute_in_process(
        partition_key=ticker_scenario_key(ticker, scenario),
        instance=dg.DagsterInstance.get(),
        asset_selection=[dg.AssetKey("trades")],
        raise_on_error=False,
    )
    print(result.run_id)
    return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main())
