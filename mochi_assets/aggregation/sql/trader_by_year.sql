-- Sums and means of doubles go through DECIMAL(38, 18): exact sums, so results do not depend on
-- the order in which the engine's threads add rows (identical runs give identical bytes).
-- One row per trader and calendar year of session_date IN WHICH THE TRADER TRADED.
-- Years without a trade do not appear (their trades and net_pnl would be 0, win_rate NULL).
SELECT
    trader_id,
    CAST(EXTRACT(YEAR FROM session_date) AS BIGINT) AS year,
    COUNT(*) AS trades,
    CAST(SUM(CAST(pnl AS DECIMAL(38, 18))) AS DOUBLE) AS net_pnl,
    CAST(SUM(CASE WHEN pnl > 0 THEN 1 ELSE 0 END) AS DOUBLE) / COUNT(*) AS win_rate,
    CAST(AVG(CAST(r AS DECIMAL(38, 18))) AS DOUBLE) AS avg_r,
    CAST(SUM(CAST(pnl_ticks AS DECIMAL(38, 18))) AS DOUBLE) AS net_pnl_ticks,
    CAST(SUM(CAST(r AS DECIMAL(38, 18))) AS DOUBLE) AS net_r
FROM trades
GROUP BY trader_id, CAST(EXTRACT(YEAR FROM session_date) AS BIGINT)
ORDER BY trader_id, year
