"""A Dagster test instance with the embedded instance's event log storage (`dagster.yaml`).

`dg.instance_for_test()` alone uses Dagster's `SqliteEventLogStorage`, which builds an engine for
every call and asks SQLite whether a table exists before every dynamic-partition lookup: the
automation tests spent most of their time there (an automation evaluation of these
multi-partitioned assets looks the partition keys up thousands of times). `mochi` itself runs
on `MochiSqliteEventLogStorage` (mochi_resources/dagster_storage.py): tests that play runs in
process use it too, the same storage the command uses, with Dagster's files and layout.
"""

from contextlib import contextmanager

import dagster as dg

EVENT_LOG_STORAGE = {"module": "mochi_resources.dagster_storage", "class": "MochiSqliteEventLogStorage"}


@contextmanager
def mochi_instance_for_test(**kwargs):
    """`dg.instance_for_test(**kwargs)` with the repository's event log storage."""
    overrides = {"event_log_storage": EVENT_LOG_STORAGE, **(kwargs.pop("overrides", None) or {})}
    with dg.instance_for_test(overrides=overrides, **kwargs) as instance:
        yield instance
