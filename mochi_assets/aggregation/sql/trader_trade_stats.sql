-- Per-trader sums over its trades (traders without trades have no row here), added up exactly
-- from the per-year DECIMAL(38, 18) sums of trader_year_sums (so they do not depend on the order in
-- which the engine's threads add rows either). A win is a trade with positive pnl net of costs.
-- avg_r and expectancy are the exact sums divided by the trade count in DOUBLE.
SELECT
    trader_id,
    CAST(SUM(trades) AS BIGINT) AS trades,
    CAST(SUM(wins) AS BIGINT) AS wins,
    CAST(SUM(sum_pnl) AS DOUBLE) AS net_pnl,
    CAST(SUM(sum_pnl_ticks) AS DOUBLE) AS net_pnl_ticks,
    CAST(SUM(gross_profit) AS DOUBLE) AS gross_profit,
    CAST(SUM(gross_loss) AS DOUBLE) AS gross_loss,
    CAST(SUM(sum_r) AS DOUBLE) AS sum_r,
    CAST(SUM(sum_r) AS DOUBLE) / CAST(SUM(trades) AS DOUBLE) AS avg_r,
    CAST(SUM(sum_pnl) AS DOUBLE) / CAST(SUM(trades) AS DOUBLE) AS expectancy
FROM trader_year_sums
GROUP BY trader_id
