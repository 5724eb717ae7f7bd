"""The SQL engine the aggregation runs on, as a Dagster resource (DuckDB in process by default)."""

from __future__ import annotations

import dagster as dg

from mochi_resources.sql_engine import DuckDBEngine, SqlEngine


class SqlEngineResource(dg.ConfigurableResource):
    """DuckDB in process; `threads` and `memory_limit` bound what one aggregation may use."""

    threads: int | None = None
    memory_limit: str | None = None

    def get_engine(self) -> SqlEngine:
        return DuckDBEngine(threads=self.threads, memory_limit=self.memory_limit)
