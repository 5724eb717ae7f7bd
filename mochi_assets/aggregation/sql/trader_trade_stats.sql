-- Sums and means of doubles go through DECIMAL(38, 18): exact sums, so results do not depend on
-- the order in which the engine's threads add rows (identical runs give identical bytes).
-- Per-trader sums over its trades (traders without trades have no row here).
-- A win is a trade with positive pnl net of costs.
SELECT
    trader_id,
    COUNT(*) AS trades,
    CAST(SUM(CASE WHEN pnl > 0 THEN 1 ELSE 0 END) AS BIGINT) AS wins,
    CAST(SUM(CAST(pnl AS DECIMAL(38, 18))) AS DOUBLE) AS net_pnl,
    CAST(SUM(CAST(pnl_ticks AS DECIMAL(38, 18))) AS DOUBLE) AS net_pnl_ticks,
    CAST(SUM(CAST(CASE WHEN pnl > 0 THEN pnl ELSE 0.0 END AS DECIMAL(38, 18))) AS DOUBLE) AS gross_profit,
    CAST(SUM(CAST(CASE WHEN pnl < 0 THEN -pnl ELSE 0.0 END AS DECIMAL(38, 18))) AS DOUBLE) AS gross_loss,
    CAST(SUM(CAST(r AS DECIMAL(38, 18))) AS DOUBLE) AS sum_r,
    CAST(AVG(CAST(r AS DECIMAL(38, 18))) AS DOUBLE) AS avg_r,
    CAST(AVG(CAST(pnl AS DECIMAL(38, 18))) AS DOUBLE) AS expectancy
FROM trades
GROUP BY trader_id
