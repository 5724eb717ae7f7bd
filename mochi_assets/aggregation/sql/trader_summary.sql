-- One row per trader of the scenario, traders without trades included:
-- trades, wins, net_pnl and max_drawdown are 0 for them; ratios and averages are NULL.
-- max_drawdown comes with the traders input (the traders' outcome table, aggregation/outcomes.py:
-- the largest fall of the cumulative pnl in trade order from a running peak that starts at 0).
-- win_rate = wins / trades; profit_factor = gross profit / gross loss (NULL without a losing
-- trade); expectancy = average pnl per trade (price units); net_pnl_ticks and net_r = net_pnl in
-- ticks and in R (sum of r, each trade's pnl over its initial risk); sharpe = annualized Sharpe of the
-- daily r series (mean / std ddof 1 * sqrt(252)), NULL when fewer than 2 sessions or zero spread.
SELECT
    tr.trader_id,
    COALESCE(s.trades, 0) AS trades,
    COALESCE(s.wins, 0) AS wins,
    CAST(s.wins AS DOUBLE) / s.trades AS win_rate,
    COALESCE(s.net_pnl, 0.0) AS net_pnl,
    s.avg_r,
    CASE WHEN s.gross_loss > 0 THEN s.gross_profit / s.gross_loss END AS profit_factor,
    tr.max_drawdown,
    CASE
        -- std > 1e-14 * |mean| as in stats.sharpe_per_period: rounding noise of a constant
        -- series is no spread.
        WHEN ds.sessions > 1
            AND ds.daily_sum_sq_dev > 1e-28 * ds.daily_mean * ds.daily_mean * (ds.sessions - 1)
        THEN ds.daily_mean / SQRT(ds.daily_sum_sq_dev / (ds.sessions - 1)) * SQRT(252.0)
    END AS sharpe,
    s.expectancy,
    COALESCE(s.net_pnl_ticks, 0.0) AS net_pnl_ticks,
    COALESCE(s.sum_r, 0.0) AS net_r,
    COALESCE(s.gross_profit, 0.0) AS gross_profit,
    COALESCE(s.gross_loss, 0.0) AS gross_loss,
    COALESCE(ds.active_sessions, 0) AS active_sessions
FROM traders tr
LEFT JOIN trader_trade_stats s ON s.trader_id = tr.trader_id
LEFT JOIN trader_daily_stats ds ON ds.trader_id = tr.trader_id
ORDER BY tr.trader_id
