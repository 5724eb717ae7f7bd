-- The few trades that exact quantiles of mae_r and mfe_r need, with their order positions.
-- Quantiles are PERCENTILE_CONT (linear interpolation between the values at 0-based positions
-- FLOOR(q * (n - 1)) and CEIL(q * (n - 1)) of the n non-NULL values in order), written with
-- ROW_NUMBER so that DuckDB and Trino compute them exactly alike (Trino has only approximate
-- percentiles). Groups: stop_atr level x outcome ("level_" columns) and outcome over all levels
-- ("all_" columns); q = 0.1, 0.25, 0.5, 0.75, 0.9 for mae_r and 0.5 for mfe_r. mae_r and mfe_r
-- are NULL together (trades with r = 0), so one count per group serves both.
-- Each CTE is read once: Trino inlines a CTE at every reference, so none is evaluated twice.
WITH excursions AS (
    SELECT
        tr.stop_atr,
        CASE WHEN t.pnl > 0 THEN 'win' ELSE 'loss' END AS outcome,
        CASE WHEN t.r <> 0 THEN t.mae * t.r / t.pnl END AS mae_r,
        CASE WHEN t.r <> 0 THEN t.mfe * t.r / t.pnl END AS mfe_r
    FROM trades t
    JOIN traders tr ON tr.trader_id = t.trader_id
),
ranked AS (
    SELECT
        stop_atr,
        outcome,
        mae_r,
        mfe_r,
        COUNT(mae_r) OVER (PARTITION BY stop_atr, outcome) AS level_n,
        ROW_NUMBER() OVER (PARTITION BY stop_atr, outcome ORDER BY mae_r NULLS LAST) - 1 AS level_mae_pos,
        ROW_NUMBER() OVER (PARTITION BY stop_atr, outcome ORDER BY mfe_r NULLS LAST) - 1 AS level_mfe_pos,
        COUNT(mae_r) OVER (PARTITION BY outcome) AS all_n,
        ROW_NUMBER() OVER (PARTITION BY outcome ORDER BY mae_r NULLS LAST) - 1 AS all_mae_pos,
        ROW_NUMBER() OVER (PARTITION BY outcome ORDER BY mfe_r NULLS LAST) - 1 AS all_mfe_pos
    FROM excursions
)
SELECT *
FROM ranked
WHERE level_mae_pos IN (
        FLOOR(CAST(0.1 AS DOUBLE) * (level_n - 1)), CEIL(CAST(0.1 AS DOUBLE) * (level_n - 1)),
        FLOOR(CAST(0.25 AS DOUBLE) * (level_n - 1)), CEIL(CAST(0.25 AS DOUBLE) * (level_n - 1)),
        FLOOR(CAST(0.5 AS DOUBLE) * (level_n - 1)), CEIL(CAST(0.5 AS DOUBLE) * (level_n - 1)),
        FLOOR(CAST(0.75 AS DOUBLE) * (level_n - 1)), CEIL(CAST(0.75 AS DOUBLE) * (level_n - 1)),
        FLOOR(CAST(0.9 AS DOUBLE) * (level_n - 1)), CEIL(CAST(0.9 AS DOUBLE) * (level_n - 1)))
    OR level_mfe_pos IN (
        FLOOR(CAST(0.5 AS DOUBLE) * (level_n - 1)), CEIL(CAST(0.5 AS DOUBLE) * (level_n - 1)))
    OR all_mae_pos IN (
        FLOOR(CAST(0.1 AS DOUBLE) * (all_n - 1)), CEIL(CAST(0.1 AS DOUBLE) * (all_n - 1)),
        FLOOR(CAST(0.25 AS DOUBLE) * (all_n - 1)), CEIL(CAST(0.25 AS DOUBLE) * (all_n - 1)),
        FLOOR(CAST(0.5 AS DOUBLE) * (all_n - 1)), CEIL(CAST(0.5 AS DOUBLE) * (all_n - 1)),
        FLOOR(CAST(0.75 AS DOUBLE) * (all_n - 1)), CEIL(CAST(0.75 AS DOUBLE) * (all_n - 1)),
        FLOOR(CAST(0.9 AS DOUBLE) * (all_n - 1)), CEIL(CAST(0.9 AS DOUBLE) * (all_n - 1)))
    OR all_mfe_pos IN (
        FLOOR(CAST(0.5 AS DOUBLE) * (all_n - 1)), CEIL(CAST(0.5 AS DOUBLE) * (all_n - 1)))
