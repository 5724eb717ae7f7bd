"""The embedded instance's event log and run storage: Dagster's SQLite storages, minus their per-call set-up.

Dagster's `SqliteEventLogStorage` builds a new SQLAlchemy engine for every connection and asks
SQLite whether a table exists before every dynamic-partition lookup (a new engine again). A step of
a multi-partitioned asset looks its partition keys up many times (each input and output checks
that both dimension keys exist), so on the README backtest those set-ups were about a fifth of the
whole command. This subclass keeps one engine per database file and remembers that a
table exists once SQLite said so (tables are never dropped), creates a database under a file lock
(two processes creating the same run's database could stamp its schema twice), claims and frees
pool slots under another (two processes claiming at once could both get a pool's one slot), and trusts for ten seconds that a
dynamic partition it saw exists (deleted in another process meanwhile, a key would still pass
Dagster's existence check for those seconds; deleted through this storage, it is forgotten). Reads, writes, transactions, the
files and their layout are Dagster's, unchanged: a home written by either class reads with the
other. `dagster.yaml` selects it; the cluster's Postgres storage is not concerned.

Commits: the databases are in WAL mode (Dagster's choice) and every connection sets
synchronous=NORMAL, so a commit no longer waits for a disk sync (SQLite's recommended setting for
WAL: a crash of the process loses nothing committed, a crash of the machine may lose the last
commits but leaves the file consistent). Every database keeps its connection open in a pool, so
a write is a commit to the WAL, not an open, a commit, a checkpoint of the .db file and a close
(Dagster's NullPool): 2.1 ms per event before, 0.47 ms now (benchmarks/bench_event_log.py; the
README backtest stores about 740 events).
Dagster's UI streams a run's events by watching the run's .db file for changes, which a commit to
the WAL does not make: after each event stored, the file's modification time is touched, which
wakes those watchers (they read the new events, WAL included, as any SQLite reader does). The
event that ends a run (success, failure, cancel) checkpoints the run's WAL into its .db file and
closes this process's connection to it.

New runs: a run's database is created as a copy of an empty one that Dagster's own code created
(once per Dagster version, hidden in the event log folder), a few ms instead of 150-300 ms of
table creation and schema stamping per run.

Runs: `MochiSqliteRunStorage` is Dagster's SQLite run storage (runs.db) with one engine and its
connection kept, as above (Dagster's opens, checkpoints and closes runs.db for every call).

Pool waits: a step blocked on a pool slot (the simulation's, one at a time across runs) asks again
after the `sleep_interval` its claim status carries, which Dagster's own storages leave unset (its
executors then wait 1 s, 1.1 s, 1.21 s, ... up to 15 s). Here a blocked claim asks again after a
tenth of the time it has waited so far, between CLAIM_POLL_MIN_S and CLAIM_POLL_MAX_S: a short
simulation's successor starts within 0.2 s of the slot being freed (it waited about a second
before, in every parallel backtest), a long wait still polls only every few seconds.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone

from dagster import DagsterEventType, EventLogEntry, Field, StringSource
from dagster.version import __version__ as dagster_version
from filelock import FileLock
from dagster._core.storage.event_log.sqlite.sqlite_event_log import INDEX_SHARD_NAME, SqliteEventLogStorage
from dagster._core.storage.runs.sqlite.sqlite_run_storage import SqliteRunStorage
from dagster._core.storage.sql import create_engine
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from dagster._utils.concurrency import ConcurrencyClaimStatus
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool, QueuePool

RUN_END_EVENTS = frozenset(
    {DagsterEventType.RUN_SUCCESS, DagsterEventType.RUN_FAILURE, DagsterEventType.RUN_CANCELED}
)
PARTITION_TTL_S = 10.0  # how long a dynamic partition seen to exist is trusted without asking again
ENGINES_KEPT = 64  # run shards a long-lived webserver keeps engines for (least recently used dropped)
RUN_TEMPLATE = ".mochi-run-template-{version}.sqlite"  # in the event log folder: an empty run database
INITDB_LOCK = ".mochi-initdb.lock"  # in the event log folder: held while a database is created
INITDB_LOCK_TIMEOUT_S = 120
POOL_LOCK = ".mochi-pool.lock"  # in the event log folder: held while a pool slot is claimed or freed
POOL_LOCK_TIMEOUT_S = 120
CLAIM_POLL_MIN_S = 0.2  # a blocked pool claim asks again after a tenth of its wait so far, within these
CLAIM_POLL_MAX_S = 5.0


def _under_dagster_home(*parts: str, what: str) -> str:
    """$DAGSTER_HOME/<parts>/, where Dagster's default SQLite storages keep their files."""
    home = os.environ.get("DAGSTER_HOME")
    if not home:
        raise RuntimeError(f"DAGSTER_HOME is not set: the {what} needs a base_dir")
    return os.path.join(os.path.abspath(home), *parts, "")


def default_base_dir() -> str:
    """Where Dagster's default SQLite storage keeps event logs: $DAGSTER_HOME/storage/history/runs."""
    return _under_dagster_home("storage", "history", "runs", what="event log storage")


def default_run_base_dir() -> str:
    """Where Dagster's default SQLite run storage keeps runs.db: $DAGSTER_HOME/history."""
    return _under_dagster_home("history", what="run storage")


def _synchronous_normal(dbapi_connection, _record) -> None:
    # The databases are in WAL mode (Dagster sets it when it creates them). SQLite's default,
    # synchronous=FULL, syncs the WAL to disk at every commit; NORMAL syncs it only at checkpoints.
    # A commit then survives a crash of the process, and the database stays consistent through a
    # crash of the machine (only the last commits may be lost): SQLite's recommended WAL setting.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _pooled_engine(url: str, pool_size: int, max_overflow: int) -> Engine:
    """An engine keeping `pool_size` connections open (synchronous=NORMAL, see above); up to
    `max_overflow` more (-1: any number) are opened and closed as needed. A pooled connection is
    used by one thread at a time, not always the one that opened it."""
    engine = create_engine(
        url,
        poolclass=QueuePool,
        pool_size=pool_size,
        max_overflow=max_overflow,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
    )
    event.listen(engine, "connect", _synchronous_normal)
    return engine


def claim_poll_interval(enqueued: datetime | None, now: datetime | None = None) -> float:
    """Seconds until a blocked pool claim asks again: a tenth of the time waited since `enqueued`
    (the storage's naive UTC timestamp), within CLAIM_POLL_MIN_S and CLAIM_POLL_MAX_S."""
    if enqueued is None:
        return CLAIM_POLL_MIN_S
    if enqueued.tzinfo is None:
        enqueued = enqueued.replace(tzinfo=timezone.utc)
    waited = ((now or datetime.now(timezone.utc)) - enqueued).total_seconds()
    return min(CLAIM_POLL_MAX_S, max(CLAIM_POLL_MIN_S, waited / 10))


class MochiSqliteEventLogStorage(SqliteEventLogStorage):
    """`SqliteEventLogStorage` with one engine per database file and cached table checks."""

    def __init__(self, base_dir: str | None = None, inst_data=None):
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        self._engines_lock = threading.Lock()
        self._tables_seen: set[str] = set()
        self._partitions_seen: dict[tuple[str, str], float] = {}
        super().__init__(base_dir or default_base_dir(), inst_data=inst_data)
        # Serializes the pools' bookkeeping (claims, frees, limits) across processes and threads. Dagster's
        # SQL claim reads (is a slot unassigned? which slot is free?) and writes (assign this step, take
        # that slot) in separate statements, which pysqlite does not put in one transaction: two
        # processes claiming at the same moment could both be given a pool's only slot (two simulations
        # at once, seen in a CI run of tests/automation/test_pool.py). A claim holds it for a few ms.
        # One lock object: re-entrant in a thread, exclusive between threads and processes.
        self._pool_lock = FileLock(os.path.join(self._base_dir, POOL_LOCK), timeout=POOL_LOCK_TIMEOUT_S)

    @classmethod
    def config_type(cls):
        return {"base_dir": Field(StringSource, is_required=False)}

    @classmethod
    def from_config_value(cls, inst_data, config_value) -> MochiSqliteEventLogStorage:
        return cls(inst_data=inst_data, **config_value)

    def _engine(self, shard: str) -> Engine:
        with self._engines_lock:
            engine = self._engines.get(shard)
            if engine is not None:
                self._engines.move_to_end(shard)
                return engine
            pool_size = 2 if shard == INDEX_SHARD_NAME else 1
            engine = _pooled_engine(self.conn_string_for_shard(shard), pool_size=pool_size, max_overflow=8)
            self._engines[shard] = engine
            while len(self._engines) > ENGINES_KEPT:
                _, dropped = self._engines.popitem(last=False)
                dropped.dispose()
            return engine

    def _initdb(self, engine: Engine, for_index_shard: bool = False) -> None:
        # Two processes opening a new run's database at once (`mochi backtest` reading the
        # progress of a run its worker process is starting) could both stamp its schema version,
        # leaving it with two alembic heads for good: creation is serialized across processes.
        with FileLock(os.path.join(self._base_dir, INITDB_LOCK), timeout=INITDB_LOCK_TIMEOUT_S):
            path = engine.url.database
            if not for_index_shard and path and os.path.basename(path) != f"{INDEX_SHARD_NAME}.db" \
                    and not os.path.exists(path):
                self._copy_run_template(path)  # at Dagster's head revision: nothing left to check
                return
            super()._initdb(engine, for_index_shard=for_index_shard)

    def _copy_run_template(self, path: str) -> None:
        """Create a new run's database as a copy of an empty one Dagster created (under the initdb
        lock): creating the tables and stamping the schema version took 150-300 ms per run, the
        copy a few ms. The template is made by Dagster's own `_initdb` once per Dagster version, under
        a hidden name that Dagster's globs over `*.db` (wipe, reindex) do not see."""
        template = os.path.join(self._base_dir, RUN_TEMPLATE.format(version=dagster_version))
        if not os.path.exists(template):
            fresh = f"{template}.{os.getpid()}.tmp"
            engine = create_engine(f"sqlite:///{fresh}", poolclass=NullPool,
                                   connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS})
            try:
                super()._initdb(engine)
            finally:
                engine.dispose()  # closes the last connection: the WAL is checkpointed into the file
            os.replace(fresh, template)
        copy = f"{path}.{os.getpid()}.tmp"
        shutil.copyfile(template, copy)
        os.replace(copy, path)

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        # as the parent's, with the engine kept instead of built and disposed each time
        with self._db_lock:
            engine = self._engine(shard)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn:
                with conn.begin():
                    yield conn

    def store_event(self, event: EventLogEntry) -> None:
        super().store_event(event)
        if not event.run_id:
            return
        # the commit went to the WAL: touch the run's .db file for the watchers of its events
        with contextlib.suppress(FileNotFoundError):
            os.utime(self.path_for_shard(event.run_id))
        if event.is_dagster_event and event.dagster_event_type in RUN_END_EVENTS:
            self._release_run(event.run_id)

    def _release_run(self, run_id: str) -> None:
        """A finished run's WAL checkpointed into its .db file; this process's connection closed."""
        with self._engines_lock:
            engine = self._engines.pop(run_id, None)
        if engine is None:
            return
        try:
            with engine.connect() as conn:
                # PASSIVE: copies what no reader holds back, waits for nobody
                conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            engine.dispose()

    def claim_concurrency_slot(self, concurrency_key: str, run_id: str, step_key: str,
                               priority: int | None = None) -> ConcurrencyClaimStatus:
        with self._pool_lock:
            status = super().claim_concurrency_slot(concurrency_key, run_id, step_key, priority)
        if status.is_claimed:
            return status
        return status.with_sleep_interval(claim_poll_interval(status.enqueued_timestamp))

    def initialize_concurrency_limit_to_default(self, concurrency_key: str) -> bool:
        with self._pool_lock:
            return super().initialize_concurrency_limit_to_default(concurrency_key)

    def set_concurrency_slots(self, concurrency_key: str, num: int) -> None:
        with self._pool_lock:
            super().set_concurrency_slots(concurrency_key, num)

    def free_concurrency_slots_for_run(self, run_id: str) -> None:
        with self._pool_lock:
            super().free_concurrency_slots_for_run(run_id)

    def free_concurrency_slot_for_step(self, run_id: str, step_key: str) -> None:
        with self._pool_lock:
            super().free_concurrency_slot_for_step(run_id, step_key)

    def has_table(self, table_name: str) -> bool:
        if table_name in self._tables_seen:
            return True
        found = super().has_table(table_name)
        if found:
            self._tables_seen.add(table_name)
        return found

    def has_dynamic_partition(self, partitions_def_name: str, partition_key: str) -> bool:
        # a step checks its own partition keys for every input and output: a key seen to exist
        # is trusted for PARTITION_TTL_S (a delete through this storage forgets it at once)
        key = (partitions_def_name, partition_key)
        seen = self._partitions_seen.get(key)
        if seen is not None and time.monotonic() - seen < PARTITION_TTL_S:
            return True
        found = super().has_dynamic_partition(partitions_def_name, partition_key)
        if found:
            self._partitions_seen[key] = time.monotonic()
        else:
            self._partitions_seen.pop(key, None)
        return found

    def delete_dynamic_partition(self, partitions_def_name: str, partition_key: str) -> None:
        self._partitions_seen.pop((partitions_def_name, partition_key), None)
        super().delete_dynamic_partition(partitions_def_name, partition_key)

    def upgrade(self) -> None:
        super().upgrade()
        self._tables_seen.clear()

    def wipe(self) -> None:
        with self._engines_lock:  # the run shards' files are deleted: forget their engines
            for engine in self._engines.values():
                engine.dispose()
            self._engines.clear()
        super().wipe()

    def dispose(self) -> None:
        super().dispose()
        with self._engines_lock:
            for engine in self._engines.values():
                engine.dispose()
            self._engines.clear()


class MochiSqliteRunStorage(SqliteRunStorage):
    """Dagster's SQLite run storage (runs.db, by default under $DAGSTER_HOME/history as Dagster's
    own) with one engine and a pooled connection kept, like the event log's databases: Dagster's
    class builds an engine and opens, checkpoints and closes the database for every call (5.3 ms
    against 1.3 ms per run lookup here; the README backtest makes about 200 such calls, most of
    them the `mochi` process watching its runs). WAL with synchronous=NORMAL, as the event log.
    Tables, migrations and the file are Dagster's, unchanged."""

    def __init__(self, conn_string: str, inst_data=None):
        super().__init__(conn_string, inst_data)
        self._kept_engine: Engine | None = None
        self._kept_lock = threading.Lock()

    @classmethod
    def config_type(cls):
        return {"base_dir": Field(StringSource, is_required=False)}

    @classmethod
    def from_config_value(cls, inst_data, config_value) -> MochiSqliteRunStorage:
        # Dagster's from_config_value names its own class; from_local builds `cls`
        return cls.from_local(config_value.get("base_dir") or default_run_base_dir(), inst_data=inst_data)

    def _engine(self) -> Engine:
        with self._kept_lock:
            if self._kept_engine is None:
                # one connection kept; the webserver's concurrent requests open (and close) more,
                # as many as they need, instead of queueing for a pool's few
                self._kept_engine = _pooled_engine(self._conn_string, pool_size=1, max_overflow=-1)
            return self._kept_engine

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        with self._engine().connect() as conn:
            with conn.begin():
                yield conn

    def dispose(self) -> None:
        super().dispose()
        with self._kept_lock:
            if self._kept_engine is not None:
                self._kept_engine.dispose()
                self._kept_engine = None
