-- Sums and means of doubles go through DECIMAL(38, 18): exact sums, so results do not depend on
-- the order in which the engine's threads add rows (identical runs give identical bytes).
-- Mean and centred sum of squares of each trader's daily series over ALL session dates of the
-- calendar (zeros included): the zero days contribute (sessions - active_sessions) * mean^2.
-- Two passes (mean first) keep the variance numerically stable.
-- A trader's daily series is the r of its trade on each session date it traded: a trader holds at
-- most one trade per session date (docs/strategy.md; tables.daily_matrix checks it on the rows the
-- DSR reads), so a day's sum is that one trade's r and the trades themselves are the series'
-- non-zero part. Session dates without a trade are zeros and have no row.
SELECT
    d.trader_id,
    m.sessions,
    m.active_sessions,
    m.daily_mean,
    CAST(SUM(CAST((d.r - m.daily_mean) * (d.r - m.daily_mean) AS DECIMAL(38, 18))) AS DOUBLE)
        + (m.sessions - m.active_sessions) * m.daily_mean * m.daily_mean AS daily_sum_sq_dev
FROM trades d
JOIN (
    SELECT
        t.trader_id,
        c.sessions,
        COUNT(*) AS active_sessions,
        CAST(SUM(CAST(t.r AS DECIMAL(38, 18))) AS DOUBLE) / c.sessions AS daily_mean
    FROM trades t
    CROSS JOIN (SELECT CAST(COUNT(*) AS DOUBLE) AS sessions FROM sessions) c
    GROUP BY t.trader_id, c.sessions
) m ON m.trader_id = d.trader_id
GROUP BY d.trader_id, m.sessions, m.active_sessions, m.daily_mean
