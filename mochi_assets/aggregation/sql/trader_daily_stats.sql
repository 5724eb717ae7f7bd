-- Sums and means of doubles go through DECIMAL(38, 18): exact sums, so results do not depend on
-- the order in which the engine's threads add rows (identical runs give identical bytes).
-- Mean and centred sum of squares of each trader's daily series over ALL session dates of the
-- calendar (zeros included): the zero days contribute (sessions - active_sessions) * mean^2.
-- Two passes (mean first) keep the variance numerically stable.
SELECT
    d.trader_id,
    m.sessions,
    m.active_sessions,
    m.daily_mean,
    CAST(SUM(CAST((d.r - m.daily_mean) * (d.r - m.daily_mean) AS DECIMAL(38, 18))) AS DOUBLE)
        + (m.sessions - m.active_sessions) * m.daily_mean * m.daily_mean AS daily_sum_sq_dev
FROM trader_daily d
JOIN (
    SELECT
        t.trader_id,
        c.sessions,
        COUNT(*) AS active_sessions,
        CAST(SUM(CAST(t.r AS DECIMAL(38, 18))) AS DOUBLE) / c.sessions AS daily_mean
    FROM trader_daily t
    CROSS JOIN (SELECT CAST(COUNT(*) AS DOUBLE) AS sessions FROM sessions) c
    GROUP BY t.trader_id, c.sessions
) m ON m.trader_id = d.trader_id
GROUP BY d.trader_id, m.sessions, m.active_sessions, m.daily_mean
