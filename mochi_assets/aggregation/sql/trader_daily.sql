-- The non-zero part of each trader's daily series: the sum of its trades' r per session date.
-- Session dates without a trade are zeros of the series and have no row.
--
-- The sum must not depend on the order in which the engine's threads add rows (identical runs
-- give identical bytes). A day with one trade is that trade's r, unchanged; a day with two is
-- lo + hi, one double addition, which is commutative: the correctly rounded sum whatever the
-- order. Only days with three trades or more go through DECIMAL(38, 18) (an exact sum of the r
-- rounded to 18 decimals, then rounded to a double). Most days have one trade, and turning one
-- DECIMAL(38, 18) per row back into a double was most of this statement's cost (the CASE
-- converts only the rows that need it).
SELECT
    trader_id,
    session_date,
    CASE
        WHEN n = 1 THEN lo
        WHEN n = 2 THEN lo + hi
        ELSE CAST(s AS DOUBLE)
    END AS r
FROM (
    SELECT
        trader_id,
        session_date,
        COUNT(*) AS n,
        MIN(r) AS lo,
        MAX(r) AS hi,
        SUM(CAST(r AS DECIMAL(38, 18))) AS s
    FROM trades
    GROUP BY trader_id, session_date
) days
