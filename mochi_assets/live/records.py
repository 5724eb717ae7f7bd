"""Append-only versioned records in the lake's `live-trades` bucket (brokers, live configurations).

A record is a stream of versions, one JSON object each, never overwritten:

    {prefix}live-trades/{kind}/name={NAME}/v000001.json, v000002.json, ...

Every version holds the whole state after a change (`action` says which change, `recorded_at`
when), so the latest version is the record and the others are its history. A removal is a
version too (`status: removed`); nothing is ever deleted.

Concurrency: version N+1 is created with an atomic create-if-absent (a hard link on the local
lake, a conditional PUT `If-None-Match: *` on S3). Two processes editing one record both read
version N; one creates N+1, the other is refused, re-reads (now N+1), re-applies its change to
that state and creates N+2. No change is lost and none is applied to a stale state. Each version
carries a random `write_id`, so a writer whose PUT succeeded but whose answer was lost (and whose
retry was then refused) recognises its own version instead of writing it twice.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from collections.abc import Callable
from typing import Any

from mochi_resources.errors import MochiError
from mochi_resources.lake import Lake

BUCKET = "live-trades"
_VERSION = re.compile(r"^v(\d{6,})\.json$")
MAX_ATTEMPTS = 200  # racing writers retry; each refusal means another writer made progress


class RecordConflict(MochiError):
    """A record changed too often while this process tried to append to it."""


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")


class RecordStore:
    """Versioned records of one kind (`brokers`, `configurations`) in the live-trades bucket."""

    def __init__(self, lake: Lake, kind: str):
        self.lake = lake
        self.kind = kind
        self.folder = lake.folder_key(BUCKET, kind)

    def _key(self, name: str, version: int) -> str:
        return f"{self.folder}/name={name}/v{version:06d}.json"

    def _versions(self, name: str) -> list[int]:
        prefix = f"{self.folder}/name={name}/"
        out = []
        for obj in self.lake.store.list(prefix):
            m = _VERSION.match(obj.key[len(prefix):])
            if m:
                out.append(int(m.group(1)))
        return sorted(out)

    def names(self) -> list[str]:
        """Every record name ever created (removed ones included)."""
        dirs = self.lake.store.list_dirs(f"{self.folder}/")
        return sorted(d.removeprefix("name=") for d in dirs if d.startswith("name="))

    def latest(self, name: str) -> dict | None:
        """The newest version of a record, or None when it never existed."""
        versions = self._versions(name)
        return self.lake.get_json(self._key(name, versions[-1])) if versions else None

    def history(self, name: str) -> list[dict]:
        """Every version of a record, oldest first."""
        return [self.lake.get_json(self._key(name, v)) for v in self._versions(name)]

    def all_latest(self) -> list[dict]:
        """The newest version of every record (removed ones included; filter on `status`)."""
        out = []
        for name in self.names():
            doc = self.latest(name)
            if doc is not None:
                out.append(doc)
        return out

    def append(self, name: str, change: Callable[[dict | None], dict], action: str) -> dict:
        """Append the version `change(latest)` returns; `change` may raise to refuse the change.

        `change` gets the current state (None for a new record) and returns the new state without
        the bookkeeping fields, which are added here. It may run several times when other writers
        get in first, each time on the then-current state.
        """
        for _ in range(MAX_ATTEMPTS):
            current = self.latest(name)
            version = 1 if current is None else int(current["version"]) + 1
            state = change(current)
            doc = {
                **state,
                "name": name,
                "version": version,
                "action": action,
                "recorded_at": _now(),
                "write_id": uuid.uuid4().hex,
            }
            data = json.dumps(doc, indent=2, sort_keys=True).encode()
            key = self._key(name, version)
            if self.lake.put_bytes_if_absent(key, data):
                return doc
            try:
                existing = self.lake.get_json(key)
            except MochiError:
                continue
            if existing.get("write_id") == doc["write_id"]:  # ours: the answer to our PUT was lost
                return doc
        raise RecordConflict(
            f"{self.kind} {name}: gave up after {MAX_ATTEMPTS} attempts, other writers kept changing it"
        )


def strip_bookkeeping(doc: dict[str, Any]) -> dict[str, Any]:
    """A version's state without the fields `append` adds."""
    return {k: v for k, v in doc.items() if k not in ("name", "version", "action", "recorded_at", "write_id")}
