"""The lake: Mochi's tables and files in one Hive-style layout, on a local folder or an S3 API.

Keys are `{prefix}{bucket}/{table}/ticker={T}[/scenario={S}]/{file}`, the same on both backends:
on a folder the bucket is a sub-folder of `$MOCHI_HOME/lake`, on S3 (`MOCHI_S3_ENDPOINT`) it is a
bucket (one per stage, created when missing). A SQL engine reads a table folder as an external
table partitioned by ticker and scenario (tables are one `data.parquet` per partition, zstd; at
level 1 in the bars' stages, raw and prepared: FAST_STAGES).

Every key is checked: the bucket must be a stage bucket and every segment must come from a small
alphabet, so no ticker, scenario or file name can escape its folder, bucket or quoted SQL string.

Writes are all-or-nothing. One object is replaced atomically by the store (rename on a folder,
one PUT or completed multipart upload on S3). A partition's output (every file of every folder an
asset writes, `replace_folders`) is switched by a commit record, in four steps:

1. stage: each new file is written under `{bucket}/_mochi/staged/{commit}/...` (outside every
   table folder, so Hive and Trino never see it);
2. commit: one small object `{bucket}/_mochi/commits/{commit}.json` listing staged -> final keys
   and the old files to drop is written with one PUT. This is the commit point: a writer killed
   before it leaves the previous version untouched; one killed after it is rolled forward;
3. apply: every staged file is promoted to its final key (rename, or server-side copy on S3),
   old files of the folders that the new version lacks are deleted;
4. clean up: staged copies and the commit record are deleted.

Lake readers look for commit records of the bucket first (one listing): a key of a pending commit
is read from its staged copy, so they see the whole new version from the commit point on, the
whole old version before it, never a mix, even if the writer died half-way through step 3.
A later write to the same folders (or any write once the record is older than
`MOCHI_LAKE_ORPHAN_AGE_S`, or `Lake.recover()`) finishes such a commit; staged files and
unfinished uploads of writers killed before their commit point are deleted after that age too.

Trade-off with Hive/Trino, which read the final keys directly and cannot follow commit records:
every final object is replaced whole and each table partition is a single object, so a SQL query
sees one complete version of each partition. Across tables (`traders` and `trades` of one run) it
may see the old version of one and the new of the other during step 3, or after a writer died in
step 3 until the commit is rolled forward. Versioned folders with a pointer object would avoid
that for Mochi but are unreadable by Hive; copying to the final keys keeps the layout plain.

Reads see one whole version of an object, never byte ranges of two. `get_bytes` is one read of the
object. `scan_table` is lazy at the storage level: it only checks that the table exists (so a
missing one raises KeyMissing at once) and opens nothing until the frame or its schema is first
collected. Then it pins one version (`ObjectStore.open`: on a folder an open file, which a commit's
rename cannot change; on S3 the body of one GET) and every later collect of that frame reads the
same version. On a folder polars reads only the byte ranges the query needs (the footer, the
projected columns of the row groups its statistics keep); on S3 the whole object is fetched, once,
and only for the tables a step collects. A file that is damaged, or deleted by a later commit,
fails when collected, with a message naming it: a LakeError from the read, or polars'
ComputeError quoting that LakeError when polars asked for the schema first.

Large outputs are produced in a staging file first (`staging_path`): next to the lake on a
folder; in the system temporary folder for S3 (removed once uploaded or when the commit fails).
Scratch files of writers that died or were canceled before that are deleted by the next
`staging_path` call once they are older than `MOCHI_LAKE_ORPHAN_AGE_S` (an hour at least).
"""

from __future__ import annotations

import datetime as dt
import io
import json
import re
import tempfile
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

import polars as pl
from polars.io.plugins import register_io_source

from mochi_resources.errors import LakeError
from mochi_resources.settings import MochiSettings
from mochi_resources.stores import KeyMissing, LocalStore, ObjectStore

PARQUET_FILE = "data.parquet"
CONTROL = "_mochi"  # leading underscore: hidden from Hive, Trino and Spark
COMMITS = f"{CONTROL}/commits"
STAGED = f"{CONTROL}/staged"
SCRATCH_MIN_AGE_S = 3600  # scratch files are swept only when surely abandoned, whatever the orphan age

FileValue = Path | bytes | pl.DataFrame

# The alphabets of partition keys (same as mochi_assets.partitions, which sanitizes user input).
_TICKER_KEY = re.compile(r"^[A-Z0-9][A-Z0-9_.\-]{0,39}$")
_SCENARIO_KEY = re.compile(r"^[a-z0-9][a-z0-9\-]{0,47}$")
_TABLE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_FILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
_SEGMENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.=\-]{0,127}$")
_COMMIT_TIME = "%Y%m%dT%H%M%S%f"


def partition_path(ticker: str, scenario: str | None = None) -> str:
    """Hive-style partition folder for a ticker (and scenario); refuses unsafe keys."""
    if not _TICKER_KEY.match(ticker or "") or ".." in ticker:
        raise LakeError(f"ticker partition {ticker!r} is not a sanitized ticker key (e.g. C_XAUUSD)")
    if scenario is None:
        return f"ticker={ticker}"
    if not _SCENARIO_KEY.match(scenario):
        raise LakeError(f"scenario partition {scenario!r} is not a valid scenario name")
    return f"ticker={ticker}/scenario={scenario}"


def _new_commit_id() -> str:
    return f"{dt.datetime.now(dt.UTC).strftime(_COMMIT_TIME)}-{uuid.uuid4().hex[:12]}"


def _commit_time(commit_id: str) -> float:
    """When a commit started (epoch seconds); 0 for names Mochi did not make (always old)."""
    try:
        return dt.datetime.strptime(commit_id.split("-", 1)[0], _COMMIT_TIME).replace(tzinfo=dt.UTC).timestamp()
    except ValueError:
        return 0.0


def _folder_of(key: str) -> str:
    return key.rsplit("/", 1)[0]


# Stages whose tables are bars (millions of rows, written by every backtest of a new range):
# zstd at level 1 instead of polars' default level 3. On 10 years of minute bars (3.8 M rows) the
# write takes 0.77 s against 0.99 s (the enhanced bars 0.84 s against 1.19 s), for files 17%
# larger (README, "Bars"). Every other table keeps the default level (small, or written once).
FAST_STAGES = ("raw", "prepared")
FAST_ZSTD_LEVEL = 1


def _parquet_writer(df: pl.DataFrame, level: int | None = None) -> Callable[[BinaryIO], None]:
    """Writes `df` as zstd Parquet into a binary file (`ObjectStore.put_written`)."""
    return lambda fh: df.write_parquet(fh, compression="zstd", compression_level=level, statistics=True)


class Lake:
    """Tables and files of every pipeline stage, in one layout (see the module docstring)."""

    def __init__(self, settings: MochiSettings, store: ObjectStore | None = None):
        self.settings = settings
        self._buckets = set(settings.buckets)
        if store is not None:
            self.store = store
            self.backend = "s3" if settings.s3_endpoint else "local"
        elif settings.s3_endpoint:
            from mochi_resources.s3 import S3Store

            s3 = S3Store(
                settings.s3_endpoint,
                settings.buckets,
                region=settings.s3_region,
                max_attempts=settings.s3_max_attempts,
                connect_timeout_s=settings.s3_connect_timeout_s,
                read_timeout_s=settings.s3_read_timeout_s,
            )
            s3.check()  # fail fast on credentials and permissions, before anything is written
            self.store = s3
            self.backend = "s3"
        else:
            self.store = LocalStore(settings.lake_root)
            self.backend = "local"

    @property
    def root(self) -> Path | str:
        """The lake folder (a Path) on the local backend; on S3, `location` (a description).

        Code that globs files must use `list_files`; messages should use `location` and `uri`.
        """
        return self.settings.lake_root if self.backend == "local" else self.location

    @property
    def location(self) -> str:
        """Where the lake is, for people: its folder, or the S3 endpoint and bucket prefix."""
        return self.store.describe()

    # --- keys -------------------------------------------------------------------------------

    def key(self, bucket: str, table: str, ticker: str, scenario: str | None = None, file: str = PARQUET_FILE) -> str:
        """`{prefix}{bucket}/{table}/ticker=T[/scenario=S]/{file}`; unsafe names raise LakeError."""
        if not _FILE.match(file or "") or ".." in file:
            raise LakeError(f"lake file name {file!r} is not allowed (letters, digits, '_', '-', '.')")
        return f"{self.folder_key(bucket, table, ticker, scenario)}/{file}"

    def folder_key(self, bucket: str, table: str, ticker: str | None = None, scenario: str | None = None) -> str:
        """A table's folder, or one partition folder of it."""
        if not _TABLE.match(table or ""):
            raise LakeError(f"lake table name {table!r} is not allowed (lower-case letters, digits, '_')")
        if ticker is None and scenario is not None:
            raise LakeError("a scenario partition needs its ticker")
        base = f"{self.settings.bucket(bucket)}/{table}"
        return base if ticker is None else f"{base}/{partition_path(ticker, scenario)}"

    def _check_key(self, key: str) -> str:
        """Refuse keys outside the stage buckets or with segments that could escape a folder."""
        parts = key.split("/") if isinstance(key, str) else []
        if len(parts) < 2 or parts[0] not in self._buckets:
            raise LakeError(f"lake key {key!r} is not inside a Mochi bucket ({self.settings.bucket_prefix}<stage>)")
        for part in parts[1:]:
            if not _SEGMENT.match(part) or ".." in part:
                raise LakeError(f"lake key {key!r}: segment {part!r} is not allowed")
        return key

    def uri(self, key: str) -> str:
        """Where a key lives, for people (a path they can open, or an s3:// URI)."""
        return self.store.uri(key)

    # --- staging ----------------------------------------------------------------------------

    def staging_path(self, suffix: str = ".parquet") -> Path:
        """A scratch file name for an output committed later (`put_file`, `replace_folder`).

        On a folder it lies on the lake's filesystem (committing it is a rename); on S3 in the
        system temporary folder. A commit consumes the file; the caller removes it on failure.
        """
        if not re.match(r"^\.[a-z0-9]{1,10}$", suffix):
            raise LakeError(f"staging suffix {suffix!r} is not allowed")
        if self.backend == "local":
            staging = self.settings.lake_root / ".staging"
        else:
            staging = Path(tempfile.gettempdir()) / "mochi-staging"
        staging.mkdir(parents=True, exist_ok=True)
        self._sweep_scratch(staging)
        return staging / f"{uuid.uuid4().hex}{suffix}"

    def _sweep_scratch(self, staging: Path) -> None:
        """Delete scratch files untouched for `MOCHI_LAKE_ORPHAN_AGE_S` (an hour at least): those of
        writers that were killed or canceled before they could commit or remove them (a live writer
        keeps its file's modification time fresh; nothing reads a scratch file but its writer)."""
        cutoff = time.time() - max(self.settings.orphan_age_s, SCRATCH_MIN_AGE_S)
        for path in staging.iterdir():
            try:
                if path.is_file() and path.stat().st_mtime < cutoff:
                    path.unlink()
            except OSError:  # another process removed or committed it meanwhile
                continue

    # --- single-object writes ---------------------------------------------------------------

    def put_file(self, key: str, local: Path) -> None:
        """Move a finished local file into place atomically (the local file is consumed)."""
        self.store.put_file(self._check_key(key), Path(local))

    def put_bytes(self, key: str, data: bytes) -> None:
        """Store bytes under key, atomically."""
        self.store.put_bytes(self._check_key(key), data)

    def put_bytes_if_absent(self, key: str, data: bytes) -> bool:
        """Create key with data unless it exists, atomically (False: it exists, nothing written).

        For append-only records: two writers racing for one key cannot both succeed.
        """
        return self.store.put_if_absent(self._check_key(key), data)

    def _zstd_level(self, key: str) -> int | None:
        """The zstd level of a table stored under `key`: FAST_ZSTD_LEVEL in the bar stages, else
        None (polars' default)."""
        bucket = key.split("/", 1)[0]
        return FAST_ZSTD_LEVEL if bucket in {self.settings.bucket(stage) for stage in FAST_STAGES} else None

    def put_table(self, key: str, df: pl.DataFrame) -> None:
        """Store a table as one zstd Parquet object, atomically."""
        self.store.put_written(self._check_key(key), _parquet_writer(df, self._zstd_level(key)))

    def put_json(self, key: str, obj: Any) -> None:
        """Store a JSON document (sorted keys, so equal documents give equal objects)."""
        self.put_bytes(key, json.dumps(obj, indent=2, sort_keys=True, default=str).encode())

    def _put_value(self, key: str, value: FileValue) -> None:
        if isinstance(value, pl.DataFrame):
            self.store.put_written(key, _parquet_writer(value, self._zstd_level(key)))
        elif isinstance(value, bytes):
            self.store.put_bytes(key, value)
        elif isinstance(value, Path):
            self.store.put_file(key, value)
        else:
            raise LakeError(f"{self.uri(key)}: cannot store a {type(value).__name__} (DataFrame, bytes or Path)")

    # --- partition commits ------------------------------------------------------------------

    def replace_folder(self, folder_key: str, files: Mapping[str, FileValue]) -> None:
        """Replace a partition folder's files by `files`, all or nothing (see `replace_folders`)."""
        self.replace_folders({folder_key: files})

    def replace_folders(self, folders: Mapping[str, Mapping[str, FileValue]]) -> None:
        """Replace the files of several partition folders of one bucket as one all-or-nothing commit.

        Each folder ends up holding exactly the given files (others it had are deleted); a reader
        sees every folder's previous files or every folder's new files. Values: a polars
        DataFrame (stored as Parquet), bytes, or the Path of a finished local file (consumed).
        """
        if not folders:
            return
        buckets = {self._check_key(folder).split("/", 1)[0] for folder in folders}
        if len(buckets) != 1:
            raise LakeError(f"one commit covers one bucket; got folders in {sorted(buckets)}")
        bucket = buckets.pop()
        finals: dict[str, FileValue] = {}
        for folder, files in folders.items():
            for name, value in files.items():
                if not _FILE.match(name) or ".." in name:
                    raise LakeError(f"{self.uri(folder)}: file name {name!r} is not allowed")
                finals[f"{folder}/{name}"] = value
        local_files = [v for v in finals.values() if isinstance(v, Path)]
        try:
            self._recover(bucket, touching=set(folders))
            commit_id = _new_commit_id()
            staged: dict[str, str] = {}
            try:
                for final, value in finals.items():
                    staged_key = f"{bucket}/{STAGED}/{commit_id}/{final.split('/', 1)[1]}"
                    self._put_value(staged_key, value)
                    staged[final] = staged_key
                delete = sorted(k for folder in folders for k in self._folder_files(folder) if k not in finals)
                record = {"commit": commit_id, "files": staged, "delete": delete}
                record_key = f"{bucket}/{COMMITS}/{commit_id}.json"
                self.store.put_bytes(record_key, json.dumps(record, sort_keys=True).encode())
            except BaseException:
                self._discard(list(staged.values()))
                raise
        finally:
            for path in local_files:  # consumed on success; on failure nothing is left behind
                path.unlink(missing_ok=True)
        self._apply(record_key, record)
        self._clean_orphans(bucket, keep=commit_id)

    def _discard(self, keys: list[str]) -> None:
        """Best-effort removal of a failed commit's staged files (the orphan sweep catches the rest)."""
        try:
            self.store.delete(keys)
        except LakeError:
            pass

    def _folder_files(self, folder: str) -> list[str]:
        """The visible files directly inside a folder (not its sub-folders, not `_`/`.` names)."""
        prefix = f"{folder}/"
        out = []
        for obj in self.store.list(prefix):
            name = obj.key[len(prefix):]
            if "/" not in name and not name.startswith(("_", ".")):
                out.append(obj.key)
        return out

    def _pending(self, bucket: str) -> list[dict]:
        """Commit records of a bucket not yet fully applied, oldest first."""
        records = []
        for obj in self.store.list(f"{bucket}/{COMMITS}/"):
            if not obj.key.endswith(".json"):
                continue
            try:
                record = json.loads(self.store.get_bytes(obj.key))
            except KeyMissing:  # finished while we listed
                continue
            except json.JSONDecodeError:
                raise LakeError(f"{self.uri(obj.key)}: commit record is not valid JSON") from None
            record["_key"] = obj.key
            records.append(record)
        return records

    def _apply(self, record_key: str, record: dict) -> None:
        """Steps 3 and 4 of a commit: promote staged files, drop old ones, clean up. Idempotent."""
        for final, staged_key in record["files"].items():
            try:
                self.store.promote(staged_key, final)
            except KeyMissing:
                if not self.store.exists(record_key):
                    return  # another process finished this commit
                # already promoted by an earlier, interrupted apply (a rename consumed it)
        self.store.delete(list(record["delete"]))
        self.store.delete(list(record["files"].values()))
        self.store.delete([record_key])

    def _recover(self, bucket: str, touching: set[str] | None = None) -> int:
        """Finish committed-but-unapplied commits: those touching `touching` folders, and old ones."""
        cutoff = time.time() - self.settings.orphan_age_s
        done = 0
        for record in self._pending(bucket):
            folders = {_folder_of(k) for k in [*record["files"], *record["delete"]]}
            if touching is None or folders & touching or _commit_time(record["commit"]) < cutoff:
                self._apply(record["_key"], record)
                done += 1
        return done

    def _clean_orphans(self, bucket: str, keep: str) -> None:
        """Delete staged files of commits that never reached their commit point (killed writers)."""
        cutoff = time.time() - self.settings.orphan_age_s
        live = {r["commit"] for r in self._pending(bucket)} | {keep}
        prefix = f"{bucket}/{STAGED}/"
        stale = [
            obj.key for obj in self.store.list(prefix)
            if (cid := obj.key[len(prefix):].split("/", 1)[0]) not in live and _commit_time(cid) < cutoff
        ]
        self.store.delete(stale)
        self.store.clean_uploads(f"{bucket}/", cutoff)

    def recover(self) -> int:
        """Finish every pending commit in every stage bucket and sweep orphans; returns how many."""
        done = 0
        for bucket in self.settings.buckets:
            done += self._recover(bucket)
            self._clean_orphans(bucket, keep="")
        return done

    # --- reads ------------------------------------------------------------------------------

    def _committed(self, key: str) -> tuple[str | None, bool]:
        """(staged key holding the committed version or None, deleted by a pending commit)."""
        bucket = key.split("/", 1)[0]
        for record in reversed(self._pending(bucket)):
            if key in record["files"]:
                return record["files"][key], False
            if key in record["delete"]:
                return None, True
        return None, False

    def _missing(self, key: str) -> LakeError:
        return KeyMissing(f"{self.uri(key)} does not exist (has the asset been materialized?)")

    def exists(self, key: str) -> bool:
        """Whether the committed version of the lake has this key."""
        self._check_key(key)
        staged, deleted = self._committed(key)
        if deleted:
            return False
        return staged is not None or self.store.exists(key)

    def get_bytes(self, key: str) -> bytes:
        """The whole committed object (never part of one, never one of an unfinished commit)."""
        self._check_key(key)
        staged, deleted = self._committed(key)
        if deleted:
            raise self._missing(key)
        return self._read_committed(key, staged, self.store.get_bytes)

    def _read_committed(self, key: str, staged: str | None, read):
        """`read` of the committed version: the staged copy of a pending commit, else the final key."""
        if staged is not None:
            try:
                return read(staged)
            except KeyMissing:
                pass  # promoted meanwhile: the final key holds it (or a newer version)
        try:
            return read(key)
        except KeyMissing:
            raise self._missing(key) from None

    def get_json(self, key: str) -> Any:
        data = self.get_bytes(key)
        try:
            return json.loads(data)
        except json.JSONDecodeError as exc:
            raise LakeError(f"{self.uri(key)}: not valid JSON ({exc.msg}, line {exc.lineno})") from None

    def scan_table(self, key: str) -> pl.LazyFrame:
        """A lazy scan of one committed version of a Parquet table, read when collected.

        Only the table's existence is checked now (KeyMissing if absent); the file is opened when
        the frame or its schema is first collected, and that version serves every collect of the
        frame (see the module docstring).
        """
        return self.table_version(key).frame()

    def table_version(self, key: str) -> TableVersion:
        """The committed version of a Parquet table that `scan_table` reads (checked to exist now,
        opened on first use): its lazy frame, and its local path for readers that open files."""
        self._check_key(key)
        staged, deleted = self._committed(key)
        if deleted or (staged is None and not self.store.exists(key)):
            raise self._missing(key)
        return TableVersion(self, key, staged)

    def read_table(self, key: str) -> pl.DataFrame:
        """A whole committed Parquet table."""
        self._check_key(key)
        staged, deleted = self._committed(key)
        if deleted:
            raise self._missing(key)
        with self._read_committed(key, staged, self.store.open) as handle:
            try:
                return pl.read_parquet(handle)
            except Exception as exc:  # polars raises several classes for a damaged file
                raise _unreadable(self.uri(key), exc) from None

    def list_partitions(self, bucket: str, table: str) -> list[str]:
        """Ticker keys that have a folder in a table (for showing results)."""
        dirs = self.store.list_dirs(f"{self.folder_key(bucket, table)}/")
        return sorted(d.removeprefix("ticker=") for d in dirs if d.startswith("ticker="))

    def list_files(
        self, bucket: str, table: str | None, ticker: str, scenario: str | None = None, suffix: str = ""
    ) -> list[str]:
        """Keys of the committed files of a ticker's partitions (every scenario when scenario is None).

        `table=None` covers every table of the bucket; `suffix` filters names (e.g. ".png").
        Open a key with `get_bytes`, show it with `uri`.
        """
        bucket_name = self.settings.bucket(bucket)
        if table is None:
            tables = [t for t in self.store.list_dirs(f"{bucket_name}/") if _TABLE.match(t)]
        else:
            tables = [table]
        keys: set[str] = set()
        folders = [self.folder_key(bucket, t, ticker, scenario) for t in tables]
        for folder in folders:
            for obj in self.store.list(f"{folder}/"):
                rest = obj.key[len(folder) + 1:].split("/")
                if any(p.startswith(("_", ".")) for p in rest):
                    continue
                if len(rest) == 1 or (scenario is None and len(rest) == 2 and rest[0].startswith("scenario=")):
                    keys.add(obj.key)
        for record in self._pending(bucket_name):
            for key in record["files"]:
                if any(key.startswith(f"{f}/") for f in folders):
                    keys.add(key)
            keys.difference_update(record["delete"])
        return sorted(k for k in keys if k.endswith(suffix))


PINNED_FD_DIR = Path("/proc/self/fd")  # Linux: the open files of this process, by descriptor


def _unreadable(uri: str, exc: Exception) -> LakeError:
    return LakeError(f"{uri}: not a readable Parquet file ({exc})")


class TableVersion:
    """The source behind `Lake.scan_table`: one committed version of a table, opened on first use.

    Polars calls `schema` and `batches` when a frame using it is collected (never before); the
    first call opens the committed file (`ObjectStore.open`) and keeps the handle for the life of
    the frame (closed when the frame is dropped), so all collects of it read that version.
    """

    def __init__(self, lake: Lake, key: str, staged: str | None):
        self._lake = lake
        self.key = key
        self._staged = staged
        self._handle: BinaryIO | None = None
        self._lock = threading.Lock()

    def handle(self) -> BinaryIO:
        with self._lock:
            if self._handle is None:
                handle = self._lake._read_committed(self.key, self._staged, self._lake.store.open)
                weakref.finalize(self, handle.close)
                self._handle = handle
            return self._handle

    def _scan(self) -> pl.LazyFrame:
        return pl.scan_parquet(self.handle())

    def frame(self) -> pl.LazyFrame:
        """A lazy frame of this version (several frames of one version share its open handle)."""
        return register_io_source(self.batches, schema=self.schema, is_pure=True,
                                  explain_name="mochi lake", explain_detail=self._lake.uri(self.key))

    def local_path(self) -> str | None:
        """A path by which a reader in this process that opens files by name (DuckDB) reads this
        very version: `/proc/self/fd/N` of the open handle, under Linux. On a folder lake the handle
        is the file (a commit renames another file over the key's name; the handle keeps this one);
        on S3 it is the temporary file a large object's GET was written to (`S3Store.open`). None for
        a small S3 object (held in memory), or without /proc (the caller reads the frame instead).
        Opens the version if not yet open."""
        if not PINNED_FD_DIR.is_dir():
            return None
        try:
            fd = self.handle().fileno()
        except (AttributeError, OSError, io.UnsupportedOperation):
            return None
        return f"{PINNED_FD_DIR}/{fd}"

    def native_scan(self) -> pl.LazyFrame | None:
        """Polars' own Parquet scan of this version through `local_path` (None where there is
        none): unlike `frame`, whose source hands polars the projected columns whole, it streams
        row groups in parallel, so a grouping over 12 million trades holds a few row groups, not
        the table (2.3 GB -> 0.76 GB peak for the trades' fingerprints). The footer is read now:
        a damaged file fails here, naming the table's URI."""
        path = self.local_path()
        if path is None:
            return None
        try:
            pl.read_parquet_schema(path)
        except Exception as exc:  # polars raises several classes for a damaged file
            raise _unreadable(self._lake.uri(self.key), exc) from None
        return pl.scan_parquet(path)

    def schema(self) -> pl.Schema:
        try:
            return self._scan().collect_schema()  # the footer only
        except LakeError:
            raise
        except Exception as exc:
            raise _unreadable(self._lake.uri(self.key), exc) from None

    def batches(self, with_columns: list[str] | None, predicate: pl.Expr | None, n_rows: int | None,
                batch_size: int | None) -> Iterator[pl.DataFrame]:
        # polars pushes the query's projection, filter and limit here; its Parquet reader then
        # skips the other columns and the row groups whose statistics rule the filter out
        frame = self._scan()
        if predicate is not None:
            frame = frame.filter(predicate)
        if with_columns is not None:
            frame = frame.select(with_columns)
        if n_rows is not None:
            frame = frame.head(n_rows)
        try:
            table = frame.collect()
        except LakeError:
            raise
        except Exception as exc:
            raise _unreadable(self._lake.uri(self.key), exc) from None
        yield table
