"""The SQL engine the aggregation runs on, as a Dagster resource.

DuckDB in process by default; Trino when ``MOCHI_TRINO_URL`` is set (read when a run asks for the
engine, never at import). Trino reads the trades where the lake keeps them, so it needs the lake
on the S3 API (``MOCHI_S3_ENDPOINT``) and the same ``MOCHI_BUCKET_PREFIX``.
"""

from __future__ import annotations

import os

import dagster as dg

from mochi_resources.errors import MochiError
from mochi_resources.settings import MochiSettings
from mochi_resources.sql_engine import DuckDBEngine, SqlEngine
from mochi_resources.trino_engine import ENV_VAR, TrinoEngine, parse_trino_url


class SqlEngineResource(dg.ConfigurableResource):
    """DuckDB in process (`threads` and `memory_limit` bound one aggregation), or Trino.

    `trino_url` overrides `MOCHI_TRINO_URL`; an empty string forces DuckDB.

    Results do not depend on `threads`: the SQL sums doubles through DECIMAL(38, 18), exactly, so
    the order in which threads add rows cannot change a bit of them (see aggregation/sql).
    """

    threads: int | None = None
    memory_limit: str | None = None
    trino_url: str | None = None

    def get_engine(self) -> SqlEngine:
        url = self.trino_url if self.trino_url is not None else os.environ.get(ENV_VAR, "")
        if not url.strip():
            return DuckDBEngine(threads=self.threads, memory_limit=self.memory_limit)
        target = parse_trino_url(url.strip())
        settings = MochiSettings.from_env()
        if settings.s3_endpoint is None and target.location.startswith("s3"):
            raise MochiError(
                f"{ENV_VAR} is set ({target.safe_url}) but the lake is the local folder {settings.lake_root}: "
                "Trino reads the lake over the S3 API, so set MOCHI_S3_ENDPOINT too"
            )
        engine = TrinoEngine(target, bucket_prefix=settings.bucket_prefix)
        engine.check()  # one clear error now, before any work, if Trino cannot be reached
        return engine
