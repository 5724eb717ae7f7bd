-- Sums and means of doubles go through DECIMAL(38, 18): exact sums, so results do not depend on
-- the order in which the engine's threads add rows (identical runs give identical bytes).
-- How far trades went against the position before closing, in R (multiples of the initial risk
-- stop_atr * ATR), for eventual winners (pnl > 0) and losers (pnl <= 0). The risk is recovered
-- from the trade itself as pnl / r, so trades with r = 0 (pnl exactly 0) have no mae_r.
-- Rows per stop_atr level and outcome, plus one row per outcome over all levels (stop_atr NULL),
-- in one pass (GROUPING SETS). The decimals of the means are cast once per trade, in excursions
-- (cast inside the aggregates, DuckDB casts them again for each grouping set).
-- Quantiles are exact: QUANTILE_CONT (DuckDB's PERCENTILE_CONT, here with a list of fractions so
-- that each group's values are gathered once) interpolates linearly between the values at 0-based
-- positions FLOOR(q * (n - 1)) and CEIL(q * (n - 1)) of the n non-NULL values in order (NULL when
-- a group has none). For Trino, which has only approximate percentiles, the engine rewrites each
-- one into the same interpolation over the group's sorted values
-- (mochi_resources.trino_engine.to_trino).
WITH excursions AS (
    SELECT
        tr.stop_atr,
        CASE WHEN t.pnl > 0 THEN 'win' ELSE 'loss' END AS outcome,
        CASE WHEN t.r <> 0 THEN t.mae * t.r / t.pnl END AS mae_r,
        CASE WHEN t.r <> 0 THEN t.mfe * t.r / t.pnl END AS mfe_r,
        CAST(CASE WHEN t.r <> 0 THEN t.mae * t.r / t.pnl END AS DECIMAL(38, 18)) AS mae_r_d,
        CAST(CASE WHEN t.r <> 0 THEN t.mfe * t.r / t.pnl END AS DECIMAL(38, 18)) AS mfe_r_d
    FROM trades t
    JOIN traders tr ON tr.trader_id = t.trader_id
),
profile AS (
    SELECT
        CASE WHEN GROUPING(stop_atr) = 0 THEN stop_atr END AS stop_atr,
        outcome,
        COUNT(*) AS trades,
        CAST(AVG(mae_r_d) AS DOUBLE) AS mae_r_mean,
        QUANTILE_CONT(mae_r, [0.1, 0.25, 0.5, 0.75, 0.9]) AS mae_r_q,
        MAX(mae_r) AS mae_r_max,
        CAST(AVG(mfe_r_d) AS DOUBLE) AS mfe_r_mean,
        QUANTILE_CONT(mfe_r, 0.5) AS mfe_r_p50
    FROM excursions
    GROUP BY GROUPING SETS ((stop_atr, outcome), (outcome))
)
SELECT
    stop_atr,
    outcome,
    trades,
    mae_r_mean,
    mae_r_q[1] AS mae_r_p10,
    mae_r_q[2] AS mae_r_p25,
    mae_r_q[3] AS mae_r_p50,
    mae_r_q[4] AS mae_r_p75,
    mae_r_q[5] AS mae_r_p90,
    mae_r_max,
    mfe_r_mean,
    mfe_r_p50
FROM profile
ORDER BY stop_atr NULLS LAST, outcome DESC
