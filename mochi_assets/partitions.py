"""Ticker and scenario partitions, and the one place where partition keys are made safe."""

import re
import warnings

import dagster as dg

from mochi_resources.errors import RequestError

TICKER_DIMENSION = "ticker"
SCENARIO_DIMENSION = "scenario"
BROKER_DIMENSION = "broker"

# A partition key becomes a path segment, an S3 key segment and a SQL literal: allow only a
# conservative alphabet so nothing can escape a folder, a bucket or a quoted string.
_TICKER_KEY = re.compile(r"^[A-Z0-9][A-Z0-9_.\-]{0,39}$")
_TICKER_INPUT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,39}$")
_SCENARIO_KEY = re.compile(r"^[a-z0-9][a-z0-9\-]{0,47}$")

ticker_partitions_def = dg.DynamicPartitionsDefinition(name=TICKER_DIMENSION)
scenario_partitions_def = dg.DynamicPartitionsDefinition(name=SCENARIO_DIMENSION)
# One partition per broker (`mochi brokers add` registers it): the live_trades export of that broker.
broker_partitions_def = dg.DynamicPartitionsDefinition(name=BROKER_DIMENSION)
ticker_scenario_partitions_def = dg.MultiPartitionsDefinition(
    {TICKER_DIMENSION: ticker_partitions_def, SCENARIO_DIMENSION: scenario_partitions_def}
)

# Ticker x scenario assets read ticker assets through the ticker dimension; a per-ticker asset
# reads every scenario of its ticker through the same mapping.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", dg.BetaWarning)  # stable in practice; the warning would reach every CLI user
    by_ticker = dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name=TICKER_DIMENSION)


def sanitize_ticker(ticker: str) -> str:
    """Provider symbol -> partition key: `C:XAUUSD` -> `C_XAUUSD`; refuses anything unsafe."""
    if not isinstance(ticker, str) or not _TICKER_INPUT.match(ticker.strip()):
        raise RequestError(
            f"ticker: {ticker!r} is not a valid symbol (letters, digits, '.', '-', '_' and ':' only, "
            "at most 40 characters, no spaces, slashes or quotes)"
        )
    if ".." in ticker:
        raise RequestError(f"ticker: {ticker!r} must not contain '..'")
    key = ticker.strip().upper().replace(":", "_")
    if not _TICKER_KEY.match(key):
        raise RequestError(f"ticker: {ticker!r} does not make a safe partition key")
    return key


def check_ticker_key(key: str) -> str:
    """Validate an already sanitized ticker partition key (from the UI or a path)."""
    if not _TICKER_KEY.match(key or "") or ".." in key:
        raise RequestError(f"ticker partition {key!r} is not a sanitized ticker key")
    return key


def check_scenario_name(name: str) -> str:
    """Scenario family names are partition keys too: lower-case letters, digits and '-'."""
    if not isinstance(name, str) or not _SCENARIO_KEY.match(name):
        raise RequestError(
            f"scenarios: {name!r} is not a valid scenario name (lower-case letters, digits and '-', "
            "starting with a letter or digit, at most 48 characters)"
        )
    return name


def ticker_scenario_key(ticker_key: str, scenario: str) -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey({TICKER_DIMENSION: ticker_key, SCENARIO_DIMENSION: scenario})


def split_partition_key(context: dg.AssetExecutionContext) -> tuple[str, str | None]:
    """(ticker_key, scenario or None) of the partition a step runs for."""
    key = context.partition_key
    if isinstance(key, dg.MultiPartitionKey):
        dims = key.keys_by_dimension
        return check_ticker_key(dims[TICKER_DIMENSION]), check_scenario_name(dims[SCENARIO_DIMENSION])
    return check_ticker_key(key), None
