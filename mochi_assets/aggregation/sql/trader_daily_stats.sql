-- Mean and centred sum of squares of each trader's daily series over ALL session dates of the
-- calendar (zeros included): the zero days contribute (sessions - active_sessions) * mean^2.
-- Two passes (mean first) keep the variance numerically stable.
SELECT
    d.trader_id,
    m.sessions,
    m.active_sessions,
    m.daily_mean,
    SUM((d.r - m.daily_mean) * (d.r - m.daily_mean))
        + (m.sessions - m.active_sessions) * m.daily_mean * m.daily_mean AS daily_sum_sq_dev
FROM trader_daily d
JOIN (
    SELECT
        t.trader_id,
        c.sessions,
        COUNT(*) AS active_sessions,
        SUM(t.r) / c.sessions AS daily_mean
    FROM trader_daily t
    CROSS JOIN (SELECT CAST(COUNT(*) AS DOUBLE) AS sessions FROM sessions) c
    GROUP BY t.trader_id, c.sessions
) m ON m.trader_id = d.trader_id
GROUP BY d.trader_id, m.sessions, m.active_sessions, m.daily_mean
