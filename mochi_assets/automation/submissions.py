"""The params location that `mochi submit` writes and the request sensor watches.

Layout (in the `params` bucket of the lake in use, local folder or S3):

- `submissions/<name>.yaml|.yml|.json`: request documents waiting for (or seen by) the sensor;
  `mochi submit` writes `submissions/<request_id>.json`, people may drop files in by hand;
- `rejected/<name>` and `rejected/<name>.error.txt`: a malformed document set aside by the sensor,
  with the validation error beside it;
- `requests/ticker=T/request.json` (store.py): the ticker's current request, read by the assets.

Listing, reading and moving hand-dropped files goes through the lake's object store (`lake.store`:
list, get_bytes, put_bytes, delete) because hand-chosen names need not satisfy the lake's strict key
alphabet; every key written here is still one the lake accepts.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass

from mochi_assets.request import BacktestRequest, parse_request_text
from mochi_resources.errors import LakeError, RequestError
from mochi_resources.lake import Lake

SUBMISSIONS = "submissions"
REJECTED = "rejected"
REQUEST_SUFFIXES = (".yaml", ".yml", ".json")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]")


@dataclass(frozen=True)
class Submission:
    """One document in the submissions folder: its key, name and a hash of its bytes."""

    key: str
    name: str
    etag: str
    modified: float


def submissions_prefix(lake: Lake) -> str:
    return f"{lake.settings.bucket('params')}/{SUBMISSIONS}/"


def submission_key(lake: Lake, request: BacktestRequest) -> str:
    return f"{submissions_prefix(lake)}{request.request_id}.json"


def submit_request(lake: Lake, request: BacktestRequest) -> str:
    """Write a validated request where the sensor looks for it; returns its key."""
    key = submission_key(lake, request)
    lake.put_bytes(key, request.canonical_json().encode())
    return key


def list_submissions(lake: Lake) -> list[Submission]:
    """Documents directly inside the submissions folder (hidden and `_` names skipped), by key."""
    prefix = submissions_prefix(lake)
    out = []
    for obj in lake.store.list(prefix):
        name = obj.key[len(prefix):]
        if "/" in name or name.startswith((".", "_")):
            continue
        etag = hashlib.sha256(lake.store.get_bytes(obj.key)).hexdigest()[:16]
        out.append(Submission(key=obj.key, name=name, etag=etag, modified=obj.modified))
    return out


def parse_submission(lake: Lake, submission: Submission) -> BacktestRequest:
    """Validate a submitted document; RequestError names the file and every bad field."""
    source = lake.uri(submission.key)
    if not submission.name.lower().endswith(REQUEST_SUFFIXES):
        raise RequestError(f"{source}: not a request document (expected a .yaml, .yml or .json file)")
    try:
        text = lake.store.get_bytes(submission.key).decode("utf-8")
    except UnicodeDecodeError:
        raise RequestError(f"{source}: not a UTF-8 text file") from None
    return parse_request_text(text, source)


def reject_submission(lake: Lake, submission: Submission, error: str) -> str:
    """Move a malformed document to `rejected/` with `<name>.error.txt` beside it; returns the new key."""
    safe = _UNSAFE.sub("_", submission.name).lstrip("._")[:100] or "unnamed"
    target = f"{lake.settings.bucket('params')}/{REJECTED}/{safe}"
    stamp = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    note = f"{stamp}: {submission.name} was rejected by backtest_request_sensor\n\n{error}\n"
    try:
        data = lake.store.get_bytes(submission.key)
    except LakeError:
        data = b""  # removed by hand meanwhile: the error note still tells what happened
    lake.put_bytes(target, data)
    lake.put_bytes(f"{target}.error.txt", note.encode())
    lake.store.delete([submission.key])
    return target
