"""Object stores under the lake: the few primitive operations the lake's commit protocol needs.

A key is `{bucket}/{path}`. Every store guarantees that one object is replaced atomically: a reader
sees the previous or the new object whole, never part of one (a rename on a local filesystem, one
PUT or one completed multipart upload on S3). The lake (`mochi_resources.lake`) builds
all-or-nothing partition commits on top of that. Two stores exist: `LocalStore` here (a folder)
and `S3Store` in `mochi_resources.s3`.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from mochi_resources.errors import LakeError


class KeyMissing(LakeError):
    """The object does not exist (callers often treat this as an answer, not a failure)."""


@dataclass(frozen=True)
class StoredObject:
    key: str
    modified: float  # seconds since the epoch


class ObjectStore(Protocol):
    """What the lake needs from a storage backend."""

    def uri(self, key: str) -> str:
        """Where a key lives, for people (a path or an s3:// URI)."""
        ...

    def describe(self) -> str:
        """The store as a whole, for messages (a folder, or an endpoint and its buckets)."""
        ...

    def put_file(self, key: str, local: Path) -> None:
        """Store a finished local file under key (atomically); the local file is consumed."""
        ...

    def put_bytes(self, key: str, data: bytes) -> None:
        """Store bytes under key, atomically."""
        ...

    def put_written(self, key: str, write: Callable[[BinaryIO], object]) -> None:
        """Store under key, atomically, what `write` writes into the binary file it is given (a
        Parquet writer: on a folder it goes straight to disk, without a copy of the whole object
        in memory)."""
        ...

    def put_if_absent(self, key: str, data: bytes) -> bool:
        """Create key with data only if no object has that key (atomically); False when one exists."""
        ...

    def get_bytes(self, key: str) -> bytes:
        """The whole object; KeyMissing when absent."""
        ...

    def open(self, key: str) -> BinaryIO:
        """A readable, seekable handle on one version of the object; KeyMissing when absent.

        What it reads never changes, even if the key is replaced meanwhile: an open local file
        (a replacement is a rename, the open file keeps the old one), or the body of one GET.
        """
        ...

    def exists(self, key: str) -> bool:
        ...

    def promote(self, src: str, dst: str) -> None:
        """Make dst hold src's content, atomically for dst; src may be gone afterwards (KeyMissing if absent)."""
        ...

    def delete(self, keys: list[str]) -> None:
        """Remove objects; absent ones are ignored."""
        ...

    def list(self, prefix: str) -> list[StoredObject]:
        """Every object whose key starts with prefix (a folder prefix ends with '/'), sorted by key."""
        ...

    def list_dirs(self, prefix: str) -> list[str]:
        """Names of the immediate sub-folders of a folder prefix (ending with '/'), sorted."""
        ...

    def clean_uploads(self, prefix: str, older_than: float) -> None:
        """Drop unfinished uploads under prefix started before `older_than` (epoch seconds)."""
        ...


def _is_hidden(name: str) -> bool:
    return name.startswith(".")


class LocalStore:
    """A folder as an object store: a key is a relative path; writes go through a rename."""

    def __init__(self, root: Path):
        self.root = root

    def _path(self, key: str) -> Path:
        return self.root / key

    def uri(self, key: str) -> str:
        return str(self._path(key))

    def describe(self) -> str:
        return str(self.root)

    def _error(self, what: str, key: str, exc: OSError) -> LakeError:
        return LakeError(f"cannot {what} {self.uri(key)}: {exc.strerror or exc}")

    def put_file(self, key: str, local: Path) -> None:
        dest = self._path(key)
        tmp = dest.parent / f".{dest.name}.{uuid.uuid4().hex}.tmp"
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.replace(local, tmp)
            except OSError:  # another filesystem: copy, then drop the original
                shutil.copyfile(local, tmp)
                Path(local).unlink(missing_ok=True)
            os.replace(tmp, dest)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise self._error("write", key, exc) from None

    @staticmethod
    def _staged(dest: Path, write: Callable[[BinaryIO], object]) -> Path:
        """What ``write`` writes, in a synced hidden file beside ``dest``, ready to be moved in (no
        file is left when writing fails)."""
        tmp = dest.parent / f".{dest.name}.{uuid.uuid4().hex}.tmp"
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            with open(tmp, "wb") as fh:
                write(fh)
                fh.flush()
                os.fsync(fh.fileno())
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return tmp

    def put_bytes(self, key: str, data: bytes) -> None:
        self.put_written(key, lambda fh: fh.write(data))

    def put_written(self, key: str, write: Callable[[BinaryIO], object]) -> None:
        dest = self._path(key)
        tmp = None
        try:
            tmp = self._staged(dest, write)
            os.replace(tmp, dest)
        except OSError as exc:
            if tmp is not None:
                tmp.unlink(missing_ok=True)
            raise self._error("write", key, exc) from None

    def put_if_absent(self, key: str, data: bytes) -> bool:
        # a hard link fails when the name exists, and the linked file is already complete: two
        # processes racing for one key cannot both win, and nobody sees a partial object
        dest = self._path(key)
        tmp = None
        try:
            tmp = self._staged(dest, lambda fh: fh.write(data))
            try:
                os.link(tmp, dest)
            except FileExistsError:
                return False
            return True
        except OSError as exc:
            raise self._error("write", key, exc) from None
        finally:
            if tmp is not None:
                tmp.unlink(missing_ok=True)

    def get_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise KeyMissing(f"{self.uri(key)} does not exist") from None
        except OSError as exc:
            raise self._error("read", key, exc) from None

    def open(self, key: str) -> BinaryIO:
        # a replacement renames another file over the name: this handle keeps reading the old one,
        # and readers given it (polars) read only the byte ranges they need
        try:
            return open(self._path(key), "rb")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise KeyMissing(f"{self.uri(key)} does not exist") from None
        except OSError as exc:
            raise self._error("read", key, exc) from None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def promote(self, src: str, dst: str) -> None:
        dest = self._path(dst)
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self._path(src), dest)
        except FileNotFoundError:
            raise KeyMissing(f"{self.uri(src)} does not exist") from None
        except OSError as exc:
            raise self._error("write", dst, exc) from None

    def delete(self, keys: list[str]) -> None:
        for key in keys:
            path = self._path(key)
            try:
                path.unlink(missing_ok=True)
            except OSError as exc:
                raise self._error("delete", key, exc) from None
            self._prune_empty(path.parent)

    def _prune_empty(self, folder: Path) -> None:
        """Remove folders left empty up to the bucket folder (staging areas would pile up otherwise)."""
        root = self.root.resolve()
        folder = folder.resolve()
        while folder != root and folder.parent != root:
            try:
                folder.rmdir()
            except OSError:
                return
            folder = folder.parent

    def list(self, prefix: str) -> list[StoredObject]:
        base, _, start = prefix.rpartition("/")
        folder = self._path(base)
        if not folder.is_dir():
            return []
        out = []
        for dirpath, dirnames, filenames in os.walk(folder):
            dirnames[:] = [d for d in dirnames if not _is_hidden(d)]
            for name in filenames:
                if _is_hidden(name):
                    continue
                path = Path(dirpath) / name
                key = path.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    try:
                        out.append(StoredObject(key, path.stat().st_mtime))
                    except FileNotFoundError:  # removed while listing
                        continue
        return sorted(out, key=lambda o: o.key)

    def list_dirs(self, prefix: str) -> list[str]:
        folder = self._path(prefix.rstrip("/"))
        if not folder.is_dir():
            return []
        return sorted(p.name for p in folder.iterdir() if p.is_dir() and not _is_hidden(p.name))

    def clean_uploads(self, prefix: str, older_than: float) -> None:
        """Temporary files of writers killed mid-write (`.name.<id>.tmp`) under the prefix's folder."""
        folder = self._path(prefix.rstrip("/"))
        if not folder.is_dir():
            return
        for dirpath, _, filenames in os.walk(folder):
            for name in filenames:
                if name.startswith(".") and name.endswith(".tmp"):
                    path = Path(dirpath) / name
                    try:
                        if path.stat().st_mtime < older_than:
                            path.unlink()
                    except FileNotFoundError:
                        continue
