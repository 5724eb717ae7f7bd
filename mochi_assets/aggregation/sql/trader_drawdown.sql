-- Maximum drawdown of each trader's cumulative pnl in trade order (one position at a time, so
-- entry order is exit order). The running peak starts at 0: an opening loss is a drawdown.
SELECT
    trader_id,
    MAX(peak - equity) AS max_drawdown
FROM (
    SELECT
        trader_id,
        equity,
        GREATEST(0.0, MAX(equity) OVER (
            PARTITION BY trader_id ORDER BY entry_ts
            ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)) AS peak
    FROM (
        SELECT
            trader_id,
            entry_ts,
            SUM(pnl) OVER (
                PARTITION BY trader_id ORDER BY entry_ts
                ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS equity
        FROM trades
    ) cumulative
) peaks
GROUP BY trader_id
