-- How far trades went against the position before closing, in R (multiples of the initial risk
-- stop_atr * ATR), for eventual winners (pnl > 0) and losers (pnl <= 0). The risk is recovered
-- from the trade itself as pnl / r, so trades with r = 0 (pnl exactly 0) have no mae_r.
-- Rows per stop_atr level and outcome, plus one row per outcome over all levels (stop_atr NULL).
-- Quantiles interpolate between the values picked by mae_quantile_points (PERCENTILE_CONT):
-- lo + (hi - lo) * (q * (n - 1) - FLOOR(q * (n - 1))), NULL when a group has no mae_r.
WITH sums AS (
    SELECT
        tr.stop_atr,
        CASE WHEN t.pnl > 0 THEN 'win' ELSE 'loss' END AS outcome,
        GROUPING(tr.stop_atr) AS all_levels,
        COUNT(*) AS trades,
        AVG(CASE WHEN t.r <> 0 THEN t.mae * t.r / t.pnl END) AS mae_r_mean,
        MAX(CASE WHEN t.r <> 0 THEN t.mae * t.r / t.pnl END) AS mae_r_max,
        AVG(CASE WHEN t.r <> 0 THEN t.mfe * t.r / t.pnl END) AS mfe_r_mean
    FROM trades t
    JOIN traders tr ON tr.trader_id = t.trader_id
    GROUP BY GROUPING SETS (
        (tr.stop_atr, CASE WHEN t.pnl > 0 THEN 'win' ELSE 'loss' END),
        (CASE WHEN t.pnl > 0 THEN 'win' ELSE 'loss' END))
),
level_picks AS (
    SELECT
        stop_atr,
        outcome,
        MAX(CASE WHEN level_mae_pos = FLOOR(CAST(0.1 AS DOUBLE) * (level_n - 1)) THEN mae_r END) AS mae_r_p10_lo,
        MAX(CASE WHEN level_mae_pos = CEIL(CAST(0.1 AS DOUBLE) * (level_n - 1)) THEN mae_r END) AS mae_r_p10_hi,
        CAST(0.1 AS DOUBLE) * (level_n - 1) - FLOOR(CAST(0.1 AS DOUBLE) * (level_n - 1)) AS mae_r_p10_frac,
        MAX(CASE WHEN level_mae_pos = FLOOR(CAST(0.25 AS DOUBLE) * (level_n - 1)) THEN mae_r END) AS mae_r_p25_lo,
        MAX(CASE WHEN level_mae_pos = CEIL(CAST(0.25 AS DOUBLE) * (level_n - 1)) THEN mae_r END) AS mae_r_p25_hi,
        CAST(0.25 AS DOUBLE) * (level_n - 1) - FLOOR(CAST(0.25 AS DOUBLE) * (level_n - 1)) AS mae_r_p25_frac,
        MAX(CASE WHEN level_mae_pos = FLOOR(CAST(0.5 AS DOUBLE) * (level_n - 1)) THEN mae_r END) AS mae_r_p50_lo,
        MAX(CASE WHEN level_mae_pos = CEIL(CAST(0.5 AS DOUBLE) * (level_n - 1)) THEN mae_r END) AS mae_r_p50_hi,
        CAST(0.5 AS DOUBLE) * (level_n - 1) - FLOOR(CAST(0.5 AS DOUBLE) * (level_n - 1)) AS mae_r_p50_frac,
        MAX(CASE WHEN level_mae_pos = FLOOR(CAST(0.75 AS DOUBLE) * (level_n - 1)) THEN mae_r END) AS mae_r_p75_lo,
        MAX(CASE WHEN level_mae_pos = CEIL(CAST(0.75 AS DOUBLE) * (level_n - 1)) THEN mae_r END) AS mae_r_p75_hi,
        CAST(0.75 AS DOUBLE) * (level_n - 1) - FLOOR(CAST(0.75 AS DOUBLE) * (level_n - 1)) AS mae_r_p75_frac,
        MAX(CASE WHEN level_mae_pos = FLOOR(CAST(0.9 AS DOUBLE) * (level_n - 1)) THEN mae_r END) AS mae_r_p90_lo,
        MAX(CASE WHEN level_mae_pos = CEIL(CAST(0.9 AS DOUBLE) * (level_n - 1)) THEN mae_r END) AS mae_r_p90_hi,
        CAST(0.9 AS DOUBLE) * (level_n - 1) - FLOOR(CAST(0.9 AS DOUBLE) * (level_n - 1)) AS mae_r_p90_frac,
        MAX(CASE WHEN level_mfe_pos = FLOOR(CAST(0.5 AS DOUBLE) * (level_n - 1)) THEN mfe_r END) AS mfe_r_p50_lo,
        MAX(CASE WHEN level_mfe_pos = CEIL(CAST(0.5 AS DOUBLE) * (level_n - 1)) THEN mfe_r END) AS mfe_r_p50_hi,
        CAST(0.5 AS DOUBLE) * (level_n - 1) - FLOOR(CAST(0.5 AS DOUBLE) * (level_n - 1)) AS mfe_r_p50_frac
    FROM mae_quantile_points
    GROUP BY stop_atr, outcome, level_n
),
all_picks AS (
    SELECT
        outcome,
        MAX(CASE WHEN all_mae_pos = FLOOR(CAST(0.1 AS DOUBLE) * (all_n - 1)) THEN mae_r END) AS mae_r_p10_lo,
        MAX(CASE WHEN all_mae_pos = CEIL(CAST(0.1 AS DOUBLE) * (all_n - 1)) THEN mae_r END) AS mae_r_p10_hi,
        CAST(0.1 AS DOUBLE) * (all_n - 1) - FLOOR(CAST(0.1 AS DOUBLE) * (all_n - 1)) AS mae_r_p10_frac,
        MAX(CASE WHEN all_mae_pos = FLOOR(CAST(0.25 AS DOUBLE) * (all_n - 1)) THEN mae_r END) AS mae_r_p25_lo,
        MAX(CASE WHEN all_mae_pos = CEIL(CAST(0.25 AS DOUBLE) * (all_n - 1)) THEN mae_r END) AS mae_r_p25_hi,
        CAST(0.25 AS DOUBLE) * (all_n - 1) - FLOOR(CAST(0.25 AS DOUBLE) * (all_n - 1)) AS mae_r_p25_frac,
        MAX(CASE WHEN all_mae_pos = FLOOR(CAST(0.5 AS DOUBLE) * (all_n - 1)) THEN mae_r END) AS mae_r_p50_lo,
        MAX(CASE WHEN all_mae_pos = CEIL(CAST(0.5 AS DOUBLE) * (all_n - 1)) THEN mae_r END) AS mae_r_p50_hi,
        CAST(0.5 AS DOUBLE) * (all_n - 1) - FLOOR(CAST(0.5 AS DOUBLE) * (all_n - 1)) AS mae_r_p50_frac,
        MAX(CASE WHEN all_mae_pos = FLOOR(CAST(0.75 AS DOUBLE) * (all_n - 1)) THEN mae_r END) AS mae_r_p75_lo,
        MAX(CASE WHEN all_mae_pos = CEIL(CAST(0.75 AS DOUBLE) * (all_n - 1)) THEN mae_r END) AS mae_r_p75_hi,
        CAST(0.75 AS DOUBLE) * (all_n - 1) - FLOOR(CAST(0.75 AS DOUBLE) * (all_n - 1)) AS mae_r_p75_frac,
        MAX(CASE WHEN all_mae_pos = FLOOR(CAST(0.9 AS DOUBLE) * (all_n - 1)) THEN mae_r END) AS mae_r_p90_lo,
        MAX(CASE WHEN all_mae_pos = CEIL(CAST(0.9 AS DOUBLE) * (all_n - 1)) THEN mae_r END) AS mae_r_p90_hi,
        CAST(0.9 AS DOUBLE) * (all_n - 1) - FLOOR(CAST(0.9 AS DOUBLE) * (all_n - 1)) AS mae_r_p90_frac,
        MAX(CASE WHEN all_mfe_pos = FLOOR(CAST(0.5 AS DOUBLE) * (all_n - 1)) THEN mfe_r END) AS mfe_r_p50_lo,
        MAX(CASE WHEN all_mfe_pos = CEIL(CAST(0.5 AS DOUBLE) * (all_n - 1)) THEN mfe_r END) AS mfe_r_p50_hi,
        CAST(0.5 AS DOUBLE) * (all_n - 1) - FLOOR(CAST(0.5 AS DOUBLE) * (all_n - 1)) AS mfe_r_p50_frac
    FROM mae_quantile_points
    GROUP BY outcome, all_n
),
picks AS (
    SELECT CAST(0 AS BIGINT) AS all_levels, level_picks.* FROM level_picks
    UNION ALL
    SELECT CAST(1 AS BIGINT) AS all_levels, CAST(NULL AS DOUBLE) AS stop_atr, all_picks.* FROM all_picks
)
SELECT
    CASE WHEN s.all_levels = 0 THEN s.stop_atr END AS stop_atr,
    s.outcome,
    s.trades,
    s.mae_r_mean,
    q.mae_r_p10_lo + (q.mae_r_p10_hi - q.mae_r_p10_lo) * q.mae_r_p10_frac AS mae_r_p10,
    q.mae_r_p25_lo + (q.mae_r_p25_hi - q.mae_r_p25_lo) * q.mae_r_p25_frac AS mae_r_p25,
    q.mae_r_p50_lo + (q.mae_r_p50_hi - q.mae_r_p50_lo) * q.mae_r_p50_frac AS mae_r_p50,
    q.mae_r_p75_lo + (q.mae_r_p75_hi - q.mae_r_p75_lo) * q.mae_r_p75_frac AS mae_r_p75,
    q.mae_r_p90_lo + (q.mae_r_p90_hi - q.mae_r_p90_lo) * q.mae_r_p90_frac AS mae_r_p90,
    s.mae_r_max,
    s.mfe_r_mean,
    q.mfe_r_p50_lo + (q.mfe_r_p50_hi - q.mfe_r_p50_lo) * q.mfe_r_p50_frac AS mfe_r_p50
FROM sums s
LEFT JOIN picks q
    ON q.all_levels = s.all_levels
    AND q.outcome = s.outcome
    AND (s.all_levels = 1 OR q.stop_atr = s.stop_atr)
ORDER BY CASE WHEN s.all_levels = 0 THEN s.stop_atr END NULLS LAST, s.outcome DESC
