-- The non-zero part of each trader's daily series: the r of the trader's trade on each session
-- date it traded. A trader holds at most one trade per session date (docs/strategy.md), so the
-- sum of a day is that one trade's r, exactly, as a double: no grouping (it cost a hash aggregate
-- over every trade) and no cast (a round trip through DECIMAL(38, 18) cost about 0.13 us per
-- trade, the dearest part of this statement, and only rounded r to 18 decimals).
-- daily_matrix (tables.py) checks the rule on the fetched rows: a second trade of a trader on a
-- session date is an error, never a silently dropped trade.
-- Session dates without a trade are zeros of the series and have no row.
SELECT
    trader_id,
    session_date,
    r
FROM trades
