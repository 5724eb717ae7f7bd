"""Where Mochi keeps things, resolved from the environment when a run starts (never at import).

| variable              | default            | meaning                                              |
|-----------------------|--------------------|------------------------------------------------------|
| MOCHI_HOME            | ./.mochi           | embedded lake (`lake/`) and, by default, Dagster home |
| DAGSTER_HOME          | $MOCHI_HOME/dagster| Dagster instance (runs, events, schedules)            |
| MOCHI_BUCKET_PREFIX   | mochi-             | prefix of every bucket name (local folders too)       |
| MOCHI_S3_ENDPOINT     | unset              | use an S3 API instead of the local lake (issue: lake on MinIO) |
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from mochi_resources.errors import MochiError

# One bucket per pipeline stage, as the original system had; names follow the stages.
BUCKETS = (
    "params",
    "raw",
    "prepared",
    "ticker-meta",
    "traders",
    "trades",
    "aggregates",
    "graphs",
    "extracts",
    "rankings",
)

_PREFIX = re.compile(r"^[a-z0-9][a-z0-9\-]{0,40}$|^$")


@dataclass(frozen=True)
class MochiSettings:
    home: Path
    bucket_prefix: str = "mochi-"
    s3_endpoint: str | None = None

    @classmethod
    def from_env(
        cls,
        home: str | None = None,
        bucket_prefix: str | None = None,
        s3_endpoint: str | None = None,
    ) -> MochiSettings:
        home_path = Path(home or os.environ.get("MOCHI_HOME") or ".mochi").expanduser().resolve()
        prefix = bucket_prefix if bucket_prefix is not None else os.environ.get("MOCHI_BUCKET_PREFIX", "mochi-")
        if not _PREFIX.match(prefix):
            raise MochiError(
                f"MOCHI_BUCKET_PREFIX: {prefix!r} is not a valid bucket prefix "
                "(lower-case letters, digits and '-')"
            )
        endpoint = s3_endpoint or os.environ.get("MOCHI_S3_ENDPOINT") or None
        return cls(home=home_path, bucket_prefix=prefix, s3_endpoint=endpoint)

    @property
    def lake_root(self) -> Path:
        return self.home / "lake"

    @property
    def dagster_home(self) -> Path:
        env = os.environ.get("DAGSTER_HOME")
        return Path(env).expanduser().resolve() if env else self.home / "dagster"

    def bucket(self, stage: str) -> str:
        if stage not in BUCKETS:
            raise MochiError(f"unknown lake bucket {stage!r}; known: {', '.join(BUCKETS)}")
        return f"{self.bucket_prefix}{stage}"
