-- How far trades went against the position before closing, in R (multiples of the initial risk
-- stop_atr * ATR), for eventual winners (pnl > 0) and losers (pnl <= 0). The risk is recovered
-- from the trade itself as pnl / r, so trades with r = 0 (pnl exactly 0) have no mae_r.
-- Rows per stop_atr level and outcome, plus one row per outcome over all levels (stop_atr NULL).
WITH excursions AS (
    SELECT
        tr.stop_atr,
        CASE WHEN t.pnl > 0 THEN 'win' ELSE 'loss' END AS outcome,
        CASE WHEN t.r <> 0 THEN t.mae * t.r / t.pnl END AS mae_r,
        CASE WHEN t.r <> 0 THEN t.mfe * t.r / t.pnl END AS mfe_r
    FROM trades t
    JOIN traders tr ON tr.trader_id = t.trader_id
),
by_level AS (
    SELECT
        stop_atr,
        outcome,
        COUNT(*) AS trades,
        AVG(mae_r) AS mae_r_mean,
        PERCENTILE_CONT(0.1) WITHIN GROUP (ORDER BY mae_r) AS mae_r_p10,
        PERCENTILE_CONT(0.25) WITHIN GROUP (ORDER BY mae_r) AS mae_r_p25,
        PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY mae_r) AS mae_r_p50,
        PERCENTILE_CONT(0.75) WITHIN GROUP (ORDER BY mae_r) AS mae_r_p75,
        PERCENTILE_CONT(0.9) WITHIN GROUP (ORDER BY mae_r) AS mae_r_p90,
        MAX(mae_r) AS mae_r_max,
        AVG(mfe_r) AS mfe_r_mean,
        PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY mfe_r) AS mfe_r_p50
    FROM excursions
    GROUP BY stop_atr, outcome
),
overall AS (
    SELECT
        CAST(NULL AS DOUBLE) AS stop_atr,
        outcome,
        COUNT(*) AS trades,
        AVG(mae_r) AS mae_r_mean,
        PERCENTILE_CONT(0.1) WITHIN GROUP (ORDER BY mae_r) AS mae_r_p10,
        PERCENTILE_CONT(0.25) WITHIN GROUP (ORDER BY mae_r) AS mae_r_p25,
        PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY mae_r) AS mae_r_p50,
        PERCENTILE_CONT(0.75) WITHIN GROUP (ORDER BY mae_r) AS mae_r_p75,
        PERCENTILE_CONT(0.9) WITHIN GROUP (ORDER BY mae_r) AS mae_r_p90,
        MAX(mae_r) AS mae_r_max,
        AVG(mfe_r) AS mfe_r_mean,
        PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY mfe_r) AS mfe_r_p50
    FROM excursions
    GROUP BY outcome
)
SELECT * FROM by_level
UNION ALL
SELECT * FROM overall
ORDER BY stop_atr NULLS LAST, outcome DESC
