-- One row per trader and calendar year of session_date IN WHICH THE TRADER TRADED.
-- Years without a trade do not appear (their trades and net_pnl would be 0, win_rate NULL).
-- From trader_year_sums (exact DECIMAL(38, 18) sums of the trades, see there).
SELECT
    trader_id,
    year,
    trades,
    CAST(sum_pnl AS DOUBLE) AS net_pnl,
    CAST(wins AS DOUBLE) / trades AS win_rate,
    avg_r,
    CAST(sum_pnl_ticks AS DOUBLE) AS net_pnl_ticks,
    CAST(sum_r AS DOUBLE) AS net_r
FROM trader_year_sums
ORDER BY trader_id, year
