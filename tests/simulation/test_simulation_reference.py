"""The kernel against the pure-Python reference on random small markets, plus properties."""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path
from zoneinfo import ZoneInfo

import numba
import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sim_reference import REF_CALENDARS, make_bars, make_traders, reference_trades, session_of

from mochi_assets.market_data.sessions import parse_session
from mochi_assets.aggregation.outcomes import trader_outcomes
from mochi_assets.simulation.api import TRADE_COLUMNS, simulate, simulate_to_parquet

TICK = 0.25
STARTS = [
    dt.datetime(2024, 3, 4, 13, 0, tzinfo=dt.timezone.utc),
    dt.datetime(2024, 11, 3, 4, 30, tzinfo=dt.timezone.utc),  # New York falls back at 06:00 UTC
    dt.datetime(2024, 3, 10, 5, 0, tzinfo=dt.timezone.utc),  # New York springs forward at 07:00 UTC
]
SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@st.composite
def markets(draw, max_bars: int = 45):
    """(bars, timezone, calendar): prices on the tick grid so levels are often touched exactly;
    jumps between bars gap through levels; time steps from a minute to half a day leave holes.
    The session calendar is drawn too: calendar days, forex (Sunday-evening reopen, day rolling
    at 17:00 New York), US equity hours (bars outside them dropped) or crypto UTC days."""
    calendar = draw(st.sampled_from(list(REF_CALENDARS)))
    timezone = draw(st.sampled_from(["UTC", "America/New_York"]))
    n = draw(st.integers(1, max_bars))
    start = draw(st.sampled_from(STARTS))
    steps = draw(st.lists(st.sampled_from([1, 1, 1, 1, 2, 3, 5, 15, 60, 240, 720]), min_size=n, max_size=n))
    ts, opens, highs, lows, closes = [], [], [], [], []
    t = start
    price = 400  # in ticks
    for i in range(n):
        t = t + dt.timedelta(minutes=steps[i], seconds=draw(st.sampled_from([0, 0, 0, 30])))
        price += draw(st.integers(-3, 3)) + draw(st.sampled_from([0, 0, 0, 0, -12, 12]))
        close = price + draw(st.integers(-4, 4))
        high = max(price, close) + draw(st.integers(0, 4))
        low = min(price, close) - draw(st.integers(0, 4))
        ts.append(t)
        opens.append(price * TICK)
        highs.append(high * TICK)
        lows.append(low * TICK)
        closes.append(close * TICK)
        price = close
    dates = sorted({d for d in (session_of(x, calendar, timezone) for x in ts) if d is not None})
    atr_values = draw(
        st.lists(st.sampled_from([None, 0.5, 1.0, 1.0, 2.0, 0.75]), min_size=len(dates), max_size=len(dates))
    )
    bars = make_bars(ts, opens, highs, lows, closes, timezone, dict(zip(dates, atr_values)), session=calendar)
    return bars, timezone, calendar


def kernel_calendar(timezone: str, calendar: str):
    return parse_session(calendar, timezone)


trader_rows = st.fixed_dictionaries(
    {
        "direction": st.sampled_from(["long", "short"]),
        "entry_time": st.builds(
            lambda h, m: f"{h:02d}:{m:02d}", st.integers(0, 23), st.sampled_from([0, 1, 15, 30, 45])
        ),
        "offset_ticks": st.integers(-6, 6),
        "stop_atr": st.sampled_from([0.25, 0.5, 1.0, 1.5]),
        "limit_atr": st.sampled_from([0.25, 0.5, 1.0, 2.0]),
        "duration_min": st.sampled_from([1, 2, 5, 30, 120, 600, 3000]),
        "timeout_min": st.sampled_from([1, 2, 5, 30, 240, 2000]),
        "cost_ticks": st.sampled_from([0.0, 1.0, 2.5]),
    }
)
trader_tables = st.lists(trader_rows, min_size=1, max_size=5).map(make_traders)


def assert_same_trades(kernel: pl.DataFrame, expected: list[dict]) -> None:
    got = kernel.to_dicts()
    assert len(got) == len(expected), (got, expected)
    for g, e in zip(got, expected):
        assert g == e


@SETTINGS
@given(market=markets(), traders=trader_tables)
def test_kernel_matches_reference(market, traders):
    bars, timezone, calendar = market
    expected, _ = reference_trades(bars, traders, TICK, timezone, calendar)
    assert_same_trades(simulate(bars, traders, tick_size=TICK, session=kernel_calendar(timezone, calendar)), expected)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(market=markets(), traders=trader_tables)
def test_parquet_report_matches_reference(market, traders):
    bars, timezone, calendar = market
    expected, ambiguous = reference_trades(bars, traders, TICK, timezone, calendar)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "trades.parquet"
        report = simulate_to_parquet(bars, traders, path, tick_size=TICK, session=kernel_calendar(timezone, calendar),
                                     chunk_size=2)
        written = pl.read_parquet(path)
    assert written.columns == TRADE_COLUMNS
    assert_same_trades(written, expected)
    assert report.trades == len(expected)
    assert report.ambiguous_bars == ambiguous
    assert report.traders == traders.height
    for reason in ("stop", "limit", "time", "end"):
        assert report.exit_reasons[reason] == sum(1 for t in expected if t["exit_reason"] == reason)
    # the traders' outcomes (every trader, in trader order; chunks of 2) are those of the written trades
    outcomes = report.outcomes
    assert outcomes["trader_id"].to_list() == traders["trader_id"].to_list()
    from_rows = trader_outcomes(written)
    joined = outcomes.join(from_rows, on="trader_id", how="left", suffix="_rows").fill_null(0)
    assert joined["trades"].to_list() == joined["trades_rows"].to_list()
    assert joined["outcome_hash"].to_list() == joined["outcome_hash_rows"].to_list()
    assert joined["max_drawdown"].to_list() == joined["max_drawdown_rows"].to_list()


@SETTINGS
@given(market=markets(), traders=trader_tables, data=st.data())
def test_no_look_ahead(market, traders, data):
    """Trades of a prefix of the bars that did not exit at the end of data are final."""
    bars, timezone, calendar = market
    session = kernel_calendar(timezone, calendar)
    cut = data.draw(st.integers(0, bars.height))
    prefix = simulate(bars.head(cut), traders, tick_size=TICK, session=session)
    full = simulate(bars, traders, tick_size=TICK, session=session)
    final = prefix.filter(pl.col("exit_reason") != "end")
    assert final.join(full, on=TRADE_COLUMNS, how="anti").height == 0
    # And nothing before a provisional trade changes: the full run holds exactly those trades.
    for trader_id in traders["trader_id"]:
        mine = prefix.filter(pl.col("trader_id") == trader_id)
        done = mine.filter(pl.col("exit_reason") != "end")
        first_full = full.filter(pl.col("trader_id") == trader_id).head(done.height)
        assert first_full.equals(done)


def random_market(seed: int, n_bars: int) -> pl.DataFrame:
    """A few weeks of minute bars with holes, weekends and gaps, for the bigger property tests."""
    rng = np.random.default_rng(seed)
    steps = rng.choice([1, 1, 1, 1, 2, 5, 90], size=n_bars)
    ts_min = np.cumsum(steps)
    base = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
    ts = [base + dt.timedelta(minutes=int(m)) for m in ts_min]
    jumps = rng.normal(0, 2, n_bars) + rng.choice([0, 0, 0, 0, 0, 0, 0, 0, 15, -15], size=n_bars)
    opens = 4000 + np.round(np.cumsum(jumps))
    closes = opens + np.round(rng.normal(0, 3, n_bars))
    highs = np.maximum(opens, closes) + np.round(rng.exponential(2, n_bars))
    lows = np.minimum(opens, closes) - np.round(rng.exponential(2, n_bars))
    dates = sorted({t.date() for t in ts})
    atr = {d: (None if i < 2 else float(rng.choice([3.0, 5.0, 8.0]))) for i, d in enumerate(dates)}
    return make_bars(ts, list(opens * TICK), list(highs * TICK), list(lows * TICK), list(closes * TICK), "UTC", atr)


def random_traders(seed: int, count: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    rows = [
        {
            "direction": str(rng.choice(["long", "short"])),
            "entry_time": f"{int(rng.integers(0, 24)):02d}:{int(rng.choice([0, 30])):02d}",
            "offset_ticks": int(rng.integers(-8, 9)),
            "stop_atr": float(rng.choice([0.5, 1.0, 2.0])),
            "limit_atr": float(rng.choice([0.5, 1.0, 3.0])),
            "duration_min": int(rng.choice([5, 60, 240, 2000])),
            "timeout_min": int(rng.choice([1, 10, 60])),
            "cost_ticks": float(rng.choice([0.0, 2.0])),
        }
        for _ in range(count)
    ]
    return make_traders(rows).sample(fraction=1.0, shuffle=True, seed=seed)


@pytest.fixture(scope="module")
def big_case():
    bars = random_market(7, 12_000)
    traders = random_traders(7, 60)
    return bars, traders, simulate(bars, traders, tick_size=TICK, timezone="UTC")


def test_bigger_case_matches_reference(big_case):
    bars, traders, trades = big_case
    few = traders.sort("trader_id").head(6)
    expected, _ = reference_trades(bars, few, TICK, "UTC")
    assert_same_trades(trades.filter(pl.col("trader_id").is_in(few["trader_id"].implode())), expected)


def test_deterministic_across_chunks_and_threads(big_case):
    bars, traders, trades = big_case
    assert trades.height > 1000
    for chunk_size in (1, 7, 1000):
        assert simulate(bars, traders, tick_size=TICK, timezone="UTC", chunk_size=chunk_size).equals(trades)
    before = numba.get_num_threads()
    try:
        for threads in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
            numba.set_num_threads(threads)
            assert simulate(bars, traders, tick_size=TICK, timezone="UTC", chunk_size=16).equals(trades)
    finally:
        numba.set_num_threads(before)


def test_order_and_one_trade_per_session(big_case):
    _, traders, trades = big_case
    assert trades["trader_id"].is_sorted()
    per_trader = trades.group_by("trader_id").agg(
        pl.col("entry_ts").is_sorted().alias("sorted"),
        pl.col("session_date").n_unique().alias("days"),
        pl.len().alias("n"),
        # One position at a time: each entry is after the previous exit.
        (pl.col("entry_ts").shift(-1) > pl.col("exit_ts")).all().alias("apart"),
    )
    assert per_trader["sorted"].all()
    assert (per_trader["days"] == per_trader["n"]).all()
    assert per_trader["apart"].all()


def test_invariants(big_case):
    bars, traders, trades = big_case
    bar_cols = bars.select("ts", "open", "high", "low")
    session_atr = bars.group_by("session_date").agg(pl.col("atr").first().alias("session_atr"))
    joined = (
        trades.join(traders.select("trader_id", "direction", "stop_atr", "cost_ticks"), on="trader_id")
        .join(session_atr, on="session_date")
        .join(bar_cols.rename(lambda c: f"in_{c}"), left_on="entry_ts", right_on="in_ts")
        .join(bar_cols.rename(lambda c: f"out_{c}"), left_on="exit_ts", right_on="out_ts")
    )
    assert joined.height == trades.height
    assert (joined["exit_ts"] >= joined["entry_ts"]).all()
    assert (joined["bars_held"] >= 0).all()
    assert ((joined["mae"] >= 0) & (joined["mfe"] >= 0)).all()
    # Fills and exits lie inside their bar's range (a gap fill is at the open, also inside).
    assert joined.filter(
        (pl.col("entry_price") > pl.col("in_high")) | (pl.col("entry_price") < pl.col("in_low"))
    ).is_empty()
    assert joined.filter(
        (pl.col("exit_price") > pl.col("out_high")) | (pl.col("exit_price") < pl.col("out_low"))
    ).is_empty()
    # A stop exit loses at most the initial risk plus costs, unless the exit bar gapped through.
    stops = joined.filter(pl.col("exit_reason") == "stop").with_columns(
        (pl.col("pnl") + pl.col("stop_atr") * pl.col("session_atr") + pl.col("cost_ticks") * TICK).alias("slack"),
        (pl.col("exit_price") == pl.col("out_open")).alias("gapped"),
    )
    assert stops.height > 0
    assert stops.filter(~pl.col("gapped") & (pl.col("slack").abs() > 1e-9)).is_empty()
    assert stops.filter(pl.col("gapped") & (pl.col("slack") > 1e-9)).is_empty()
    assert set(trades["exit_reason"].unique()) >= {"stop", "limit", "time"}


def test_parquet_matches_simulate(big_case, tmp_path):
    bars, traders, trades = big_case
    progress: list[tuple[int, int]] = []
    path = tmp_path / "trades.parquet"
    report = simulate_to_parquet(
        bars, traders, path, tick_size=TICK, timezone="UTC", chunk_size=25, progress=lambda d, t: progress.append((d, t))
    )
    assert pl.read_parquet(path).equals(trades)
    assert progress[-1] == (60, 60)
    assert report.outcomes.filter(pl.col("trades") > 0).equals(trader_outcomes(trades))
    assert [d for d, _ in progress] == sorted(d for d, _ in progress)
    assert report.trades == trades.height
    assert report.fills_per_session == pytest.approx(trades.height / (60 * report.sessions))
    assert sum(report.exit_reasons.values()) == trades.height
    meta = report.as_metadata()
    assert meta["trades"] == trades.height and "exits_stop" in meta
    assert not list(tmp_path.glob(".*partial"))
