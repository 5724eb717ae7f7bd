"""A run waiting for a pool slot is told which run holds it, and since when."""

import dagster as dg

from mochi_assets.execution import SIMULATION_POOL
from mochi_assets.runner import pool_wait
from tests.instances import mochi_instance_for_test


@dg.op
def _nothing() -> None:
    return None


@dg.job
def scenario_like_job():
    _nothing()


def _run(instance: dg.DagsterInstance, partition: str) -> str:
    result = scenario_like_job.execute_in_process(instance=instance, tags={"dagster/partition": partition})
    return result.run_id


def test_the_waiting_run_names_the_holder_of_the_slot():
    with mochi_instance_for_test() as instance:
        storage = instance.event_log_storage
        storage.set_concurrency_slots(SIMULATION_POOL, 1)
        holder = _run(instance, "SYN_GOLD|breakout-long")
        waiter = _run(instance, "SYN_SILVER|breakout-long")
        assert storage.claim_concurrency_slot(SIMULATION_POOL, holder, "trades").is_claimed
        assert not storage.claim_concurrency_slot(SIMULATION_POOL, waiter, "trades").is_claimed

        line = pool_wait(instance, waiter)
        assert line is not None
        assert line.startswith(f"step trades waits for pool {SIMULATION_POOL} (limit 1): step trades of run {holder} "
                               "(scenario_like_job, SYN_GOLD|breakout-long) holds it since ")
        assert pool_wait(instance, holder) is None  # the holder waits for nothing

        storage.free_concurrency_slots_for_run(holder)
        assert storage.claim_concurrency_slot(SIMULATION_POOL, waiter, "trades").is_claimed
        assert pool_wait(instance, waiter) is None
