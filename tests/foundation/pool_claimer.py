"""Test helper: claim the slot of pool "pool" for run argv[1] at the instant argv[2] (epoch seconds)
on the instance under DAGSTER_HOME as a step's executor does (the pool is given the instance's
default limit first if it has none), then print whether it was claimed (test_dagster_storage.py)."""

import sys
import time

import dagster as dg


def main() -> None:
    run_id, at = sys.argv[1], float(sys.argv[2])
    with dg.DagsterInstance.get() as instance:
        storage = instance.event_log_storage
        storage.get_concurrency_info("pool")  # connections opened and tables checked before the race
        time.sleep(max(0.0, at - time.time()))
        if "pool" not in {pool.name for pool in storage.get_pool_limits()}:
            storage.initialize_concurrency_limit_to_default("pool")
        print("claimed" if storage.claim_concurrency_slot("pool", run_id, "trades").is_claimed else "blocked")


if __name__ == "__main__":
    main()
