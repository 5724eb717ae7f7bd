-- Per-trader sums over its trades (traders without trades have no row here).
-- A win is a trade with positive pnl net of costs.
SELECT
    trader_id,
    COUNT(*) AS trades,
    CAST(SUM(CASE WHEN pnl > 0 THEN 1 ELSE 0 END) AS BIGINT) AS wins,
    SUM(pnl) AS net_pnl,
    SUM(pnl_ticks) AS net_pnl_ticks,
    SUM(CASE WHEN pnl > 0 THEN pnl ELSE 0.0 END) AS gross_profit,
    SUM(CASE WHEN pnl < 0 THEN -pnl ELSE 0.0 END) AS gross_loss,
    SUM(r) AS sum_r,
    AVG(r) AS avg_r,
    AVG(pnl) AS expectancy
FROM trades
GROUP BY trader_id
