"""Where Mochi keeps things, resolved from the environment when a run starts (never at import).

| variable              | default            | meaning                                              |
|-----------------------|--------------------|------------------------------------------------------|
| MOCHI_HOME            | ./.mochi           | embedded lake (`lake/`) and, by default, Dagster home |
| DAGSTER_HOME          | $MOCHI_HOME/dagster| Dagster instance (runs, events, schedules)            |
| MOCHI_BUCKET_PREFIX   | mochi-             | prefix of every bucket name (local folders too)       |
| MOCHI_S3_ENDPOINT     | unset              | use an S3 API (MinIO) instead of the local lake: one bucket per stage |
| AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY | unset | credentials for the S3 API (boto3's usual chain) |
| AWS_REGION / AWS_DEFAULT_REGION | us-east-1 | region used to sign S3 requests                  |
| MOCHI_S3_MAX_ATTEMPTS | 8                  | attempts per S3 request (throttling and 5xx answers are retried with backoff) |
| MOCHI_LAKE_ORPHAN_AGE_S | 3600             | age after which staged files of a crashed writer are deleted |
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
    "live-trades",  # brokers and live-trade configurations (append-only versions), the exports for bots
    "portfolio-tracking",  # forward results of promoted traders
    "filings",  # SEC EDGAR filings of equity tickers
)


def _positive(name: str, default: float, kind: type, allow_zero: bool = False):
    """A non-negative number from the environment, or the default when unset."""
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise MochiError(f"{name}: {raw!r} is not a number") from None
    if value < 0 or (value == 0 and not allow_zero):
        raise MochiError(f"{name}: {raw!r} must be {'at least 0' if allow_zero else 'positive'}")
    return value


_PREFIX = re.compile(r"^[a-z0-9][a-z0-9\-]{0,40}$|^$")


@dataclass(frozen=True)
class MochiSettings:
    home: Path
    bucket_prefix: str = "mochi-"
    s3_endpoint: str | None = None
    s3_region: str = "us-east-1"
    s3_max_attempts: int = 8
    orphan_age_s: float = 3600.0

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
        if endpoint is not None and not re.match(r"^https?://[^\s/]+", endpoint):
            raise MochiError(f"MOCHI_S3_ENDPOINT: {endpoint!r} is not an http(s):// URL (e.g. http://minio:9000)")
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        return cls(
            home=home_path,
            bucket_prefix=prefix,
            s3_endpoint=endpoint,
            s3_region=region,
            s3_max_attempts=_positive("MOCHI_S3_MAX_ATTEMPTS", 8, int),
            orphan_age_s=_positive("MOCHI_LAKE_ORPHAN_AGE_S", 3600.0, float, allow_zero=True),
        )

    @property
    def buckets(self) -> list[str]:
        """Every stage bucket's name, with the prefix."""
        return [self.bucket(stage) for stage in BUCKETS]

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
