-- Hive external tables over the lake, for Trino (catalog `hive`, schema `mochi`: MOCHI_TRINO_URL
-- ends in /hive/mochi). Layout: s3a://{prefix}{bucket}/{table}/ticker=T/scenario=S/data.parquet,
-- written by Mochi's IO manager; bucket prefix `mochi-` (MOCHI_BUCKET_PREFIX: replace it in the
-- locations below if yours differs). Run once after the install:
--   trino --server http://trino.mochi.svc.cluster.local:8080 --file deploy/trino/tables.sql
-- Timestamps: the Parquet files hold UTC instants (microseconds). Hive tables have no
-- `timestamp with time zone`, so they are declared `timestamp(6)` and read as UTC wall-clock
-- times (the catalog sets hive.parquet.time-zone=UTC and every Trino JVM runs in UTC).
-- Extra columns in the files are ignored; the declared ones are the table columns of docs/strategy.md (section 9).

CREATE SCHEMA IF NOT EXISTS hive.mochi;

CREATE TABLE IF NOT EXISTS hive.mochi.trades (
    trader_id bigint,
    session_date date,
    entry_ts timestamp(6),
    entry_price double,
    exit_ts timestamp(6),
    exit_price double,
    exit_reason varchar,
    pnl double,
    pnl_ticks double,
    r double,
    mae double,
    mfe double,
    bars_held bigint,
    ticker varchar,
    scenario varchar
)
WITH (
    external_location = 's3a://mochi-trades/trades',
    format = 'PARQUET',
    partitioned_by = ARRAY['ticker', 'scenario']
);

CREATE TABLE IF NOT EXISTS hive.mochi.traders (
    trader_id bigint,
    direction varchar,
    entry_time varchar,
    offset_ticks bigint,
    stop_atr double,
    limit_atr double,
    duration_min bigint,
    timeout_min bigint,
    cost_ticks double,
    ticker varchar,
    scenario varchar
)
WITH (
    external_location = 's3a://mochi-trades/traders',
    format = 'PARQUET',
    partitioned_by = ARRAY['ticker', 'scenario']
);

CREATE TABLE IF NOT EXISTS hive.mochi.trader_summary (
    trader_id bigint,
    trades bigint,
    wins bigint,
    win_rate double,
    net_pnl double,
    avg_r double,
    profit_factor double,
    max_drawdown double,
    sharpe double,
    ticker varchar,
    scenario varchar
)
WITH (
    external_location = 's3a://mochi-aggregates/trader_summary',
    format = 'PARQUET',
    partitioned_by = ARRAY['ticker', 'scenario']
);

CREATE TABLE IF NOT EXISTS hive.mochi.trader_by_year (
    trader_id bigint,
    year bigint,
    trades bigint,
    net_pnl double,
    win_rate double,
    ticker varchar,
    scenario varchar
)
WITH (
    external_location = 's3a://mochi-aggregates/trader_by_year',
    format = 'PARQUET',
    partitioned_by = ARRAY['ticker', 'scenario']
);

-- Partitions written since the last call become visible (run after each backtest, or let the
-- Trino engine do it before it aggregates).
CALL hive.system.sync_partition_metadata('mochi', 'trades', 'ADD');
CALL hive.system.sync_partition_metadata('mochi', 'traders', 'ADD');
CALL hive.system.sync_partition_metadata('mochi', 'trader_summary', 'ADD');
CALL hive.system.sync_partition_metadata('mochi', 'trader_by_year', 'ADD');
