"""Running a whole backtest for one ticker on the Dagster instance (what `mochi backtest` does).

The jobs of definitions.py run in order, in this process, on the instance under DAGSTER_HOME (by
default `$MOCHI_HOME/dagster`), as runs of the `mochi` code location (launch.py), so they show in
`mochi ui` like runs launched there: the request job (the request as run config), the ticker job
(bars, indicators, scenarios), one scenario job per scenario of the ticker's grids, then the
leaderboard job. Partitions that are up to date are skipped.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import polars as pl
from filelock import FileLock

from mochi_assets import interrupt, launch, run_worker
from mochi_assets.run_worker import parallel_runs, wants_workers  # noqa: F401  (re-exported)
from mochi_assets.home import INSTANCE_LOCK, LOCK_TIMEOUT_S, ensure_dagster_home  # noqa: F401  (re-exported)
from mochi_assets.automation.sensors import request_tags
from mochi_assets.conditions import ticker_scenarios
from mochi_assets.execution import PROVIDER_POOL, SIMULATION_POOL
from mochi_assets.market_data.sources import check_source
from mochi_assets.memory import freeze_long_lived
from mochi_assets.partitions import SCENARIO_DIMENSION, TICKER_DIMENSION, ticker_scenario_key
from mochi_assets.request import BacktestRequest
from mochi_assets.request_asset import REQUEST_ASSET, request_run_config
from mochi_resources.errors import MochiError
from mochi_resources.lake import Lake
from mochi_resources.settings import MochiSettings

# Dagster's own console output is replaced by Mochi's progress bar; failures are reported by Mochi.
QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
# A run executed by `mochi` names its process, so a later command can tell that it died.
PID_TAG = "mochi/pid"
HOST_TAG = "mochi/host"
IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]
# After Ctrl-C or SIGTERM, how long a run may take to stop by itself before Mochi cancels it.
STOP_GRACE_S = 6.0
# How often the progress of parallel runs is read from the event log.
POLL_S = 1.0
# While a step waits for a pool slot, how often the waiting line is repeated on stderr.
POOL_NOTICE_EVERY_S = 10.0
POOL_CHECK_EVERY_S = 2.0  # how often a run's progress looks whether a step waits for a pool slot


def workspace_file(settings: MochiSettings) -> Path:
    """A workspace file in the Dagster home loading the code location under its name, `mochi`."""
    home = ensure_dagster_home(settings)
    target = home / "workspace.yaml"
    text = (
        "# written by `mochi`: the Mochi code location, named as runs launched by `mochi backtest` name it\n"
        f"load_from:\n  - python_module:\n      module_name: {launch.DEFINITIONS_MODULE}\n"
        f"      location_name: {launch.LOCATION_NAME}\n"
    )
    if not target.is_file() or target.read_text() != text:
        staged = home / f".workspace.yaml.{os.getpid()}"
        staged.write_text(text)
        os.replace(staged, target)
    return target


def get_instance(settings: MochiSettings, notice: Callable[[str], None] | None = None) -> dg.DagsterInstance:
    """The instance under DAGSTER_HOME. Its SQLite storage is created (or migrated) under a file
    lock, so any number of `mochi` commands started at once on a fresh home create it once; then
    runs left behind by a `mochi` process that died are failed and their pool slots freed."""
    home = ensure_dagster_home(settings)
    with FileLock(str(home / INSTANCE_LOCK), timeout=LOCK_TIMEOUT_S):
        instance = dg.DagsterInstance.get()
        instance.get_runs(limit=1)  # the storage exists before another command may touch it
    freeze_long_lived()  # the storage's modules (SQLAlchemy, alembic) live as long as the process
    for line in recover_dead_runs(instance):
        (notice or _stderr)(line)
    return instance


def _stderr(line: str) -> None:
    sys.stderr.write(f"mochi: {line}\n")


def _process_alive(pid: int) -> bool:
    """Whether a `mochi` process with this pid still runs (a reused pid of another program is not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return b"mochi" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True  # no /proc: trust the signal check


def recover_dead_runs(instance: dg.DagsterInstance) -> list[str]:
    """Fail the unfinished runs whose `mochi` process (on this host) is gone, freeing their pool
    slots; one line per run saying so."""
    lines = []
    host = socket.gethostname()
    for record in instance.get_run_records(filters=dg.RunsFilter(statuses=IN_FLIGHT)):
        run = record.dagster_run
        pid = run.tags.get(PID_TAG)
        if not pid or run.tags.get(HOST_TAG) != host or _process_alive(int(pid)):
            continue
        message = f"the mochi process {pid} that ran it is gone (killed or crashed)"
        instance.report_run_failed(run, message)
        free_pool_slots(instance, run.run_id)
        lines.append(f"run {run.run_id} ({run.job_name}) was left behind by process {pid}, which is gone: "
                     "marked failed, its pool slots freed")
    return lines


def free_pool_slots(instance: dg.DagsterInstance, run_id: str) -> None:
    """Free the pool slots (and pending claims) of a run that will not end by itself."""
    instance.event_log_storage.free_concurrency_slots_for_run(run_id)


def describe_run(run: dg.DagsterRun) -> str:
    """`run <id> (<job>, <partition>)`."""
    partition = run.tags.get("dagster/partition")
    return f"run {run.run_id} ({run.job_name}{', ' + partition if partition else ''})"


def pool_wait(instance: dg.DagsterInstance, run_id: str) -> str | None:
    """What a run's step waits for, when it waits for a pool slot: the pool and the run holding it,
    since when; None when no step of the run waits."""
    for pool in (SIMULATION_POOL, PROVIDER_POOL):
        info = instance.event_log_storage.get_concurrency_info(pool)
        waiting = [p for p in info.pending_steps if p.run_id == run_id and p.assigned_timestamp is None]
        if not waiting:
            continue
        holders = [c for c in info.claimed_slots if c.run_id != run_id]
        if not holders:
            return f"step {waiting[0].step_key} waits for a slot of pool {pool}"
        holder = holders[0]
        since = next((p.assigned_timestamp for p in info.pending_steps
                      if p.run_id == holder.run_id and p.step_key == holder.step_key and p.assigned_timestamp), None)
        held = instance.get_run_by_id(holder.run_id)
        who = describe_run(held) if held is not None else f"run {holder.run_id}"
        if since is not None and since.tzinfo is None:
            since = since.replace(tzinfo=dt.timezone.utc)  # the storage keeps UTC without a zone
        when = f" since {since.astimezone():%H:%M:%S}" if since is not None else ""
        return (f"step {waiting[0].step_key} waits for pool {pool} (limit {info.slot_count}): "
                f"step {holder.step_key} of {who} holds it{when}")
    return None


@dataclass
class BacktestResult:
    request: BacktestRequest
    scenarios: list[str]
    leaderboard: pl.DataFrame
    lake_location: str
    locations: dict[str, str]  # what -> where, for people (folders or s3:// URIs)
    dagster_home: Path
    run_ids: list[str]
    skipped: list[str]  # phases whose partitions were up to date (code and data versions unchanged)


class RunFailed(MochiError):
    """A Dagster run of the backtest failed; the message carries the step's own error."""


class Interrupted(MochiError):
    """Ctrl-C or SIGTERM stopped the backtest; the run in progress was canceled."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = signum


Progress = Callable[[str, int, int | None], None]  # (what is running, steps done, steps total)


def _root_cause(error) -> str:
    """The innermost error of a chain (what was raised first), without its class prefix for Mochi's own."""
    if error is None:
        return "the step failed (see the Dagster UI for its logs)"
    while error.cause is not None:
        error = error.cause
    text = error.message.strip()
    for prefix in (f"{error.cls_name}: ", f"dagster._core.definitions.events.{error.cls_name}: "):
        text = text.removeprefix(prefix)
    return text


def failure_message(instance: dg.DagsterInstance, run_id: str) -> str:
    """`step S failed: <root cause>` in one line, for the first failed step of a run: its own error
    (for a step that was retried, the error of its last attempt, never "Exceeded max_retries")."""
    failures = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.STEP_FAILURE).records
    for record in failures:
        event = record.event_log_entry.dagster_event
        data = event.step_failure_data
        retries = [
            r.event_log_entry.dagster_event
            for r in instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.STEP_UP_FOR_RETRY).records
            if r.event_log_entry.dagster_event.step_key == event.step_key
        ]
        if data.user_failure_data is not None and data.user_failure_data.description:
            text = data.user_failure_data.description
        elif retries:
            text = _root_cause(retries[-1].event_specific_data.error)
        else:
            text = _root_cause(data.error)
        one_line = "; ".join(line.strip() for line in text.strip().splitlines() if line.strip())
        attempts = f" (after {len(retries) + 1} attempts)" if retries else ""
        return f"step {event.step_key} failed{attempts}: {one_line or 'no message'}"
    for record in instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.RUN_FAILURE).records:
        message = record.event_log_entry.dagster_event.message or ""
        if message:
            return message.strip().splitlines()[0]
    return "the run failed (see the Dagster UI for its logs)"


def _interrupted(run: dg.DagsterRun | None) -> Interrupted:
    what = f"{describe_run(run)} canceled" if run is not None else "no run was started"
    return Interrupted(f"interrupted: {what}", interrupt.signal_number())


def _cancel_runs(instance: dg.DagsterInstance, runs: list[dg.DagsterRun], stop: Callable[[float], None]) -> Interrupted:
    """After Ctrl-C or SIGTERM: mark the runs canceling, `stop(grace)` what executes them (the
    simulation checks between chunks, Dagster then ends a run CANCELED), cancel here what did not
    end within STOP_GRACE_S, and free their pool slots."""
    message = "Ctrl-C or SIGTERM received by the mochi process"
    for run in runs:
        current = instance.get_run_by_id(run.run_id)
        if current is not None and current.status in IN_FLIGHT and current.status != dg.DagsterRunStatus.CANCELING:
            instance.report_run_canceling(current, message=message)
    stop(STOP_GRACE_S)
    for run in runs:
        current = instance.get_run_by_id(run.run_id)
        if current is not None and current.status in IN_FLIGHT:
            instance.report_run_canceled(current, message=f"{message}; the run did not stop within {STOP_GRACE_S:g} s")
        elif current is not None and current.status == dg.DagsterRunStatus.FAILURE and _stopped_after_cancel(instance, run.run_id):
            # the run was marked canceling, but its status went back to STARTED before the stop
            # ended it, so Dagster ended it failed: a worker that had just been handed the run
            # started it right after the request, or its start's status update reached the run
            # storage after the request's (two processes, each writing the event log first)
            instance.report_run_canceled(current, message=f"{message}; the run was stopped while its status read STARTED")
        free_pool_slots(instance, run.run_id)
    return _interrupted(runs[0] if runs else None)


# What the stop raises in a step (interrupt.RunInterrupted is a DagsterExecutionInterruptedError).
INTERRUPTIONS = {"RunInterrupted", "DagsterExecutionInterruptedError", "KeyboardInterrupt"}


def _stopped_after_cancel(instance: dg.DagsterInstance, run_id: str) -> bool:
    """Whether a failed run was ended by the stop that followed its (last) cancel request: its start
    event came after the request, or its failure came after it and is an interruption (Dagster's
    "interrupted unexpectedly", or a step's RunInterrupted). A run that failed of its own error
    stays failed, even while it was being stopped."""
    def last(kind: dg.DagsterEventType):
        records = instance.get_records_for_run(run_id, of_type=kind, ascending=False, limit=1).records
        return records[0] if records else None

    canceling = last(dg.DagsterEventType.RUN_CANCELING)
    if canceling is None:
        return False
    started = last(dg.DagsterEventType.RUN_START)
    if started is not None and started.storage_id > canceling.storage_id:
        return True
    failed = last(dg.DagsterEventType.RUN_FAILURE)
    if failed is None or failed.storage_id < canceling.storage_id:
        return False
    data = failed.event_log_entry.dagster_event.event_specific_data
    if data is None:
        return False
    reason = getattr(data, "failure_reason", None)
    if reason is not None and reason.value == "UNEXPECTED_TERMINATION":
        return True
    step = getattr(data, "first_step_failure_event", None)
    errors = [data.error, step.step_failure_data.error if step is not None and step.step_failure_data else None]
    for error in errors:
        while error is not None:
            if error.cls_name in INTERRUPTIONS:
                return True
            error = error.cause
    return False


def _cancel(instance: dg.DagsterInstance, run: dg.DagsterRun, executing: threading.Thread) -> Interrupted:
    """`_cancel_runs` for the one run executing in this process's thread `executing`."""

    def stop(grace: float) -> None:
        interrupt.STOP.set()
        executing.join(grace)

    return _cancel_runs(instance, [run], stop)


def _run(instance: dg.DagsterInstance, run: dg.DagsterRun, label: str, done_before: int, total: int | None,
         progress: Progress | None, notice: Callable[[str], None] | None = None) -> str:
    """Execute a run (in a thread, so that this, the main thread, handles Ctrl-C and SIGTERM); raise
    RunFailed when it fails, Interrupted when a signal stopped it."""
    if interrupt.SIGNALLED.is_set():
        raise _interrupted(None)
    stop = threading.Event()
    ended: list[dg.DagsterRun] = []
    crashed: list[BaseException] = []

    def watch() -> None:
        # This thread shares the GIL with the run: it reads only the step successes it has not
        # seen yet, and the pools (several queries) every POOL_CHECK_EVERY_S.
        last_wait, told_at, checked_at = None, 0.0, 0.0
        seen, cursor, waiting = 0, None, None
        while not stop.wait(0.5):
            try:
                new = instance.get_records_for_run(run.run_id, cursor=cursor, of_type=dg.DagsterEventType.STEP_SUCCESS)
                seen, cursor = seen + len(new.records), new.cursor or cursor
                if time.monotonic() - checked_at >= POOL_CHECK_EVERY_S:
                    waiting, checked_at = pool_wait(instance, run.run_id), time.monotonic()
            except Exception:  # the run's event log may not exist yet
                continue
            if progress:
                progress(f"{label}: waiting for pool" if waiting else label, done_before + seen, total)
            now = time.monotonic()
            if waiting and notice and (waiting != last_wait or now - told_at >= POOL_NOTICE_EVERY_S):
                notice(waiting)
                told_at = now
            last_wait = waiting

    def execute() -> None:
        try:
            ended.append(launch.execute(instance, run))
        except BaseException as exc:  # re-raised in the main thread
            crashed.append(exc)

    watcher = threading.Thread(target=watch, daemon=True)
    executing = threading.Thread(target=execute, daemon=True, name=f"mochi-run-{run.run_id[:8]}")
    watcher.start()
    executing.start()
    try:
        while executing.is_alive():
            try:
                executing.join(0.2)
            except KeyboardInterrupt:  # a command that did not install interrupt's handlers
                interrupt.SIGNALLED.set()
            if interrupt.SIGNALLED.is_set():
                raise _cancel(instance, run, executing)
    finally:
        stop.set()
        watcher.join()
    if crashed:
        raise crashed[0]
    if ended[0].status != dg.DagsterRunStatus.SUCCESS:
        raise RunFailed(failure_message(instance, run.run_id))
    return run.run_id


class _Worker:
    """A `run_worker` process and a thread forwarding its lines to a queue."""

    def __init__(self, index: int, lines: "queue.Queue[tuple[int, str]]", proc: subprocess.Popen | None = None) -> None:
        self.index = index
        self.run_id: str | None = None
        self.ready = False
        self.proc = proc or run_worker.spawn()
        threading.Thread(target=self._read, args=(lines,), daemon=True).start()

    def _read(self, lines: "queue.Queue[tuple[int, str]]") -> None:
        for line in self.proc.stdout:
            lines.put((self.index, line.strip()))
        lines.put((self.index, "exit"))

    def alive(self) -> bool:
        return self.proc.poll() is None

    def give(self, run: dg.DagsterRun) -> None:
        self.run_id = run.run_id
        self.proc.stdin.write(run.run_id + "\n")
        self.proc.stdin.flush()

    def close(self) -> None:
        try:
            self.proc.stdin.close()
        except OSError:
            pass

    def terminate(self) -> None:
        """SIGTERM: the run in progress stops between units of work; an idle worker ends."""
        if self.alive():
            self.proc.terminate()

    def wait(self, timeout: float) -> bool:
        try:
            self.proc.wait(max(0.0, timeout))
            return True
        except subprocess.TimeoutExpired:
            return False

    def kill(self) -> None:
        if self.alive():
            self.proc.kill()
            self.proc.wait()


class _LocalSlot:
    """The `mochi` process itself as one more executor of runs (in a thread, as `_run` does): it has
    everything imported already, so it costs no process."""

    def __init__(self, index: int, instance: dg.DagsterInstance, lines: "queue.Queue[tuple[int, str]]") -> None:
        self.index = index
        self.run_id: str | None = None
        self.ready = True
        self._instance = instance
        self._lines = lines
        self._thread: threading.Thread | None = None

    def alive(self) -> bool:
        return True

    def give(self, run: dg.DagsterRun) -> None:
        self.run_id = run.run_id

        def execute() -> None:
            try:
                launch.execute(self._instance, run)
            except Exception as exc:  # reported like a worker's crash
                self._lines.put((self.index, run_worker.error_line(run.run_id, exc)))
            self._lines.put((self.index, f"done {run.run_id}"))

        self._thread = threading.Thread(target=execute, daemon=True, name=f"mochi-run-{run.run_id[:8]}")
        self._thread.start()

    def close(self) -> None:
        pass

    def terminate(self) -> None:
        interrupt.STOP.set()  # the run in this process stops between units of work

    def wait(self, timeout: float) -> bool:
        if self._thread is not None:
            self._thread.join(max(0.0, timeout))
            return not self._thread.is_alive()
        return True

    def kill(self) -> None:
        pass  # a thread cannot be killed; its run is marked canceled by the caller


class RunWorkers:
    """Executors of runs in parallel: this process (in a thread) and `count - 1` worker processes
    (run_worker.py). The workers start at once, so that their imports overlap the ticker phase;
    nothing is given to them until `run_all`."""

    def __init__(self, count: int, instance: dg.DagsterInstance) -> None:
        self.lines: queue.Queue[tuple[int, str]] = queue.Queue()
        self.slots: list[_Worker | _LocalSlot] = [_LocalSlot(0, instance, self.lines)]
        prestarted = run_worker.take_prestarted(count - 1)  # started by the CLI before its imports
        self.slots += [_Worker(i, self.lines, prestarted[i - 1] if i <= len(prestarted) else None)
                       for i in range(1, count)]

    def close(self, now: bool = False, wait: bool = True) -> None:
        """End the workers: each finishes its run in progress, if any, then sees end of input. With
        `now`, idle workers are ended at once instead (SIGTERM: an idle worker exits without the
        second or so of interpreter teardown). Without `wait`, return at once: `wait()` later
        waits for them to have ended."""
        for slot in self.slots:
            slot.close()
            if now and slot.run_id is None and isinstance(slot, _Worker):
                slot.terminate()
        if wait:
            self.wait()

    def wait(self) -> None:
        """Wait up to STOP_GRACE_S for each closed worker to end; kill what has not."""
        for slot in self.slots:
            if not slot.wait(STOP_GRACE_S):
                slot.kill()

    def run_all(self, instance: dg.DagsterInstance, runs: list[tuple[Callable[[], dg.DagsterRun], str]],
                done_before: int, total: int | None, per_run: int, progress: Progress | None,
                notice: Callable[[str], None] | None = None) -> list[str]:
        """Create and execute runs ((a function creating the run, its label) in order), at most one
        per slot at a time: a run is created when a slot takes it, so none is left NOT_STARTED.
        Raise RunFailed for the first that failed (after the others in flight ended; no new one
        starts), Interrupted when a signal stopped them. Returns the ids of the runs executed."""
        pending = list(runs)
        labels: dict[str, str] = {}
        by_id: dict[str, dg.DagsterRun] = {}
        finished: list[str] = []
        failed: list[str] = []
        crashed: dict[str, str] = {}
        told_at = polled_at = 0.0

        def idle() -> list[_Worker | _LocalSlot]:
            return [w for w in self.slots if w.ready and w.run_id is None and w.alive()]

        while pending or any(w.run_id for w in self.slots):
            if interrupt.SIGNALLED.is_set():
                raise self._cancel(instance, [by_id[w.run_id] for w in self.slots if w.run_id])
            while pending and not failed and idle():
                create, label = pending.pop(0)
                run = create()
                labels[run.run_id], by_id[run.run_id] = label, run
                idle()[0].give(run)
            if failed and not any(w.run_id for w in self.slots):
                break
            try:
                index, line = self.lines.get(timeout=0.5)
            except queue.Empty:
                index, line = None, ""
            if index is not None:
                slot = self.slots[index]
                word, _, rest = line.partition(" ")
                if word == "ready":
                    slot.ready = True
                elif word == "error":
                    run_id, _, message = rest.partition(" ")
                    crashed[run_id] = message
                elif word in ("done", "exit"):
                    run_id, slot.run_id = slot.run_id, None
                    if word == "exit":
                        slot.ready = False
                    if run_id is not None:
                        finished.append(run_id)
                        ended = instance.get_run_by_id(run_id)
                        if ended is None or ended.status != dg.DagsterRunStatus.SUCCESS or run_id in crashed:
                            failed.append(run_id)
                        if word == "exit" and ended is not None and ended.status in IN_FLIGHT:
                            # the worker died under its run (killed, out of memory): end the run here
                            why = f"the worker process executing {describe_run(ended)} ended unexpectedly"
                            instance.report_run_failed(ended, why)
                            free_pool_slots(instance, run_id)
                            crashed.setdefault(run_id, why)
            running = [w.run_id for w in self.slots if w.run_id]
            now = time.monotonic()
            if now - polled_at < POLL_S and index is None:
                continue
            polled_at = now
            if progress:
                seen = sum(len(instance.get_records_for_run(r, of_type=dg.DagsterEventType.STEP_SUCCESS).records)
                           for r in running)
                label = ", ".join(labels[r] for r in running) or "scenarios"
                progress(label, done_before + per_run * len(finished) + seen, total)
            if notice and now - told_at >= POOL_NOTICE_EVERY_S:
                told_at = now  # looked now; a line is printed only for a wait on someone else
                for run_id in running:
                    waiting = pool_wait(instance, run_id)
                    # a sibling scenario holding the simulation's slot is the plan, not news
                    if waiting and not any(other in waiting for other in by_id):
                        notice(waiting)
        if failed:
            first = failed[0]
            raise RunFailed(crashed.get(first) or failure_message(instance, first))
        return list(by_id)

    def _cancel(self, instance: dg.DagsterInstance, runs: list[dg.DagsterRun]) -> Interrupted:
        """`_cancel_runs` for the runs in flight: every slot is stopped (workers get SIGTERM)."""

        def stop(grace: float) -> None:
            for slot in self.slots:
                slot.close()
                slot.terminate()
            deadline = time.monotonic() + grace
            for slot in self.slots:
                if not slot.wait(deadline - time.monotonic()):
                    slot.kill()

        return _cancel_runs(instance, runs, stop)


def run_job_partition(job_name: str, partition_key: str, dimension: str, tags: dict[str, str]) -> str:
    """One run of a job of the `mochi` location for one partition (registered if new), executed here
    like a backtest's runs (origin, owner tags, quiet console); raise RunFailed naming the cause."""
    from mochi_assets.definitions import defs

    if threading.current_thread() is threading.main_thread():
        # Ctrl-C and SIGTERM cancel the run, as in `mochi backtest`. Also, processes the run starts
        # (Dagster's `tail` of the step logs) must not inherit an ignored SIGTERM: started in the
        # background by a shell, this process ignores SIGINT, Dagster copies SIGINT's disposition
        # to SIGTERM, and a tail that ignores SIGTERM outlives the run holding this process's
        # stdout open (a pipe reading it never ends). Python handlers are reset by exec.
        interrupt.install()
    instance = get_instance(MochiSettings.from_env())
    instance.add_dynamic_partitions(dimension, [partition_key])
    owner = {PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()}
    run = launch.create_run(instance, defs, job_name, partition_key, run_config=QUIET_RUN_CONFIG,
                            tags={**tags, **owner})
    return _run(instance, run, job_name, 0, None, None)


def result_locations(lake: Lake, ticker_key: str) -> dict[str, str]:
    """Where a ticker's results are, in the store in use."""
    def tables(bucket: str) -> str:
        return lake.uri(lake.settings.bucket(bucket)) + f"/*/ticker={ticker_key}"

    return {
        "leaderboard": lake.uri(lake.folder_key("rankings", "leaderboard", ticker_key)),
        "rankings": lake.uri(lake.folder_key("rankings", "rankings", ticker_key)),
        "graphs": tables("graphs"),
        "trades": lake.uri(lake.folder_key("trades", "trades", ticker_key)),
        "aggregates": tables("aggregates"),
    }


def _in_flight(instance: dg.DagsterInstance, ticker_key: str) -> list[str]:
    """Ids of unfinished runs of a ticker's partitions (its request or any stage)."""
    ids = []
    for tags in ({"dagster/partition": ticker_key}, {f"dagster/partition/{TICKER_DIMENSION}": ticker_key}):
        records = instance.get_run_records(filters=dg.RunsFilter(statuses=IN_FLIGHT, tags=tags), limit=5)
        ids.extend(r.dagster_run.run_id for r in records)
    return ids


def run_backtest(request: BacktestRequest, *, progress: Progress | None = None, force: bool = False,
                 notice: Callable[[str], None] | None = None) -> BacktestResult:
    """Materialize the request, then every stage of its ticker that is out of date (all with `force`).

    Each phase is one run with the `mochi` location's origin (launch.py): the request, the ticker
    stages, one run per scenario, the leaderboard. A partition whose code and input data versions
    are unchanged is skipped (Dagster's stale status); raise MochiError on failure, Interrupted when
    Ctrl-C or SIGTERM stopped it (see interrupt.py). `notice` gets a line now and then while a step
    waits for a pool slot (which run holds it, since when).
    """
    from mochi_assets.definitions import defs, leaderboard_assets, request_job, scenario_assets, ticker_assets

    settings = MochiSettings.from_env()
    lake = Lake(settings)
    check_source(lake, request)  # an unknown ticker fails here, before anything is written
    instance = get_instance(settings, notice)
    ticker_key = request.ticker_key
    busy = _in_flight(instance, ticker_key)
    if busy:
        raise MochiError(
            f"{request.ticker}: run {busy[0]} of this ticker is still in progress; wait for it to end "
            "(or cancel it in the web UI) before starting another backtest of the same ticker"
        )
    instance.add_dynamic_partitions(TICKER_DIMENSION, [ticker_key])
    tags = {**request_tags(request), PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()}
    ticker_keys = [a.key for a in ticker_assets]
    scenario_keys = [a.key for a in scenario_assets]
    board_keys = [a.key for a in leaderboard_assets]
    skipped: list[str] = []
    run_ids: list[str] = []

    def launch_phase(job_name: str, partition: str, keys: list[dg.AssetKey], label: str, done: int, total: int | None,
                     run_config: dict | None = None, always: bool = False) -> int:
        stale = keys if force or always else launch.out_of_date(instance, defs, keys, partition)
        if not stale:
            skipped.append(label)
            return 0
        run = launch.create_run(instance, defs, job_name, partition, asset_selection=stale if stale != keys else None,
                                run_config={**QUIET_RUN_CONFIG, **(run_config or {})}, tags=tags)
        run_ids.append(_run(instance, run, label, done, total, progress, notice))
        return len(stale)

    # scenario runs go to worker processes when there may be two or more: started now, their
    # imports overlap the request and ticker runs
    parallel = parallel_runs(request)
    workers = RunWorkers(parallel, instance) if wants_workers(request, parallel) else None
    try:
        launch_phase(request_job.name, ticker_key, [REQUEST_ASSET], "request", 0, None, request_run_config(request),
                     always=True)  # cheap; its data version (the hash) decides what follows
        launch_phase("ticker_job", ticker_key, ticker_keys, "bars and scenarios", 0, None)
        names = ticker_scenarios(instance, ticker_key)
        known = set(instance.get_dynamic_partitions(SCENARIO_DIMENSION))
        missing = [n for n in names if n not in known]
        if missing:
            raise MochiError(f"scenario partitions {missing} were not registered by the scenarios asset")
        per_scenario = len(scenario_keys)
        total = len(ticker_keys) + per_scenario * len(names) + len(board_keys)
        done = len(ticker_keys)
        if progress:
            progress("scenarios", done, total)
        ran_scenarios = 0
        if workers is None:
            for name in names:
                ran_scenarios += launch_phase("scenario_job", str(ticker_scenario_key(ticker_key, name)),
                                              scenario_keys, name, done, total) > 0
                done += per_scenario
        else:
            runs = []
            for name in names:
                partition = str(ticker_scenario_key(ticker_key, name))
                stale = scenario_keys if force else launch.out_of_date(instance, defs, scenario_keys, partition)
                if not stale:
                    skipped.append(name)
                    done += per_scenario
                    continue
                runs.append((functools.partial(
                    launch.create_run, instance, defs, "scenario_job", partition,
                    asset_selection=stale if stale != scenario_keys else None, run_config=QUIET_RUN_CONFIG, tags=tags,
                ), name))
            if runs:
                run_ids.extend(workers.run_all(instance, runs, done, total, per_scenario, progress, notice))
                done += per_scenario * len(runs)
                ran_scenarios = len(runs)
    finally:
        if workers is not None:
            # every worker is idle now (or never got a run: all scenarios up to date): ended at
            # once; the leaderboard does not wait for them to be gone, unless the backtest is failing
            failing = sys.exc_info()[0] is not None
            workers.close(now=True, wait=failing)
    try:
        board_stale = force or ran_scenarios or launch.out_of_date(instance, defs, board_keys, ticker_key)
        if board_stale:
            run = launch.create_run(instance, defs, "leaderboard_job", ticker_key, run_config=QUIET_RUN_CONFIG,
                                    tags=tags)
            run_ids.append(_run(instance, run, "leaderboard", done, total, progress, notice))
        else:
            skipped.append("leaderboard")
    finally:
        if workers is not None:
            workers.wait()
    if progress:
        progress("done", total, total)
    board = lake.read_table(lake.key("rankings", "leaderboard", ticker_key))
    return BacktestResult(
        request=request,
        scenarios=names,
        leaderboard=board,
        lake_location=lake.location,
        locations=result_locations(lake, ticker_key),
        dagster_home=settings.dagster_home,
        run_ids=run_ids,
        skipped=[s for s in skipped if s != "request"],
    )
