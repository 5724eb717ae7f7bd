-- The non-zero part of each trader's daily series: the sum of its trades' r per session date.
-- Session dates without a trade are zeros of the series and have no row.
SELECT
    trader_id,
    session_date,
    SUM(r) AS r
FROM trades
GROUP BY trader_id, session_date
