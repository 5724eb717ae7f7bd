-- Sums and means of doubles go through DECIMAL(38, 18): exact sums, so results do not depend on
-- the order in which the engine's threads add rows (identical runs give identical bytes).
-- The one grouping pass over the trades for the per-trader and per-year statistics: one row per
-- trader and calendar year of session_date in which the trader traded, with exact DECIMAL(38, 18)
-- sums (kept as decimals, so that trader_trade_stats adds the years up exactly and gets the same
-- sums as one pass over the trader's trades would). Each double is cast to DECIMAL once (the casts
-- are the costly part of these sums). gross_loss, the sum of -CAST(pnl) over the losing trades, is
-- gross_profit - sum_pnl: the same exact decimal (the other trades' pnl is 0 or a decimal 0),
-- without a third conditional sum per trade.
-- Read by trader_by_year and trader_trade_stats.
SELECT
    trader_id,
    year,
    trades,
    wins,
    sum_pnl,
    sum_pnl_ticks,
    gross_profit,
    gross_profit - sum_pnl AS gross_loss,
    sum_r,
    avg_r
FROM (
    SELECT
        trader_id,
        year,
        COUNT(*) AS trades,
        CAST(SUM(CASE WHEN pnl > 0 THEN 1 ELSE 0 END) AS BIGINT) AS wins,
        SUM(pnl_d) AS sum_pnl,
        SUM(pnl_ticks_d) AS sum_pnl_ticks,
        SUM(CASE WHEN pnl > 0 THEN pnl_d ELSE 0 END) AS gross_profit,
        SUM(r_d) AS sum_r,
        CAST(AVG(r_d) AS DOUBLE) AS avg_r
    FROM (
        SELECT
            trader_id,
            CAST(EXTRACT(YEAR FROM session_date) AS BIGINT) AS year,
            pnl,
            CAST(pnl AS DECIMAL(38, 18)) AS pnl_d,
            CAST(pnl_ticks AS DECIMAL(38, 18)) AS pnl_ticks_d,
            CAST(r AS DECIMAL(38, 18)) AS r_d
        FROM trades
    ) t
    GROUP BY trader_id, year
) sums
