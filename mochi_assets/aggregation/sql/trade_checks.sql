-- Consistency of the inputs: every trade must belong to a known trader and to a session date of
-- the calendar (the denominator of the daily series). Counts plus one example of each problem,
-- one scan of the trades per check.
SELECT
    unknown_trader.trades AS unknown_trader_trades,
    unknown_trader.example AS unknown_trader_example,
    off_calendar.trades AS off_calendar_trades,
    off_calendar.example AS off_calendar_example
FROM (
    SELECT COUNT(*) AS trades, MIN(t.trader_id) AS example
    FROM trades t
    WHERE NOT EXISTS (SELECT 1 FROM traders d WHERE d.trader_id = t.trader_id)
) unknown_trader
CROSS JOIN (
    SELECT COUNT(*) AS trades, MIN(t.session_date) AS example
    FROM trades t
    WHERE NOT EXISTS (SELECT 1 FROM sessions s WHERE s.session_date = t.session_date)
) off_calendar
