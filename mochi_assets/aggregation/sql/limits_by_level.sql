-- Sums and means of doubles go through DECIMAL(38, 18): exact sums, so results do not depend on
-- the order in which the engine's threads add rows (identical runs give identical bytes).
-- Results by limit_atr level: every trader of the level counts in traders (with or without
-- trades); trades, net_pnl, avg_r (trade-weighted) and win_rate pool the trades of the level;
-- mean_sharpe and best_sharpe summarize the traders' annualized Sharpes (NULLs ignored).
SELECT
    tr.limit_atr,
    COUNT(*) AS traders,
    CAST(SUM(CASE WHEN ts.trades > 0 THEN 1 ELSE 0 END) AS BIGINT) AS traders_with_trades,
    CAST(SUM(ts.trades) AS BIGINT) AS trades,
    CAST(SUM(CAST(ts.net_pnl AS DECIMAL(38, 18))) AS DOUBLE) AS net_pnl,
    CAST(SUM(CAST(s.sum_r AS DECIMAL(38, 18))) AS DOUBLE) / NULLIF(SUM(ts.trades), 0) AS avg_r,
    CAST(SUM(ts.wins) AS DOUBLE) / NULLIF(SUM(ts.trades), 0) AS win_rate,
    CAST(AVG(CAST(ts.sharpe AS DECIMAL(38, 18))) AS DOUBLE) AS mean_sharpe,
    MAX(ts.sharpe) AS best_sharpe
FROM traders tr
JOIN trader_summary ts ON ts.trader_id = tr.trader_id
LEFT JOIN trader_trade_stats s ON s.trader_id = tr.trader_id
GROUP BY tr.limit_atr
ORDER BY tr.limit_atr
