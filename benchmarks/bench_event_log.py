"""Benchmark of the embedded event log: seconds per stored event, Mochi's storage against Dagster's.

    python benchmarks/bench_event_log.py [--runs 4] [--events 185] [--repeat 3]

Stores ``--events`` log events in each of ``--runs`` runs (4 x 185 is about what the README
backtest's scenario runs store), then the event that ends each run, first with
``MochiSqliteEventLogStorage`` (what `dagster.yaml` selects) and then with Dagster's own
``SqliteEventLogStorage``, each in a fresh folder, ``--repeat`` times alternately. Prints, per
storage, the least and the median wall and CPU seconds (the process's, all threads) of the whole
batch and per event. Nothing here is a test: it only prints.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import dagster as dg  # noqa: E402
from dagster._core.events import DagsterEvent  # noqa: E402
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage  # noqa: E402

from mochi_resources.dagster_storage import MochiSqliteEventLogStorage  # noqa: E402


def _entry(run_id: str, message: str, event_type: dg.DagsterEventType | None = None) -> dg.EventLogEntry:
    return dg.EventLogEntry(
        error_info=None, level="DEBUG", user_message=message, run_id=run_id, timestamp=time.time(),
        dagster_event=DagsterEvent(event_type.value, "bench_job") if event_type else None,
    )


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def store_batch(storage_class: type, runs: int, events: int) -> tuple[float, float]:
    """Wall and CPU seconds to store `events` events and the run's end in each of `runs` runs."""
    with tempfile.TemporaryDirectory(prefix="mochi-bench-events-") as folder:
        storage = storage_class(folder)
        storage.store_event(_entry("warm-up", "creates the index and the run template"))
        wall, cpu = time.perf_counter(), _cpu()
        for run in range(runs):
            run_id = f"run-{run}"
            storage.store_event(_entry(run_id, "", dg.DagsterEventType.RUN_START))
            for i in range(events):
                storage.store_event(_entry(run_id, f"event {i}"))
            storage.store_event(_entry(run_id, "", dg.DagsterEventType.RUN_SUCCESS))
        result = time.perf_counter() - wall, _cpu() - cpu
        storage.dispose()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--events", type=int, default=185)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    storages = {"mochi (kept connections)": MochiSqliteEventLogStorage, "dagster (NullPool)": SqliteEventLogStorage}
    figures: dict[str, list[tuple[float, float]]] = {name: [] for name in storages}
    for _ in range(args.repeat):
        for name, storage_class in storages.items():
            figures[name].append(store_batch(storage_class, args.runs, args.events))
    total = args.runs * (args.events + 2)
    print(f"{args.runs} runs x {args.events + 2} events = {total:,} events, {args.repeat} repeats (least / median)")
    print(f"  {'storage':28s} {'wall s':>15s} {'cpu s':>15s} {'ms per event':>14s}")
    for name, runs in figures.items():
        walls, cpus = [w for w, _ in runs], [c for _, c in runs]
        print(f"  {name:28s} {min(walls):6.3f} / {statistics.median(walls):6.3f} "
              f"{min(cpus):6.3f} / {statistics.median(cpus):6.3f} {1000 * min(walls) / total:14.2f}")


if __name__ == "__main__":
    main()
