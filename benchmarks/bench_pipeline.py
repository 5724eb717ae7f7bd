"""End-to-end benchmark of the real `mochi backtest --request` command, per step and in total.

    python benchmarks/bench_pipeline.py                  # case "single": 10 y x 1 scenario x 2,000 traders
    python benchmarks/bench_pipeline.py --case four      # 10 y x 4 scenarios x 5,000 traders
    python benchmarks/bench_pipeline.py --case readme    # the README's one-year backtest of SYN:GOLD
    python benchmarks/bench_pipeline.py --case single --years 2 --home /tmp/mochi-bench

Each case writes a request document, then runs `python -m mochi_assets.cli backtest --request FILE
--no-progress` in a fresh MOCHI_HOME (a new temporary folder unless `--home` is given), exactly as
a user would. While it runs, a sampler reads the resident memory of the command's whole process
tree from /proc every 50 ms (the tree itself is found again every 0.5 s). Afterwards the Dagster event log of that home gives each step's start
and end, so the script prints, per step, its wall seconds (summed over its runs), the CPU seconds
the process tree used meanwhile (user + system from /proc; above the wall seconds when the step
kept more than one core busy; steps of scenario runs that overlap share the tree's CPU, so their
figures include each other's) and the peak RSS of the process tree while it ran; then the whole command's wall seconds and peak RSS, and the
overhead (time in no step: process start, imports, run set-up and launch), the command's CPU
seconds and the CPU time the host stole from this virtual machine meanwhile (wall times move
with it; CPU seconds hardly do). Scenario runs may
overlap (MOCHI_PARALLEL_RUNS, default 2 here), so the step seconds can add up to more than the
wall time. Nothing here is a test: it only prints.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
_TICKS = os.sysconf("SC_CLK_TCK")

# 5 offsets x 8 stops x 10 limits x 5 durations = 2,000 traders (the single-scenario case).
SINGLE_GRID = {
    "offset_ticks": [0, 10, 20, 40, 80],
    "stop_atr": [0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0],
    "limit_atr": [0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.0],
    "duration_min": [30, 60, 120, 240, 480],
}
# 5 offsets x 10 stops x 10 limits x 10 durations = 5,000 traders per scenario.
FIVE_K_GRID = {
    "stop_atr": [0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5],
    "limit_atr": [0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.0],
    "duration_min": [15, 30, 45, 60, 90, 120, 180, 240, 360, 480],
}


def request_for(case: str, years: int) -> dict:
    end_year = 2024
    doc = {"ticker": "SYN:GOLD", "start": f"{end_year - years + 1}-01-01", "end": f"{end_year}-12-31"}
    if case == "readme":
        return {"ticker": "SYN:GOLD", "start": "2024-01-01", "end": "2024-12-31"}
    if case == "single":
        doc["scenarios"] = {"breakout-long": {"direction": "long", **SINGLE_GRID}}
    elif case == "four":
        doc["scenarios"] = {
            "breakout-long": {"direction": "long", "offset_ticks": [0, 10, 20, 40, 80], **FIVE_K_GRID},
            "breakout-short": {"direction": "short", "offset_ticks": [0, 10, 20, 40, 80], **FIVE_K_GRID},
            "pullback-long": {"direction": "long", "offset_ticks": [-10, -20, -40, -80, -120], **FIVE_K_GRID},
            "pullback-short": {"direction": "short", "offset_ticks": [-10, -20, -40, -80, -120], **FIVE_K_GRID},
        }
    else:
        raise SystemExit(f"unknown case {case!r}")
    return doc


class TreeRss:
    """Samples the summed RSS (MB) of a process and all its descendants from /proc.

    The RSS of the known processes is read every `interval` seconds; the process tree is found
    again (a walk over every /proc entry, which costs real CPU) every `rescan` seconds only, so
    the sampler itself takes a few percent of a core rather than half of one.
    """

    def __init__(self, pid: int, interval: float = 0.05, rescan: float = 0.5) -> None:
        self.pid = pid
        self.interval = interval
        self.rescan = rescan
        self.samples: list[tuple[float, float]] = []
        # (time, CPU seconds the tree has used so far): a process's last reading stays counted after it ends
        self.cpu_samples: list[tuple[float, float]] = []
        self._cpu_seen: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "TreeRss":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _tree(self) -> list[int]:
        children: dict[int, list[int]] = defaultdict(list)
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/stat") as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children[ppid].append(int(entry.name))
        out, todo = [], [self.pid]
        while todo:
            pid = todo.pop()
            out.append(pid)
            todo.extend(children.get(pid, ()))
        return out

    @staticmethod
    def _cpu_s(pid: int) -> float | None:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / _TICKS
        except (OSError, IndexError, ValueError):
            return None

    @staticmethod
    def _rss_mb(pid: int) -> float:
        try:
            with open(f"/proc/{pid}/status") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) / 1024.0
        except OSError:
            pass
        return 0.0

    def _run(self) -> None:
        pids, found_at = [], None  # not 0.0: the monotonic clock may start near zero at boot
        while not self._stop.is_set():
            if found_at is None or time.monotonic() - found_at >= self.rescan:
                pids, found_at = self._tree(), time.monotonic()
            total = sum(self._rss_mb(p) for p in pids)
            now = time.time()
            self.samples.append((now, total))
            for p in pids:
                cpu = self._cpu_s(p)
                if cpu is not None:
                    self._cpu_seen[p] = cpu
            self.cpu_samples.append((now, sum(self._cpu_seen.values())))
            self._stop.wait(self.interval)

    def peak(self, start: float | None = None, end: float | None = None) -> float:
        values = [mb for t, mb in self.samples if (start is None or t >= start) and (end is None or t <= end)]
        return max(values, default=0.0)

    def cpu_between(self, start: float, end: float) -> float:
        """CPU seconds the tree used from the last sample at or before start to the first at or after end."""
        before = [c for t, c in self.cpu_samples if t <= start]
        after = [c for t, c in self.cpu_samples if t >= end]
        if not before or not after:
            return float("nan")
        return after[0] - before[-1]


def step_windows(dagster_home: Path) -> list[dict]:
    """(run, step, start, end) of every step in the instance's event log, in time order."""
    import dagster as dg

    os.environ["DAGSTER_HOME"] = str(dagster_home)
    instance = dg.DagsterInstance.get()
    kinds = {dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE}
    steps = []
    for run in instance.get_runs():
        starts: dict[str, float] = {}
        for record in instance.get_records_for_run(run.run_id, of_type=kinds).records:
            entry = record.event_log_entry
            if entry.dagster_event.event_type == dg.DagsterEventType.STEP_START:
                starts[entry.step_key] = entry.timestamp
            elif entry.step_key in starts:
                partition = run.tags.get("dagster/partition", "")
                steps.append({
                    "step": entry.step_key, "partition": partition,
                    "start": starts.pop(entry.step_key), "end": entry.timestamp,
                    "ok": entry.dagster_event.event_type == dg.DagsterEventType.STEP_SUCCESS,
                })
    return sorted(steps, key=lambda s: s["start"])


def _children_cpu() -> float:
    """User + system CPU seconds of the finished child processes (and what they waited for)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _steal_seconds() -> float:
    """CPU time the hypervisor gave other guests (/proc/stat "steal", all CPUs); 0 where unknown.
    On a shared virtual machine it is why one command's wall time moves between runs while its
    CPU time does not."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
        return int(fields[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", choices=["single", "four", "readme"], default="single")
    parser.add_argument("--years", type=int, default=10, help="years of minute bars (single and four)")
    parser.add_argument("--home", type=Path, help="MOCHI_HOME to use (default: a new temporary folder)")
    args = parser.parse_args()

    home = args.home or Path(tempfile.mkdtemp(prefix="mochi-bench-"))
    home.mkdir(parents=True, exist_ok=True)
    request_file = home / f"request-{args.case}.yaml"
    request_file.write_text(yaml.safe_dump(request_for(args.case, args.years), sort_keys=False))
    env = {**os.environ, "MOCHI_HOME": str(home), "PYTHONPATH": str(ROOT)}
    env.pop("DAGSTER_HOME", None)
    cmd = [sys.executable, "-m", "mochi_assets.cli", "backtest", "--request", str(request_file), "--no-progress"]
    print(f"case {args.case}: {' '.join(cmd[1:])}  (MOCHI_HOME={home})", flush=True)

    t0 = time.time()
    cpu0, steal0 = _children_cpu(), _steal_seconds()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with TreeRss(proc.pid) as rss:
        out, err = proc.communicate()
    wall = time.time() - t0
    cpu, steal = _children_cpu() - cpu0, _steal_seconds() - steal0
    if proc.returncode != 0:
        print(out, err, sep="\n")
        raise SystemExit(f"mochi backtest failed with exit code {proc.returncode}")

    steps = step_windows(home / "dagster")
    by_asset: dict[str, list[dict]] = defaultdict(list)
    for s in steps:
        by_asset[s["step"]].append(s)
    print(f"\n{'step':<28}{'count':>6}{'seconds':>10}{'CPU s':>8}{'peak RSS MB':>13}")
    in_steps = 0.0
    for name, runs in by_asset.items():
        seconds = sum(s["end"] - s["start"] for s in runs)
        in_steps += seconds
        peak = max(rss.peak(s["start"], s["end"]) for s in runs)
        step_cpu = sum(rss.cpu_between(s["start"], s["end"]) for s in runs)
        print(f"{name:<28}{len(runs):>6}{seconds:>10.2f}{step_cpu:>8.2f}{peak:>13,.0f}")
    covered, last_end = 0.0, float("-inf")  # union of the step intervals (scenario runs overlap)
    for s in steps:
        start = max(s["start"], last_end)
        if s["end"] > start:
            covered += s["end"] - start
        last_end = max(last_end, s["end"])
    print(f"{'(sum of step seconds)':<28}{'':>6}{in_steps:>10.2f}")
    print(f"{'(time in some step)':<28}{'':>6}{covered:>10.2f}")
    print(f"{'(time in no step)':<28}{'':>6}{wall - covered:>10.2f}   process start, imports, run set-up and launch")
    print(f"\nwhole command: {wall:.2f} s wall, peak RSS {rss.peak():,.0f} MB (process tree), "
          f"{len(steps)} steps, MOCHI_PARALLEL_RUNS={os.environ.get('MOCHI_PARALLEL_RUNS', 'default')}, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"               {cpu:.2f} s CPU (user + system, the command and the processes it waited for); "
          f"{steal:.2f} s of CPU stolen from this virtual machine by its host meanwhile")
    tail = [line for line in out.splitlines() if line.strip()][:3]
    print("command said: " + " | ".join(tail))


if __name__ == "__main__":
    main()
