"""Where Mochi keeps things, resolved from the environment when a run starts (never at import).

| variable              | default            | meaning                                              |
|-----------------------|--------------------|------------------------------------------------------|
| MOCHI_HOME            | ./.mochi           | embedded lake (`lake/`) and, by default, Dagster home |
| DAGSTER_HOME          | $MOCHI_HOME/dagster| Dagster instance (runs, events, schedules)            |
| MOCHI_BUCKET_PREFIX   | mochi-             | prefix of every bucket name (local folders too)       |
| MOCHI_S3_ENDPOINT     | unset              | use an S3 API (MinIO) instead of the local lake: one bucket per stage |
| AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY | unset | credentials for the S3 API (boto3's usual chain) |
| AWS_REGION / AWS_DEFAULT_REGION | us-east-1 | region used to sign S3 requests                  |
| MOCHI_S3_MAX_ATTEMPTS | 4                  | attempts per S3 request (throttling, 5xx answers and timeouts are retried with backoff) |
| MOCHI_S3_CONNECT_TIMEOUT_S | 5             | seconds to open a connection to the S3 API           |
| MOCHI_S3_READ_TIMEOUT_S | 20               | seconds to wait for the S3 API's next bytes (an answer or the next chunk of one) |
| MOCHI_LAKE_ORPHAN_AGE_S | 3600             | age after which staged files of a crashed writer are deleted |

Limits (`Limits.from_env`, read when a request or an import is validated): a request or a file
over one is refused before any work, naming the limit and the variable that raises it.

| variable                        | default     | limit                                                  |
|---------------------------------|-------------|--------------------------------------------------------|
| MOCHI_MAX_TRADERS_PER_SCENARIO  | 100000      | traders of one scenario family (the product of its axes) |
| MOCHI_MAX_TRADERS_PER_REQUEST   | 400000      | traders of all a request's scenario families together  |
| MOCHI_MAX_YEARS                 | 25          | years from start to end of a request                   |
| MOCHI_MAX_TRADER_YEARS          | 50000       | traders of one scenario family x years of the request: bounds its trades (at most one per trader and session, about 260 sessions a year: 13 M trades), which the aggregation holds in memory |
| MOCHI_MAX_REQUEST_BYTES         | 1048576     | size of a request document (checked before parsing)    |
| MOCHI_MAX_REQUEST_DEPTH         | 16          | nesting depth of a request document (lists and mappings) |
| MOCHI_MAX_REQUEST_NODES         | 100000      | values in a request document, aliases counted expanded |
| MOCHI_MAX_IMPORT_BYTES          | 1073741824  | bytes of an imported bar file once decompressed (1 GiB) |
| MOCHI_MAX_IMPORT_ROWS           | 20000000    | rows of an imported bar file (about 50 years of 24x5 minute bars) |
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
    s3_max_attempts: int = 4
    s3_connect_timeout_s: float = 5.0
    s3_read_timeout_s: float = 20.0
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
            s3_max_attempts=_positive("MOCHI_S3_MAX_ATTEMPTS", 4, int),
            s3_connect_timeout_s=_positive("MOCHI_S3_CONNECT_TIMEOUT_S", 5.0, float),
            s3_read_timeout_s=_positive("MOCHI_S3_READ_TIMEOUT_S", 20.0, float),
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


@dataclass(frozen=True)
class Limits:
    """What Mochi accepts before doing any work (see the module docstring's Limits table)."""

    traders_per_scenario: int = 100_000
    traders_per_request: int = 400_000
    years: float = 25.0
    trader_years: float = 50_000.0
    request_bytes: int = 1024 * 1024
    request_depth: int = 16
    request_nodes: int = 100_000
    import_bytes: int = 1024**3
    import_rows: int = 20_000_000

    @classmethod
    def from_env(cls) -> Limits:
        d = cls()
        return cls(
            traders_per_scenario=_positive(LIMIT_VARS["traders_per_scenario"], d.traders_per_scenario, int),
            traders_per_request=_positive(LIMIT_VARS["traders_per_request"], d.traders_per_request, int),
            years=_positive(LIMIT_VARS["years"], d.years, float),
            trader_years=_positive(LIMIT_VARS["trader_years"], d.trader_years, float),
            request_bytes=_positive(LIMIT_VARS["request_bytes"], d.request_bytes, int),
            request_depth=_positive(LIMIT_VARS["request_depth"], d.request_depth, int),
            request_nodes=_positive(LIMIT_VARS["request_nodes"], d.request_nodes, int),
            import_bytes=_positive(LIMIT_VARS["import_bytes"], d.import_bytes, int),
            import_rows=_positive(LIMIT_VARS["import_rows"], d.import_rows, int),
        )

    def over(self, name: str, what: str) -> str:
        """The refusal of `what` (which states the value) over limit `name`, saying how to raise it."""
        limit = getattr(self, name)
        shown = f"{int(limit):,}" if float(limit).is_integer() else f"{limit:g}"
        return f"{what} exceeds the limit of {shown} (set {LIMIT_VARS[name]} to raise it)"

LIMIT_VARS = {
    "traders_per_scenario": "MOCHI_MAX_TRADERS_PER_SCENARIO",
    "traders_per_request": "MOCHI_MAX_TRADERS_PER_REQUEST",
    "years": "MOCHI_MAX_YEARS",
    "trader_years": "MOCHI_MAX_TRADER_YEARS",
    "request_bytes": "MOCHI_MAX_REQUEST_BYTES",
    "request_depth": "MOCHI_MAX_REQUEST_DEPTH",
    "request_nodes": "MOCHI_MAX_REQUEST_NODES",
    "import_bytes": "MOCHI_MAX_IMPORT_BYTES",
    "import_rows": "MOCHI_MAX_IMPORT_ROWS",
}
