-- Maximum drawdown of each trader's cumulative pnl in trade order (one position at a time, so
-- entry order is exit order). The running peak starts at 0: an opening loss is a drawdown.
--
-- Written for speed over millions of trades: a running SUM and a running MAX window over every
-- trade cost DuckDB several seconds, while ROW_NUMBER and LEAD (one sort) are cheap. So a trader's trades
-- are numbered (k = 0, 1, ...) and cut into blocks of 8 consecutive trades; inside a block the
-- running sums are prefix sums of the block's slots (c0 .. c7: the pnl of its trades up to slot j,
-- relative to the block's start; a missing slot of the last block adds 0 and repeats the previous
-- point, which changes no drawdown), and only the ~8x fewer block rows go through the windows:
-- s, the equity before the block, and peak_in, the running peak before the block (at least 0).
-- The drawdown after the block's trade j is max(peak_in, s + max(c0..cj)) - (s + cj), written
-- below as GREATEST(peak_in - s, c0, .., cj) - cj.
--
-- The pnl is summed as DECIMAL(38, 18) (exact, like the other files' sums): the block sums and the
-- running sum then cannot depend on the order threads add rows in, so reruns are byte-identical.
-- The block's pnl values are gathered as doubles by the numbering window itself (LEAD 1..7 over
-- the same PARTITION BY / ORDER BY: one sort, no GROUP BY; the rows with k % 8 = 0 start the
-- blocks), then cast and added up per block: one cast per trade, and a smaller sort than carrying
-- decimals through it. A missing slot of the last block (LEAD past the end: NULL) is 0. The sums
-- are the same exact decimals as conditional sums per slot.
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
    SELECT trader_id, k AS block_start, p0, p1, p2, p3, p4, p5, p6, p7
    FROM numbered
    WHERE k % 8 = 0
),
decimals AS (
    SELECT
        trader_id,
        block_start,
        CAST(p0 AS DECIMAL(38, 18)) AS d0,
        COALESCE(CAST(p1 AS DECIMAL(38, 18)), 0) AS d1,
        COALESCE(CAST(p2 AS DECIMAL(38, 18)), 0) AS d2,
        COALESCE(CAST(p3 AS DECIMAL(38, 18)), 0) AS d3,
        COALESCE(CAST(p4 AS DECIMAL(38, 18)), 0) AS d4,
        COALESCE(CAST(p5 AS DECIMAL(38, 18)), 0) AS d5,
        COALESCE(CAST(p6 AS DECIMAL(38, 18)), 0) AS d6,
        COALESCE(CAST(p7 AS DECIMAL(38, 18)), 0) AS d7
    FROM slots
),
blocks AS (
    SELECT
        trader_id,
        block_start,
        d0 AS c0,
        d0 + d1 AS c1,
        d0 + d1 + d2 AS c2,
        d0 + d1 + d2 + d3 AS c3,
        d0 + d1 + d2 + d3 + d4 AS c4,
        d0 + d1 + d2 + d3 + d4 + d5 AS c5,
        d0 + d1 + d2 + d3 + d4 + d5 + d6 AS c6,
        d0 + d1 + d2 + d3 + d4 + d5 + d6 + d7 AS c7
    FROM decimals
),
starts AS (
    SELECT
        blocks.*,
        COALESCE(SUM(c7) OVER (
            PARTITION BY trader_id ORDER BY block_start
            ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0.0) AS s
    FROM blocks
),
peaks AS (
    SELECT
        starts.*,
        GREATEST(0.0, COALESCE(MAX(s + GREATEST(c0, c1, c2, c3, c4, c5, c6, c7)) OVER (
            PARTITION BY trader_id ORDER BY block_start
            ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0.0)) AS peak_in
    FROM starts
)
SELECT
    trader_id,
    CAST(MAX(GREATEST(
        GREATEST(peak_in - s, c0) - c0,
        GREATEST(peak_in - s, c0, c1) - c1,
        GREATEST(peak_in - s, c0, c1, c2) - c2,
        GREATEST(peak_in - s, c0, c1, c2, c3) - c3,
        GREATEST(peak_in - s, c0, c1, c2, c3, c4) - c4,
        GREATEST(peak_in - s, c0, c1, c2, c3, c4, c5) - c5,
        GREATEST(peak_in - s, c0, c1, c2, c3, c4, c5, c6) - c6,
        GREATEST(peak_in - s, c0, c1, c2, c3, c4, c5, c6, c7) - c7)) AS DOUBLE) AS max_drawdown
FROM peaks
GROUP BY trader_id
