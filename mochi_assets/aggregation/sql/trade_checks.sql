-- Consistency of the inputs: every trade must belong to a known trader and to a session date of
-- the calendar (the denominator of the daily series). Counts plus one example of each problem.
SELECT
    (SELECT COUNT(*) FROM trades t
      WHERE NOT EXISTS (SELECT 1 FROM traders d WHERE d.trader_id = t.trader_id)) AS unknown_trader_trades,
    (SELECT MIN(t.trader_id) FROM trades t
      WHERE NOT EXISTS (SELECT 1 FROM traders d WHERE d.trader_id = t.trader_id)) AS unknown_trader_example,
    (SELECT COUNT(*) FROM trades t
      WHERE NOT EXISTS (SELECT 1 FROM sessions s WHERE s.session_date = t.session_date)) AS off_calendar_trades,
    (SELECT MIN(t.session_date) FROM trades t
      WHERE NOT EXISTS (SELECT 1 FROM sessions s WHERE s.session_date = t.session_date)) AS off_calendar_example
