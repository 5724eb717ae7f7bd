"""deploy/trino/tables.sql: Hive external tables over the lake layout, with the columns of docs/strategy.md.

The locations must be where the IO manager writes (the assets' lake metadata), and the declared
columns must exist, with matching types, in the Parquet files Mochi writes.
"""

from __future__ import annotations

import re

import sqlglot
from deploy_files import DEPLOY
from sqlglot import exp

from mochi_assets.definitions import all_assets
from mochi_resources.io_manager import BUCKET_KEY, TABLES_KEY

DDL = (DEPLOY / "trino" / "tables.sql").read_text()
PARTITIONS = ["ticker", "scenario"]


def _tables() -> dict[str, dict]:
    tables = {}
    # The CALL statements at the end are Trino procedures sqlglot does not model: parse the DDL.
    for statement in sqlglot.parse(DDL.split("\nCALL ")[0], read="trino"):
        if not isinstance(statement, exp.Create) or statement.kind != "TABLE":
            continue
        schema = statement.this
        name = schema.this.name
        columns = {col.name: col.args["kind"].sql("trino").lower() for col in schema.expressions}
        props = statement.args["properties"].expressions
        location = next(p for p in props if p.name == "external_location").args["value"].name
        partitioned_by = next(p for p in props if isinstance(p, exp.PartitionedByProperty))
        partitioned = [e.name for e in partitioned_by.this.expressions]
        tables[name] = {"columns": columns, "location": location, "partitioned_by": partitioned}
    return tables


def _lake_tables() -> dict[str, str]:
    """table name -> bucket, from the assets' lake metadata (what the IO manager writes)."""
    out = {}
    for asset in all_assets:
        for spec in asset.specs:
            for table in spec.metadata.get(TABLES_KEY, []):
                out[table] = spec.metadata[BUCKET_KEY]
    return out


def test_the_four_tables_are_declared():
    assert set(_tables()) == {"trades", "traders", "trader_summary", "trader_by_year"}


def test_locations_follow_the_lake_layout_of_the_io_manager():
    lake = _lake_tables()
    for name, table in _tables().items():
        assert table["location"] == f"s3a://mochi-{lake[name]}/{name}", name
        assert table["partitioned_by"] == PARTITIONS
        assert list(table["columns"])[-2:] == PARTITIONS


def test_columns_are_the_design_contracts():
    tables = _tables()
    assert list(tables["trades"]["columns"])[:-2] == [
        "trader_id", "session_date", "entry_ts", "entry_price", "exit_ts", "exit_price", "exit_reason",
        "pnl", "pnl_ticks", "r", "mae", "mfe", "bars_held",
    ]
    assert list(tables["trader_summary"]["columns"])[:-2] == [
        "trader_id", "trades", "wins", "win_rate", "net_pnl", "avg_r", "profit_factor", "max_drawdown", "sharpe",
    ]
    assert list(tables["trader_by_year"]["columns"])[:-2] == ["trader_id", "year", "trades", "net_pnl", "win_rate"]
    # `scenario` is the partition column; the traders file's own scenario column has the same value.
    assert list(tables["traders"]["columns"])[:-2] == [
        "trader_id", "direction", "entry_time", "offset_ticks", "stop_atr", "limit_atr",
        "duration_min", "timeout_min", "cost_ticks",
    ]


def test_timestamps_are_plain_microsecond_timestamps_documented_as_utc():
    trades = _tables()["trades"]["columns"]
    assert trades["entry_ts"] == trades["exit_ts"] == "timestamp(6)"
    assert re.search(r"UTC", DDL)


def test_types_match_the_parquet_the_simulation_writes():
    from mochi_assets.simulation.api import trades_schema

    hive = {"int64": "bigint", "double": "double", "date32[day]": "date", "string": "varchar",
            "large_string": "varchar", "timestamp[us, tz=UTC]": "timestamp(6)"}
    declared = _tables()["trades"]["columns"]
    for field in trades_schema():
        assert declared[field.name] == hive[str(field.type)], field.name
