"""The embedded instance's event log and run storage: Dagster's SQLite files, fewer set-ups per call."""

import shutil
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from dagster._core.storage.runs.sqlite.sqlite_run_storage import SqliteRunStorage

import mochi_resources.dagster_storage as storage_module
from mochi_resources.dagster_storage import MochiSqliteEventLogStorage, MochiSqliteRunStorage

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def home(tmp_path, monkeypatch):
    shutil.copyfile(REPO / "dagster.yaml", tmp_path / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    return tmp_path


@dg.asset
def numbers() -> int:
    return 7


def test_the_repository_instance_uses_it_under_the_default_layout(home):
    with dg.DagsterInstance.get() as instance:
        assert isinstance(instance.event_log_storage, MochiSqliteEventLogStorage)
        result = dg.materialize([numbers], instance=instance)
        assert result.success
    # Dagster's own class reads what it wrote, from Dagster's default place
    plain = SqliteEventLogStorage(str(home / "storage" / "history" / "runs"))
    records = plain.get_records_for_run(result.run_id).records
    assert any(r.event_log_entry.dagster_event_type == dg.DagsterEventType.ASSET_MATERIALIZATION for r in records)


def test_runs_are_in_dagsters_runs_db_through_one_kept_connection(home):
    with dg.DagsterInstance.get() as instance:
        assert isinstance(instance.run_storage, MochiSqliteRunStorage)
        result = dg.materialize([numbers], instance=instance)
        engine = instance.run_storage._engine()
        assert engine is instance.run_storage._engine()  # one engine, built once
        assert engine.pool.checkedin() >= 1  # its connection kept
        with instance.run_storage.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        # another process (a second instance) sees the run at once, while this one keeps its connection
        with dg.DagsterInstance.from_ref(instance.get_ref()) as other:
            assert other.get_run_by_id(result.run_id).status == dg.DagsterRunStatus.SUCCESS
            other.delete_run(result.run_id)
        assert instance.get_run_by_id(result.run_id) is None  # and this one sees the other's delete
    # Dagster's own class reads the same file, in Dagster's default place
    plain = SqliteRunStorage.from_local(str(home / "history"))
    assert plain.get_runs() == []
    plain.dispose()


def test_one_engine_per_database_file(home, monkeypatch):
    built = []
    real = storage_module.create_engine
    monkeypatch.setattr(storage_module, "create_engine", lambda *a, **k: built.append(a[0]) or real(*a, **k))
    with dg.DagsterInstance.get() as instance:
        for _ in range(3):
            assert dg.materialize([numbers], instance=instance).success
    # one engine for the index and one per run, however many events each run wrote (and one
    # that made the empty run database the runs' databases are copied from); one for runs.db
    runs_db = [url for url in built if url.endswith("/history/runs.db")]
    runs = [url for url in built if ".mochi-run-template" not in url and url not in runs_db]
    assert len(runs) == len(set(runs)) == 1 + 3
    assert len(built) - len(runs) - len(runs_db) == 1
    assert len(runs_db) == 1


def test_dynamic_partitions_seen_deleted_and_re_added(home):
    with dg.DagsterInstance.get() as instance:
        instance.add_dynamic_partitions("tickers", ["GOLD"])
        assert instance.has_dynamic_partition("tickers", "GOLD")
        assert not instance.has_dynamic_partition("tickers", "SILVER")
        instance.delete_dynamic_partition("tickers", "GOLD")
        assert not instance.has_dynamic_partition("tickers", "GOLD")  # forgotten at once
        instance.add_dynamic_partitions("tickers", ["SILVER"])
        assert instance.has_dynamic_partition("tickers", "SILVER")  # a miss is never cached


def test_a_partition_deleted_elsewhere_is_trusted_only_for_the_ttl(home, monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(storage_module.time, "monotonic", lambda: clock[0])
    with dg.DagsterInstance.get() as instance, dg.DagsterInstance.get() as other:
        instance.add_dynamic_partitions("tickers", ["GOLD"])
        assert instance.has_dynamic_partition("tickers", "GOLD")
        other.delete_dynamic_partition("tickers", "GOLD")  # another process, in effect
        assert instance.has_dynamic_partition("tickers", "GOLD")
        clock[0] += storage_module.PARTITION_TTL_S + 0.1
        assert not instance.has_dynamic_partition("tickers", "GOLD")


def test_commits_do_not_sync_and_connections_stay_open(home):
    """WAL with synchronous=NORMAL on every connection, kept open in a pool (the index's and the
    runs'): a write is a commit to the WAL, not an open, a checkpoint and a close."""
    with dg.DagsterInstance.get() as instance:
        storage = instance.event_log_storage
        result = dg.materialize([numbers], instance=instance)
        for shard in ("index", result.run_id):
            with storage._connect(shard) as conn:
                assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
                assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert storage._engine(shard).pool.checkedin() >= 1  # kept open


def _run_event(run_id: str, event_type: dg.DagsterEventType | None, message: str = "") -> dg.EventLogEntry:
    """A run status event (RUN_START, RUN_SUCCESS, ...), or a log message when `event_type` is None."""
    from dagster._core.events import DagsterEvent

    return dg.EventLogEntry(
        error_info=None, level="DEBUG", user_message=message, run_id=run_id, timestamp=time.time(),
        dagster_event=DagsterEvent(event_type.value, "mochi_test_job") if event_type else None,
    )


def test_a_run_end_checkpoints_its_log_into_the_db_file(tmp_path):
    """The event that ends a run puts the run's WAL into its .db file and closes the connection;
    until then the events are in the WAL, which every reader sees."""
    storage = MochiSqliteEventLogStorage(str(tmp_path))
    run_db = Path(storage.path_for_shard("run-a"))
    wal = run_db.with_name(run_db.name + "-wal")
    storage.store_event(_run_event("run-a", dg.DagsterEventType.RUN_START))
    storage.store_event(_run_event("run-a", None, "working"))
    assert wal.exists() and wal.stat().st_size > 0  # committed to the WAL, not yet checkpointed
    reader = SqliteEventLogStorage(str(tmp_path))  # another process, Dagster's own class
    assert len(reader.get_records_for_run("run-a").records) == 2
    storage.store_event(_run_event("run-a", dg.DagsterEventType.RUN_SUCCESS))
    assert "run-a" not in storage._engines  # this process's connection closed
    assert not wal.exists() or wal.stat().st_size == 0  # checkpointed into the .db file
    import sqlite3

    with sqlite3.connect(f"file:{run_db}?immutable=1", uri=True) as conn:  # the .db file alone, no WAL
        assert conn.execute("SELECT COUNT(*) FROM event_logs").fetchone()[0] == 3
    storage.dispose()


def test_the_ui_watch_of_a_run_sees_each_event_as_it_is_stored(tmp_path):
    """Dagster's UI streams a run's events by watching its .db file (SqliteEventLogStorage.watch):
    a commit to the WAL leaves the file as it was, so each stored event touches it."""
    writer = MochiSqliteEventLogStorage(str(tmp_path))
    writer.store_event(_run_event("run-w", dg.DagsterEventType.RUN_START))
    # the webserver's watch, in another process (Dagster's code: our class inherits it unchanged)
    watcher = SqliteEventLogStorage(str(tmp_path))
    seen: list[str] = []
    watcher.watch("run-w", None, lambda entry, cursor: seen.append(entry.user_message))
    try:
        for i in range(3):
            writer.store_event(_run_event("run-w", None, f"step {i}"))
            deadline = time.monotonic() + 10
            while f"step {i}" not in seen and time.monotonic() < deadline:
                time.sleep(0.05)
            assert f"step {i}" in seen, f"the watcher did not see event {i}: {seen}"
        assert "run-w" in writer._engines  # the run still going: its connection kept
    finally:
        watcher.dispose()
        writer.dispose()


def _schema(path: Path) -> tuple[list, list]:
    import sqlite3

    with sqlite3.connect(path) as conn:
        tables = sorted(conn.execute("SELECT type, name, sql FROM sqlite_master").fetchall(), key=str)
        revision = conn.execute("SELECT version_num FROM alembic_version").fetchall()
        mode = conn.execute("PRAGMA journal_mode").fetchall()
    return tables, revision + mode


def test_a_new_run_database_is_a_copy_of_what_dagster_creates(tmp_path):
    ours = MochiSqliteEventLogStorage(str(tmp_path / "ours"))
    theirs = SqliteEventLogStorage(str(tmp_path / "theirs"))
    for storage in (ours, theirs):
        for run_id in ("run-a", "run-b"):  # the first copy makes the template, the second reuses it
            with storage.run_connection(run_id):
                pass
    expected = _schema(Path(theirs.path_for_shard("run-a")))
    assert expected[0] and expected[1]
    for run_id in ("run-a", "run-b"):
        assert _schema(Path(ours.path_for_shard(run_id))) == expected
    # the template is hidden from Dagster's globs over *.db (wipe, reindex)
    assert sorted(p.name for p in (tmp_path / "ours").glob("*.db")) == ["index.db", "run-a.db", "run-b.db"]
    ours.dispose()


def test_a_blocked_pool_claim_asks_again_soon_then_less_often(home):
    """Dagster's executors wait 1 s or more between two claims of a pool slot unless the storage
    says otherwise: this one says a tenth of the wait so far, from 0.2 s up to 5 s."""
    with dg.DagsterInstance.get() as instance:
        storage = instance.event_log_storage
        storage.set_concurrency_slots("pool", 1)
        assert storage.claim_concurrency_slot("pool", "holder", "trades").is_claimed
        blocked = storage.claim_concurrency_slot("pool", "waiter", "trades")
        assert not blocked.is_claimed
        assert blocked.sleep_interval == storage_module.CLAIM_POLL_MIN_S
        storage.free_concurrency_slots_for_run("holder")
        claimed = storage.claim_concurrency_slot("pool", "waiter", "trades")
        assert claimed.is_claimed and claimed.sleep_interval is None
    enqueued = datetime(2026, 11, 29, 12, 0, 0)  # naive UTC, as the storage keeps it
    at = lambda seconds: datetime(2026, 11, 29, 12, 0, 0, tzinfo=timezone.utc) + timedelta(seconds=seconds)  # noqa: E731
    assert storage_module.claim_poll_interval(enqueued, at(0.5)) == 0.2
    assert storage_module.claim_poll_interval(enqueued, at(20)) == pytest.approx(2.0)
    assert storage_module.claim_poll_interval(enqueued, at(3600)) == 5.0
    assert storage_module.claim_poll_interval(None) == 0.2


def test_the_run_storage_serves_many_threads_at_once(home):
    """A webserver's concurrent requests: more threads than the kept connection, none waits for a
    pool slot (each opens its own connection beyond the kept one)."""
    from concurrent.futures import ThreadPoolExecutor

    with dg.DagsterInstance.get() as instance:
        run_id = dg.materialize([numbers], instance=instance).run_id
        storage = instance.run_storage
        held = []
        all_in = threading.Barrier(16, timeout=10)  # broken if any thread waits for a pool slot

        def hold_a_connection(_):
            with storage.connect() as conn:
                held.append(conn.exec_driver_sql("SELECT COUNT(*) FROM runs").scalar())
                all_in.wait()  # all 16 hold a connection at once
            return instance.get_run_by_id(run_id).status

        with ThreadPoolExecutor(16) as pool:
            statuses = list(pool.map(hold_a_connection, range(16)))
        assert statuses == [dg.DagsterRunStatus.SUCCESS] * 16 and held == [1] * 16
        assert storage._engine().pool.checkedin() == 1  # the others were closed again


def test_claims_racing_from_several_processes_get_one_slot(home):
    """Dagster's SQLite claim reads and writes in separate transactions: processes claiming at the
    same instant could all be given a pool's only slot (two simulations at once, seen in CI). Here
    six processes claim together, twice, the first time on a pool that has no limit yet
    (each process gives it the instance's default, 1, as an executor does); exactly one gets the
    slot each time."""
    import os
    import subprocess
    import sys

    with dg.DagsterInstance.get() as instance:  # the databases created once, as `mochi` does
        instance.event_log_storage.get_concurrency_info("pool")
        instance.get_runs(limit=1)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for round_ in range(2):
        at = time.time() + 4.0  # after every process has started and opened the storage
        procs = [subprocess.Popen([sys.executable, str(REPO / "tests/foundation/pool_claimer.py"), f"r{round_}-{i}",
                                   str(at)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for i in range(6)]
        outs = [p.communicate(timeout=120) for p in procs]
        results = [o[0].strip().splitlines()[-1] if o[0].strip() else o[1][-500:] for o in outs]
        assert sorted(results) == ["blocked"] * 5 + ["claimed"], results
        with dg.DagsterInstance.get() as instance:
            storage = instance.event_log_storage
            for i in range(6):
                storage.free_concurrency_slots_for_run(f"r{round_}-{i}")
            assert storage.get_concurrency_info("pool").active_slot_count == 0


def test_a_claim_waits_while_another_process_holds_the_pool_lock(home):
    """Claims are serialized across processes by a file lock in the event log folder: held
    elsewhere (here by another lock object, as another process would hold it), a claim waits."""
    from filelock import FileLock

    with dg.DagsterInstance.get() as instance:
        storage = instance.event_log_storage
        storage.set_concurrency_slots("pool", 1)
        other = FileLock(str(Path(storage._base_dir) / storage_module.POOL_LOCK))
        result = []
        with other:
            claimer = threading.Thread(target=lambda: result.append(
                storage.claim_concurrency_slot("pool", "run-1", "trades").is_claimed))
            claimer.start()
            claimer.join(0.5)
            assert claimer.is_alive() and not result  # waiting for the lock
        claimer.join(30)
        assert result == [True]
        storage.free_concurrency_slots_for_run("run-1")
        assert storage.get_concurrency_info("pool").active_slot_count == 0
