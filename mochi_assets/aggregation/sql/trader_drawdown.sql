-- Maximum drawdown of each trader's cumulative pnl in trade order (one position at a time, so
-- entry order is exit order). The running peak starts at 0: an opening loss is a drawdown.
--
-- The pnl is summed as DECIMAL(38, 18) (exact, like the other files' sums): every sum and every
-- comparison below is exact integer arithmetic on the decimals, so the result cannot depend on
-- the order in which threads add rows, and reruns are byte-identical.
--
-- Written for speed over millions of trades: running SUM / MAX windows over every trade cost
-- DuckDB several seconds (a framed window aggregate costs ~0.5 us per row even on doubles), while
-- ROW_NUMBER and LEAD (one sort) are cheap. So the trades are summarized in two levels and only
-- the ~32x fewer group rows go through the framed windows:
--
-- 1. A trader's trades are numbered (k = 0, 1, ...) and cut into blocks of 8 consecutive trades,
--    gathered as doubles by the numbering window itself (LEAD 1..7 over the same PARTITION BY /
--    ORDER BY; the rows with k % 8 = 0 start the blocks), cast once per trade. A missing slot of
--    the last block (LEAD past the end: NULL) adds 0 and repeats the previous point, which
--    changes no drawdown. Per block, from the equity points relative to the block's start
--    (c = prefix sums of its trades): c (the block's total), hi and lo (the highest and lowest
--    point) and dd (the largest drop from a point to a later one within the block, at least 0),
--    added up point by point (t0 .. t7).
-- 2. Blocks are gathered 4 at a time the same way (LEAD 1..3 over the blocks; a missing block is
--    0, 0, 0, 0: the previous point repeated) and composed (u0 .. u3): with o the equity at the
--    start of a block relative to the group, the group's top is max(o + hi), its bottom
--    min(o + lo), and its internal drop max(dd of each block, top of the earlier blocks minus
--    o + lo of the block).
-- 3. Over the groups (k % 32 = 0): s, the equity before the group, and peak_in, the running peak
--    before the group (at least 0). The deepest drawdown inside a group is
--    max(peak_in - s - bottom, internal drop): max(peak_in, s + running max) - (s + point) over
--    its points, split into its two terms.
WITH numbered AS (
    SELECT
        trader_id,
        ROW_NUMBER() OVER (PARTITION BY trader_id ORDER BY entry_ts) - 1 AS k,
        pnl AS p0,
        LEAD(pnl, 1) OVER (PARTITION BY trader_id ORDER BY entry_ts) AS p1,
        LEAD(pnl, 2) OVER (PARTITION BY trader_id ORDER BY entry_ts) AS p2,
        LEAD(pnl, 3) OVER (PARTITION BY trader_id ORDER BY entry_ts) AS p3,
        LEAD(pnl, 4) OVER (PARTITION BY trader_id ORDER BY entry_ts) AS p4,
        LEAD(pnl, 5) OVER (PARTITION BY trader_id ORDER BY entry_ts) AS p5,
        LEAD(pnl, 6) OVER (PARTITION BY trader_id ORDER BY entry_ts) AS p6,
        LEAD(pnl, 7) OVER (PARTITION BY trader_id ORDER BY entry_ts) AS p7
    FROM trades
),
slots AS (
    SELECT
        trader_id,
        k,
        CAST(p0 AS DECIMAL(38, 18)) AS c0,
        COALESCE(CAST(p1 AS DECIMAL(38, 18)), 0) AS d1,
        COALESCE(CAST(p2 AS DECIMAL(38, 18)), 0) AS d2,
        COALESCE(CAST(p3 AS DECIMAL(38, 18)), 0) AS d3,
        COALESCE(CAST(p4 AS DECIMAL(38, 18)), 0) AS d4,
        COALESCE(CAST(p5 AS DECIMAL(38, 18)), 0) AS d5,
        COALESCE(CAST(p6 AS DECIMAL(38, 18)), 0) AS d6,
        COALESCE(CAST(p7 AS DECIMAL(38, 18)), 0) AS d7
    FROM numbered
    WHERE k % 8 = 0
),
t0 AS (SELECT trader_id, k, c0 AS c, c0 AS hi, c0 AS lo, c0 - c0 AS dd, d1, d2, d3, d4, d5, d6, d7 FROM slots),
t1 AS (SELECT trader_id, k, c + d1 AS c, GREATEST(hi, c + d1) AS hi, LEAST(lo, c + d1) AS lo, GREATEST(dd, GREATEST(hi, c + d1) - (c + d1)) AS dd, d2, d3, d4, d5, d6, d7 FROM t0),
t2 AS (SELECT trader_id, k, c + d2 AS c, GREATEST(hi, c + d2) AS hi, LEAST(lo, c + d2) AS lo, GREATEST(dd, GREATEST(hi, c + d2) - (c + d2)) AS dd, d3, d4, d5, d6, d7 FROM t1),
t3 AS (SELECT trader_id, k, c + d3 AS c, GREATEST(hi, c + d3) AS hi, LEAST(lo, c + d3) AS lo, GREATEST(dd, GREATEST(hi, c + d3) - (c + d3)) AS dd, d4, d5, d6, d7 FROM t2),
t4 AS (SELECT trader_id, k, c + d4 AS c, GREATEST(hi, c + d4) AS hi, LEAST(lo, c + d4) AS lo, GREATEST(dd, GREATEST(hi, c + d4) - (c + d4)) AS dd, d5, d6, d7 FROM t3),
t5 AS (SELECT trader_id, k, c + d5 AS c, GREATEST(hi, c + d5) AS hi, LEAST(lo, c + d5) AS lo, GREATEST(dd, GREATEST(hi, c + d5) - (c + d5)) AS dd, d6, d7 FROM t4),
t6 AS (SELECT trader_id, k, c + d6 AS c, GREATEST(hi, c + d6) AS hi, LEAST(lo, c + d6) AS lo, GREATEST(dd, GREATEST(hi, c + d6) - (c + d6)) AS dd, d7 FROM t5),
t7 AS (SELECT trader_id, k, c + d7 AS c, GREATEST(hi, c + d7) AS hi, LEAST(lo, c + d7) AS lo, GREATEST(dd, GREATEST(hi, c + d7) - (c + d7)) AS dd FROM t6),
blocks AS (
    SELECT
        trader_id,
        k,
        c AS c0, hi AS hi0, lo AS lo0, dd AS dd0,
        COALESCE(LEAD(c, 1) OVER (PARTITION BY trader_id ORDER BY k), 0) AS c1,
        COALESCE(LEAD(hi, 1) OVER (PARTITION BY trader_id ORDER BY k), 0) AS hi1,
        COALESCE(LEAD(lo, 1) OVER (PARTITION BY trader_id ORDER BY k), 0) AS lo1,
        COALESCE(LEAD(dd, 1) OVER (PARTITION BY trader_id ORDER BY k), 0) AS dd1,
        COALESCE(LEAD(c, 2) OVER (PARTITION BY trader_id ORDER BY k), 0) AS c2,
        COALESCE(LEAD(hi, 2) OVER (PARTITION BY trader_id ORDER BY k), 0) AS hi2,
        COALESCE(LEAD(lo, 2) OVER (PARTITION BY trader_id ORDER BY k), 0) AS lo2,
        COALESCE(LEAD(dd, 2) OVER (PARTITION BY trader_id ORDER BY k), 0) AS dd2,
        COALESCE(LEAD(c, 3) OVER (PARTITION BY trader_id ORDER BY k), 0) AS c3,
        COALESCE(LEAD(hi, 3) OVER (PARTITION BY trader_id ORDER BY k), 0) AS hi3,
        COALESCE(LEAD(lo, 3) OVER (PARTITION BY trader_id ORDER BY k), 0) AS lo3,
        COALESCE(LEAD(dd, 3) OVER (PARTITION BY trader_id ORDER BY k), 0) AS dd3
    FROM t7
),
u0 AS (SELECT trader_id, k, c0 AS o, hi0 AS top, lo0 AS bot, dd0 AS dd, c1, hi1, lo1, dd1, c2, hi2, lo2, dd2, c3, hi3, lo3, dd3 FROM blocks WHERE k % 32 = 0),
u1 AS (SELECT trader_id, k, o + c1 AS o, GREATEST(top, o + hi1) AS top, LEAST(bot, o + lo1) AS bot, GREATEST(dd, dd1, top - (o + lo1)) AS dd, c2, hi2, lo2, dd2, c3, hi3, lo3, dd3 FROM u0),
u2 AS (SELECT trader_id, k, o + c2 AS o, GREATEST(top, o + hi2) AS top, LEAST(bot, o + lo2) AS bot, GREATEST(dd, dd2, top - (o + lo2)) AS dd, c3, hi3, lo3, dd3 FROM u1),
u3 AS (SELECT trader_id, k, o + c3 AS o, GREATEST(top, o + hi3) AS top, LEAST(bot, o + lo3) AS bot, GREATEST(dd, dd3, top - (o + lo3)) AS dd FROM u2),
starts AS (
    SELECT trader_id, k, top, bot, dd, o,
        COALESCE(SUM(o) OVER (PARTITION BY trader_id ORDER BY k ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS s
    FROM u3
),
peaks AS (
    SELECT trader_id, s, bot, dd,
        GREATEST(0, COALESCE(MAX(s + top) OVER (PARTITION BY trader_id ORDER BY k ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0)) AS peak_in
    FROM starts
)
SELECT trader_id, CAST(MAX(GREATEST(peak_in - s - bot, dd)) AS DOUBLE) AS max_drawdown
FROM peaks
GROUP BY trader_id

