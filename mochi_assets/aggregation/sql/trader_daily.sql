-- Sums and means of doubles go through DECIMAL(38, 18): exact sums, so results do not depend on
-- the order in which the engine's threads add rows (identical runs give identical bytes).
-- The non-zero part of each trader's daily series: the sum of its trades' r per session date.
-- Session dates without a trade are zeros of the series and have no row.
SELECT
    trader_id,
    session_date,
    CAST(SUM(CAST(r AS DECIMAL(38, 18))) AS DOUBLE) AS r
FROM trades
GROUP BY trader_id, session_date
