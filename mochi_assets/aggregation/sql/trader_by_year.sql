-- One row per trader and calendar year of session_date IN WHICH THE TRADER TRADED.
-- Years without a trade do not appear (their trades and net_pnl would be 0, win_rate NULL).
SELECT
    trader_id,
    CAST(EXTRACT(YEAR FROM session_date) AS BIGINT) AS year,
    COUNT(*) AS trades,
    SUM(pnl) AS net_pnl,
    CAST(SUM(CASE WHEN pnl > 0 THEN 1 ELSE 0 END) AS DOUBLE) / COUNT(*) AS win_rate,
    AVG(r) AS avg_r,
    SUM(pnl_ticks) AS net_pnl_ticks,
    SUM(r) AS net_r
FROM trades
GROUP BY trader_id, CAST(EXTRACT(YEAR FROM session_date) AS BIGINT)
ORDER BY trader_id, year
