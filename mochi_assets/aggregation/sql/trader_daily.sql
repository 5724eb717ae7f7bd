-- Sums and means of doubles go through DECIMAL(38, 18): exact sums, so results do not depend on
-- the order in which the engine's threads add rows (identical runs give identical bytes).
-- The non-zero part of each trader's daily series: the r of the trader's trade on each session
-- date it traded. A trader holds at most one trade per session date (docs/strategy.md), so the
-- sum of a day is that one trade's r: no grouping (it cost a hash aggregate over every trade).
-- The value goes through DECIMAL(38, 18) as the exact sum of that one trade does, so it is the
-- same double. daily_matrix (tables.py) checks the rule on the fetched rows: a second trade of a
-- trader on a session date is an error, never a silently dropped trade.
-- Session dates without a trade are zeros of the series and have no row.
SELECT
    trader_id,
    session_date,
    CAST(CAST(r AS DECIMAL(38, 18)) AS DOUBLE) AS r
FROM trades
