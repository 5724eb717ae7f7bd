"""The bars steps' fast paths against slow, obvious references (what the code did before them).

- `validate_bars`: the one-pass check accepts exactly the tables the rule-by-rule checks accept,
  and returns the same table; broken tables still fail with the rule-by-rule message.
- `enhance_bars`: the sorted lookup of each bar's session equals an inner join and a sort; given
  session dates equal computed ones.
- `atr_lookahead_violations`: one ATR series read at each sample equals a Wilder ATR over the
  prefix of daily bars before the sample (the same bits), with or without given session dates.
- `atr_violations`, `suspicious_jumps`, `missing_sessions`: equal to the whole-table versions.
- The compiled scans (`market_data.scans`) in front of `ohlc_violations`, `timestamp_violations`,
  `suspicious_jumps` and `resolution_mismatches`: each check equals its rules run on every row;
  the ATR scan's refusals, and `atr_violations` with it equals the whole-table version above.
- `resample_bars`' compiled pass equals the polars group-by; `enhance_bars`' session spread equals
  the sorted lookup.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mochi_assets.market_data.bars import BAR_COLUMNS, validate_bars
from mochi_assets.market_data.checks import (
    _ROW,
    atr_lookahead_violations,
    atr_violations,
    missing_sessions,
    suspicious_jumps,
)
from mochi_assets.market_data.indicators import enhance_bars, wilder_atr
from mochi_assets.market_data.sessions import assign_sessions, parse_session, session_date_expr, session_dates
from mochi_assets.market_data.synthetic import synthetic_minute_bars
from mochi_resources.errors import BarsError

NY = "America/New_York"
FOREX = parse_session("forex", NY)


@pytest.fixture(scope="module")
def minute() -> pl.DataFrame:
    # crosses the March clock change of New York
    return synthetic_minute_bars("SYN:GOLD", dt.date(2024, 2, 1), dt.date(2024, 3, 20))


# --- validate_bars -----------------------------------------------------------------------------


def _rule_by_rule(df: pl.DataFrame, source: str) -> pl.DataFrame:
    """validate_bars with its one-pass shortcut switched off."""
    import mochi_assets.market_data.bars as bars_module

    original = bars_module._valid_and_increasing
    bars_module._valid_and_increasing = lambda out: False
    try:
        return bars_module.validate_bars(df, source)
    finally:
        bars_module._valid_and_increasing = original


_VALUES = st.one_of(
    st.floats(min_value=0.5, max_value=2.0), st.just(0.0), st.just(-1.0), st.just(float("nan")),
    st.just(float("inf")), st.none(),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.lists(st.tuples(st.integers(0, 6), _VALUES, _VALUES, _VALUES, _VALUES, _VALUES), min_size=1, max_size=8),
)
def test_validate_bars_one_pass_agrees_with_the_rules(rows):
    ts = [dt.datetime(2024, 1, 2, 10, m, tzinfo=dt.UTC) for m, *_ in rows]
    df = pl.DataFrame(
        {"ts": ts, **{c: [r[i + 1] for r in rows] for i, c in enumerate(BAR_COLUMNS[1:])}},
        schema={"ts": pl.Datetime("us", "UTC"), **{c: pl.Float64 for c in BAR_COLUMNS[1:]}},
    )
    try:
        expected = _rule_by_rule(df, "test")
    except BarsError as exc:
        with pytest.raises(BarsError) as got:
            validate_bars(df, "test")
        assert str(got.value) == str(exc)
        return
    got = validate_bars(df, "test")
    assert got.equals(expected)
    assert got["ts"].is_sorted()


def test_validate_bars_fast_path_on_real_bars(minute):
    assert validate_bars(minute, "x").equals(_rule_by_rule(minute, "x"))
    shuffled = minute.sample(fraction=1.0, shuffle=True, seed=3)
    assert validate_bars(shuffled, "x").equals(minute)


# --- enhance_bars ------------------------------------------------------------------------------


def _enhance_by_join(minute: pl.DataFrame, calendar, short, long, alpha, start=None, end=None) -> pl.DataFrame:
    """The join-and-sort version of enhance_bars."""
    bars = (
        minute.with_columns(session_date_expr(calendar).alias("session_date"))
        .filter(pl.col("session_date").is_not_null())
        .sort("ts")
    )
    daily = (
        bars.group_by("session_date", maintain_order=True)
        .agg(pl.col("high").max(), pl.col("low").min(), pl.col("close").last())
        .sort("session_date")
    )
    high, low, close = (daily[c].to_numpy() for c in ("high", "low", "close"))
    indicators = (
        daily.select("session_date")
        .with_columns(pl.Series("atr_short", wilder_atr(high, low, close, short)).shift(1),
                      pl.Series("atr_long", wilder_atr(high, low, close, long)).shift(1))
        .with_columns(pl.col("atr_short").fill_nan(None), pl.col("atr_long").fill_nan(None))
        .with_columns((alpha * pl.col("atr_short") + (1.0 - alpha) * pl.col("atr_long")).alias("atr"))
    )
    if start is not None:
        indicators = indicators.filter(pl.col("session_date") >= start)
    if end is not None:
        indicators = indicators.filter(pl.col("session_date") <= end)
    return bars.join(indicators, on="session_date", how="inner").sort("ts")


@pytest.mark.parametrize("spec, timezone", [("forex", NY), ("us-equity", NY), ("crypto", "UTC"),
                                            ("08:00-16:30/mon,wed,fri", "Europe/London"),
                                            ("18:00-17:00/sun-thu", "Asia/Tokyo")])
@pytest.mark.parametrize("window", [(None, None), (dt.date(2024, 3, 1), dt.date(2024, 3, 15)),
                                    (dt.date(2024, 3, 8), dt.date(2024, 3, 8))])
def test_enhance_bars_equals_join(minute, spec, timezone, window):
    calendar = parse_session(spec, timezone)
    start, end = window
    expected = _enhance_by_join(minute, calendar, 3, 5, 0.4, start, end)
    got = enhance_bars(minute, session=calendar, short=3, long=5, alpha=0.4, start=start, end=end)
    assert got.equals(expected)
    given_dates = session_dates(minute["ts"], calendar)
    again = enhance_bars(minute, session=calendar, short=3, long=5, alpha=0.4, start=start, end=end,
                         session_dates=given_dates)
    assert again.equals(expected)


def test_assign_sessions_sorts_unsorted_bars(minute):
    shuffled = minute.sample(fraction=1.0, shuffle=True, seed=5)
    assert assign_sessions(shuffled, FOREX).equals(assign_sessions(minute, FOREX))
    with pytest.raises(ValueError):
        assign_sessions(minute, FOREX, dates=session_dates(minute["ts"].head(3), FOREX))


# --- checks ------------------------------------------------------------------------------------


def _lookahead_by_prefix(enhanced, source, calendar, short, long, alpha, samples=12) -> pl.DataFrame:
    """The check's sample loop: a Wilder ATR over the daily bars before each sample."""
    sessions = (
        enhanced.filter(pl.col("atr").is_not_null()).group_by("session_date")
        .agg(pl.col("atr").first(), pl.col("ts").min().alias("first_ts")).sort("session_date")
    )
    step = max(1, sessions.height // samples)
    picked = sessions[::step].vstack(sessions.tail(1)).unique("session_date").sort("session_date")
    bars = (source.select(BAR_COLUMNS).sort("ts").with_columns(session_date_expr(calendar).alias("session_date"))
            .filter(pl.col("session_date").is_not_null()))
    daily = bars.group_by("session_date", maintain_order=True).agg(
        pl.col("high").max(), pl.col("low").min(), pl.col("close").last(), pl.col("ts").min().alias("first_ts"))
    high, low, close = (daily[c].to_numpy() for c in ("high", "low", "close"))
    rows = []
    for session_date, atr, first in picked.iter_rows():
        before = int(daily["first_ts"].search_sorted(first, side="left"))
        value = None
        if before > 0:
            blended = (alpha * wilder_atr(high[:before], low[:before], close[:before], short)[-1]
                       + (1.0 - alpha) * wilder_atr(high[:before], low[:before], close[:before], long)[-1])
            value = None if np.isnan(blended) else float(blended)
        if value is None or abs(value - atr) > 1e-9 * max(abs(atr), 1e-12):
            rows.append({"session_date": session_date, "atr": atr, "atr_recomputed": value,
                         "problem": "atr differs from the one recomputed from earlier bars only"})
    return pl.DataFrame(rows, schema={"session_date": pl.Date, "atr": pl.Float64, "atr_recomputed": pl.Float64,
                                      "problem": pl.Utf8})


@pytest.mark.parametrize("shift", [0, 1, -1])
def test_lookahead_check_equals_prefix_recomputation(minute, shift):
    enhanced = enhance_bars(minute, session=FOREX, short=3, long=6, alpha=0.3, start=dt.date(2024, 2, 20))
    if shift:  # a misaligned ATR (peeking or stale): every sample differs
        enhanced = enhanced.with_columns(pl.col("atr").shift(shift * 1500).over(pl.lit(1)))
    expected = _lookahead_by_prefix(enhanced, minute, FOREX, 3, 6, 0.3)
    got = atr_lookahead_violations(enhanced, session=FOREX, source=minute, short=3, long=6, alpha=0.3)
    assert got.equals(expected)
    given_dates = atr_lookahead_violations(enhanced, session=FOREX, source=minute, short=3, long=6, alpha=0.3,
                                           source_session_dates=session_dates(minute["ts"], FOREX))
    assert given_dates.equals(expected)
    assert (not expected.is_empty()) == bool(shift)


def test_lookahead_check_without_earlier_bars(minute):
    """Samples with no daily bar before them report a missing recomputation."""
    enhanced = enhance_bars(minute, session=FOREX, short=1, long=1, alpha=0.5)
    late = minute.filter(pl.col("ts") >= dt.datetime(2024, 3, 1, tzinfo=dt.UTC))
    got = atr_lookahead_violations(enhanced, session=FOREX, source=late, short=1, long=1, alpha=0.5)
    assert got.equals(_lookahead_by_prefix(enhanced, late, FOREX, 1, 1, 0.5))
    assert got["atr_recomputed"].null_count() > 0


def _atr_violations_whole_table(enhanced: pl.DataFrame, warmup_sessions=None) -> pl.DataFrame:
    """atr_violations looking at every row (the reasons of the check, joined on every row)."""
    sessions = (
        enhanced.group_by("session_date")
        .agg(pl.col("atr").n_unique().alias("_distinct"), pl.col("atr").is_not_null().any().alias("_defined"))
        .sort("session_date").with_row_index("_index")
    )
    if warmup_sessions is None:
        defined = sessions.filter(pl.col("_defined"))
        warmup = int(defined["_index"][0]) if defined.height else sessions.height
    else:
        warmup = warmup_sessions
    sessions = sessions.with_columns((pl.col("_index") >= warmup).alias("_after"))
    atr, after = pl.col("atr"), pl.col("_after")

    def reason(cond, text):
        return pl.when(cond.fill_null(False)).then(pl.lit(text))

    reasons = [reason(after & atr.is_null(), "atr null after warm-up"),
               reason(after & (atr.is_nan() | atr.is_infinite() | (atr <= 0)), "atr not a positive number"),
               reason(pl.col("_distinct") > 1, "atr varies within the session")]
    if warmup_sessions is not None:
        reasons.append(reason(~after & atr.is_not_null(), "atr defined during warm-up"))
    joined = enhanced.join(sessions.select("session_date", "_distinct", "_after"), on="session_date", how="left",
                           maintain_order="left")
    problem = pl.concat_str(reasons, separator="; ", ignore_nulls=True)
    return (
        joined.with_row_index(_ROW)
        .with_columns(pl.col(_ROW).cast(pl.Int64),
                      pl.when(pl.any_horizontal([r.is_not_null() for r in reasons])).then(problem).alias("problem"))
        .filter(pl.col("problem").is_not_null())
        .drop("_distinct", "_after")
    )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(
    edits=st.lists(st.tuples(st.integers(0, 10_000), st.sampled_from([None, float("nan"), -1.0, 0.0, 2.5,
                                                                      float("inf")])), max_size=6),
    warmup=st.one_of(st.none(), st.integers(0, 12)),
)
def test_atr_violations_equal_whole_table(minute, edits, warmup):
    enhanced = enhance_bars(minute.head(12_000), session=FOREX, short=2, long=4, alpha=0.5)
    for row, value in edits:
        row = row % enhanced.height
        enhanced = enhanced.with_columns(
            pl.when(pl.int_range(pl.len()) == row).then(pl.lit(value, pl.Float64)).otherwise(pl.col("atr"))
            .alias("atr"))
    assert atr_violations(enhanced, warmup_sessions=warmup).equals(
        _atr_violations_whole_table(enhanced, warmup_sessions=warmup))


@pytest.mark.parametrize("factor", [3.0, 0.3, 0.05, 0.0])
def test_suspicious_jumps_equal_whole_table(minute, factor):
    data = minute.sort("ts")
    daily = data.group_by(pl.col("ts").dt.date()).agg((pl.col("high").max() / pl.col("low").min()).log().alias("r"))
    typical = float(daily["r"].median())
    prev = pl.col("close").shift(1)
    move = pl.max_horizontal((pl.col("open") / prev).log().abs(), (pl.col("close") / prev).log().abs(),
                             (pl.col("high") / pl.col("low")).log())
    reason = pl.format("move of {}% in one bar, over {}x the median daily range {}%",
                       (pl.col("move") * 100).round(3), pl.lit(factor), round(typical * 100, 3))
    expected = (
        data.with_columns(move.alias("move"), pl.lit(typical).alias("typical_day"))
        .with_row_index(_ROW).with_columns(pl.col(_ROW).cast(pl.Int64),
                                           pl.when(pl.col("move") > factor * typical).then(reason).alias("problem"))
        .filter(pl.col("problem").is_not_null())
    )
    assert suspicious_jumps(minute, factor=factor).equals(expected)


def test_missing_sessions_with_given_dates(minute):
    holiday = minute.filter(session_date_expr(FOREX) != dt.date(2024, 2, 19))
    start, end = dt.date(2024, 2, 5), dt.date(2024, 3, 15)
    expected = missing_sessions(holiday, start, end, FOREX)
    assert expected["session_date"].to_list() == [dt.date(2024, 2, 19)]
    present = session_dates(holiday["ts"], FOREX).drop_nulls().unique()
    assert missing_sessions(holiday, start, end, FOREX, present=present).equals(expected)


def _resolution_by_group_by(minute: pl.DataFrame, coarse: pl.DataFrame, resolution: str) -> pl.DataFrame:
    """resolution_mismatches with a hash group-by per coarse bar (no run-length pass)."""
    import mochi_assets.market_data.checks as checks_module

    original = checks_module._per_bar
    checks_module._per_bar = lambda joined: joined.group_by("bar_ts").agg(
        pl.col("m_high").max().alias("minute_high"), pl.col("m_low").min().alias("minute_low"),
        pl.len().cast(pl.Int64).alias("minute_bars"))
    try:
        return checks_module.resolution_mismatches(minute, coarse, resolution)
    finally:
        checks_module._per_bar = original


@pytest.mark.parametrize("resolution, every", [("hour", "1h"), ("day", "1d")])
@pytest.mark.parametrize("nan", [False, True])
def test_resolution_mismatches_equal_group_by(minute, resolution, every, nan):
    from mochi_assets.market_data.bars import resample_bars
    from mochi_assets.market_data.checks import resolution_mismatches

    coarse = resample_bars(minute, every, NY)
    # broken coarse bars: highs too low, lows too high, bars missing (orphan minutes), an empty bar
    coarse = coarse.with_columns(
        pl.when(pl.int_range(pl.len()) % 7 == 3).then(pl.col("high") * 0.999).otherwise(pl.col("high")).alias("high"),
        pl.when(pl.int_range(pl.len()) % 11 == 5).then(pl.col("low") * 1.001).otherwise(pl.col("low")).alias("low"),
    ).filter(pl.int_range(pl.len()) % 13 != 2)
    extra = coarse.tail(1).with_columns(pl.col("ts") + pl.duration(days=400))
    coarse = pl.concat([coarse, extra])
    data = minute
    if nan:
        data = minute.with_columns(pl.when(pl.int_range(pl.len()) == 500).then(float("nan")).otherwise(pl.col("high"))
                                   .alias("high"))
    got = resolution_mismatches(data, coarse, resolution)
    assert got.height > 0
    assert got.equals(_resolution_by_group_by(data, coarse, resolution))


# --- the compiled scans in front of the asset checks' rules ------------------------------------


def _by_the_rules(check, *args, **kwargs):
    """A check with the scans of `market_data.scans` switched off: its polars rules on every row."""
    import mochi_assets.market_data.checks as checks_module

    saved = {name: getattr(checks_module, name) for name in
             ("bars_clean", "ts_increasing", "jumps_below", "resolution_clean")}
    checks_module.bars_clean = lambda df: False
    checks_module.ts_increasing = lambda ts: False
    checks_module.jumps_below = lambda df, factor: None
    checks_module.resolution_clean = lambda minute, coarse, length: False
    try:
        return check(*args, **kwargs)
    finally:
        for name, value in saved.items():
            setattr(checks_module, name, value)


def _bars(rows) -> pl.DataFrame:
    return pl.DataFrame(
        {"ts": [None if m is None else dt.datetime(2024, 1, 2, 10, tzinfo=dt.UTC) + dt.timedelta(minutes=m)
                for m, *_ in rows],
         **{c: [r[i + 1] for r in rows] for i, c in enumerate(BAR_COLUMNS[1:])}},
        schema={"ts": pl.Datetime("us", "UTC"), **{c: pl.Float64 for c in BAR_COLUMNS[1:]}},
    )


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.lists(st.tuples(st.one_of(st.none(), st.integers(0, 3000)), _VALUES, _VALUES, _VALUES, _VALUES, _VALUES),
                  min_size=1, max_size=8),
    sort=st.booleans(),
)
def test_ohlc_and_timestamp_scans_agree_with_the_rules(rows, sort):
    from mochi_assets.market_data.checks import ohlc_violations, timestamp_violations

    bars = _bars(rows)
    if sort:
        bars = bars.sort("ts")
    for check in (ohlc_violations, timestamp_violations):
        assert check(bars).equals(_by_the_rules(check, bars))
    # a concatenation (chunks scanned one by one), as the raw bars' check gets it
    both = pl.concat([bars, bars.head(1)])
    assert ohlc_violations(both).equals(_by_the_rules(ohlc_violations, both))


def test_ohlc_scan_of_a_concatenation(minute):
    from mochi_assets.market_data.checks import ohlc_violations
    from mochi_assets.market_data.scans import bars_clean

    broken = minute.slice(100, 50).with_columns(pl.when(pl.int_range(pl.len()) == 7).then(-1.0)
                                                 .otherwise(pl.col("volume")).alias("volume"))
    clean, dirty = pl.concat([minute, minute.head(10)]), pl.concat([minute, broken, minute.head(10)])
    assert dirty.get_column("ts").n_chunks() == 3  # each chunk scanned in place
    assert bars_clean(clean) and not bars_clean(dirty)
    assert ohlc_violations(clean).is_empty()
    got = ohlc_violations(dirty)
    assert got["row"].to_list() == [minute.height + 7] and got["problem"].to_list() == ["negative volume"]
    assert got.equals(_by_the_rules(ohlc_violations, dirty))


_PRICE = st.one_of(st.floats(min_value=0.9, max_value=1.1), st.just(1.0), st.just(0.0), st.just(float("nan")))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.lists(st.tuples(st.integers(0, 3000), _PRICE, _PRICE, _PRICE, _PRICE), min_size=2, max_size=12),
    factor=st.sampled_from([0.0, 0.05, 0.3, 1.0, 3.0, 50.0]),
)
def test_jump_scan_agrees_with_the_rules(rows, factor):
    bars = _bars([(m, o, max(o, h, lo, c), min(o, h, lo, c), c, 1.0) for m, o, h, lo, c in rows])
    assert suspicious_jumps(bars, factor=factor).equals(_by_the_rules(suspicious_jumps, bars, factor=factor))


def test_jump_scan_on_real_bars_and_at_its_limit(minute):
    from mochi_assets.market_data.scans import jumps_below

    typical = jumps_below(minute, 3.0)
    assert typical is not None and typical > 0  # clean real bars: the scan settles them
    rules = _by_the_rules(suspicious_jumps, minute, factor=3.0)
    assert rules.is_empty() and suspicious_jumps(minute, factor=3.0).equals(rules)
    # a limit at the largest move, then just under it: the scan leaves both to the rules
    largest = float(_by_the_rules(suspicious_jumps, minute, factor=0.0)["move"].max())
    for factor in (largest / typical, largest / typical * (1 - 1e-12)):
        assert jumps_below(minute, factor) is None
        assert suspicious_jumps(minute, factor=factor).equals(_by_the_rules(suspicious_jumps, minute, factor=factor))
    assert suspicious_jumps(minute, factor=largest / typical * (1 - 1e-6)).height >= 1


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(
    edits=st.lists(st.tuples(st.integers(0, 10_000), st.sampled_from(["high", "low", "drop", "shift", "nan"]),
                             st.sampled_from([0.999, 1.0 + 1e-10, 1.0 - 1e-10, 1.001])), max_size=3),
    resolution=st.sampled_from(["hour", "day"]),
)
def test_resolution_scan_agrees_with_the_rules(minute, edits, resolution):
    from mochi_assets.market_data.bars import resample_bars
    from mochi_assets.market_data.checks import resolution_mismatches

    data = minute.head(8_000)
    coarse = resample_bars(data, {"hour": "1h", "day": "1d"}[resolution], NY)
    for row, edit, scale in edits:
        row = row % coarse.height
        at = pl.int_range(pl.len()) == row
        if edit == "drop":
            coarse = coarse.filter(~at)
        elif edit == "shift":
            coarse = coarse.with_columns(pl.when(at).then(pl.col("ts") + pl.duration(minutes=30))
                                         .otherwise(pl.col("ts")).alias("ts"))
        elif edit == "nan":
            data = data.with_columns(pl.when(pl.int_range(pl.len()) == row).then(float("nan"))
                                     .otherwise(pl.col("low")).alias("low"))
        else:
            coarse = coarse.with_columns(pl.when(at).then(pl.col(edit) * scale).otherwise(pl.col(edit)).alias(edit))
    assert resolution_mismatches(data, coarse, resolution).equals(
        _by_the_rules(resolution_mismatches, data, coarse, resolution))


# --- resample_bars -----------------------------------------------------------------------------


def _resample_by_group_by(minute: pl.DataFrame, every: str, timezone: str) -> pl.DataFrame:
    """resample_bars with its compiled pass switched off: the polars group-by."""
    import mochi_assets.market_data.bars as bars_module

    original = bars_module._resample_sorted
    bars_module._resample_sorted = lambda data, every, timezone: None
    try:
        return bars_module.resample_bars(minute, every, timezone)
    finally:
        bars_module._resample_sorted = original


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(
    every=st.sampled_from(["1h", "1d"]),
    timezone=st.sampled_from([NY, "Australia/Lord_Howe", "Asia/Kathmandu", "UTC"]),
    drop=st.integers(1, 40),
    fractional=st.booleans(),
)
def test_resample_compiled_pass_equals_group_by(minute, every, timezone, drop, fractional):
    from mochi_assets.market_data.bars import _resample_sorted, resample_bars

    data = minute.filter(pl.int_range(pl.len()) % drop != 0)  # gaps, and the March clock change
    if fractional:
        data = data.with_columns(pl.col("volume") / 3.0)
    assert _resample_sorted(data, every, timezone) is not None  # the compiled pass is what is tested
    got, expected = resample_bars(data, every, timezone), _resample_by_group_by(data, every, timezone)
    assert got.drop("volume").equals(expected.drop("volume"))
    if fractional:  # summed in time order here, in polars' own order there: equal to rounding
        np.testing.assert_allclose(got["volume"].to_numpy(), expected["volume"].to_numpy(), rtol=1e-12)
    else:
        assert got["volume"].equals(expected["volume"])


def test_resample_falls_back_on_unsorted_or_broken_bars(minute):
    from mochi_assets.market_data.bars import _resample_sorted, resample_bars

    data = minute.head(3_000)
    nan = data.with_columns(pl.when(pl.int_range(pl.len()) == 10).then(float("nan")).otherwise(pl.col("high"))
                            .alias("high"))
    repeated = pl.concat([data.head(5), data.slice(4)])
    for broken in (nan, repeated):
        assert _resample_sorted(broken.sort("ts"), "1h", NY) is None
        assert resample_bars(broken, "1h", NY).equals(_resample_by_group_by(broken, "1h", NY))
    shuffled = data.sample(fraction=1.0, shuffle=True, seed=5)
    assert resample_bars(shuffled, "1d", NY).equals(_resample_by_group_by(data, "1d", NY))


def test_session_spread_pass_and_its_refusals(minute):
    from mochi_assets.market_data import indicators

    days = np.array([10, 11, 13], dtype=np.int32)
    values = np.array([[1.0, np.nan], [2.0, 20.0], [3.0, 30.0]])
    ok, out = indicators._by_session_nb(np.array([10, 10, 11, 13, 13], dtype=np.int32), days, values)
    assert ok and out[0].tolist() == [1.0, 1.0, 2.0, 3.0, 3.0] and np.isnan(out[1][:2]).all()
    assert not indicators._by_session_nb(np.array([11, 10], dtype=np.int32), days, values)[0]  # goes back
    assert not indicators._by_session_nb(np.array([10, 12], dtype=np.int32), days, values)[0]  # unknown day
    # the enhanced bars with nulls in warm-up equal the sorted lookup's
    original = indicators._by_session_nb
    expected = None
    try:
        indicators._by_session_nb = lambda *args: (False, None)
        expected = enhance_bars(minute, session=FOREX, short=3, long=8, alpha=0.25)
    finally:
        indicators._by_session_nb = original
    got = enhance_bars(minute, session=FOREX, short=3, long=8, alpha=0.25)
    assert got["atr"].null_count() > 0 and got.equals(expected)


def test_atr_scan_settles_clean_enhanced_bars_and_refuses_broken_ones(minute):
    from mochi_assets.market_data.scans import atr_clean

    enhanced = enhance_bars(minute.head(12_000), session=FOREX, short=2, long=4, alpha=0.5)
    warmup = enhanced.filter(pl.col("atr").is_null())["session_date"].n_unique()
    assert atr_clean(enhanced, None) and atr_clean(enhanced, warmup)
    assert not atr_clean(enhanced, warmup + 1)  # an atr defined during the stated warm-up
    assert not atr_clean(enhanced, warmup - 1)  # a null atr after it
    varies = enhanced.with_columns(pl.when(pl.int_range(pl.len()) == enhanced.height - 1).then(pl.col("atr") * 2)
                                   .otherwise(pl.col("atr")).alias("atr"))
    assert not atr_clean(varies, None) and not atr_violations(varies).is_empty()
    assert atr_violations(enhanced, warmup_sessions=warmup).equals(
        _atr_violations_whole_table(enhanced, warmup_sessions=warmup))


@st.composite
def _timestamp_texts(draw):
    """A column of timestamp texts in one layout (sometimes with one row in another, or broken)."""
    instant = st.datetimes(min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(2100, 12, 31))
    sep = draw(st.sampled_from(["T", " "]))
    seconds = draw(st.sampled_from(["none", "whole", "fraction"]))
    digits = draw(st.integers(1, 7))
    zone = draw(st.sampled_from(["", "Z", "z", "+00:00", "-05:00", "+0530", "+01", " +00:00"]))
    date_only = draw(st.booleans()) and zone == ""

    def spell(value: dt.datetime) -> str:
        if date_only:
            return value.strftime("%Y-%m-%d")
        text = value.strftime(f"%Y-%m-%d{sep}%H:%M")
        if seconds != "none":
            text += value.strftime(":%S")
        if seconds == "fraction":
            text += "." + value.strftime("%f")[:digits].ljust(digits, "0")
        return text + zone

    texts = [spell(v) for v in draw(st.lists(instant, min_size=1, max_size=6))]
    odd = draw(st.sampled_from([None, "2024-02-30T00:00:00Z", "2024-01-02T09:30:60+00:00", "2024-01-02T09",
                                "2024-01-02T09:30:00", "2024-01-02T09:30:00Z", "", "not a time"]))
    if odd is not None:
        texts.insert(draw(st.integers(0, len(texts))), odd)
    return texts


@given(texts=_timestamp_texts(), file_timezone=st.sampled_from(["UTC", NY, "Asia/Kathmandu"]))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_iso_cast_reads_what_the_formats_read(texts, file_timezone):
    """Arrow's ISO-8601 cast (taken when every row has one of its layouts) gives the same instants as
    polars' formats tried one by one, and a column it does not take gets the formats' result or error."""
    from mochi_assets.market_data import imports

    raw = pl.Series("ts", texts, dtype=pl.String)

    def parse():
        try:
            return imports._parse_text_ts(raw, file_timezone, "f.csv")
        except BarsError as exc:
            return str(exc)

    fast = parse()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(imports, "_fast_iso", lambda text: None)
        slow = parse()
    if isinstance(slow, str):
        assert fast == slow
    else:
        assert isinstance(fast, pl.Series) and fast.dtype == slow.dtype and fast.equals(slow), (fast, slow)


def test_iso_cast_is_taken_for_a_file_of_one_layout():
    """The usual export layouts go through the cast (one call), not the formats."""
    from mochi_assets.market_data import imports

    for texts, dtype in (
        (["2024-01-02T09:30:00.000000+0000", "2024-01-02T09:31:00.000000+0000"], pl.Datetime("us", "UTC")),
        (["2024-01-02 09:30:00Z", "2024-01-02 09:31:00.5Z"], pl.Datetime("us", "UTC")),
        (["2024-01-02 09:30:00", "2024-01-02 09:31"], pl.Datetime("us")),
        (["2024-01-02", "2024-01-03"], pl.Datetime("us")),
    ):
        fast = imports._fast_iso(pl.Series(texts))
        assert fast is not None and fast.dtype == dtype, texts
    for texts in (["2024-01-02T09:30:00Z", "2024-01-02T09:31:00"], ["2024-01-02T09:30:00z"], ["2024-01-02T09"],
                  ["2024-02-30T00:00:00Z"], ["2024-01-02T09:30:00.1234567Z"], ["2024-01-02T09:30:00Z", None]):
        assert imports._fast_iso(pl.Series(texts, dtype=pl.String)) is None, texts


@given(
    minutes=st.lists(st.integers(-3 * 24 * 60, 3 * 24 * 60), min_size=1, max_size=40),
    far=st.lists(st.integers(0, 2 * 365 * 24 * 60), max_size=20),
    zone=st.sampled_from([NY, "Europe/London", "Australia/Lord_Howe", "Asia/Kathmandu"]),
    sort=st.booleans(),
    null_at=st.one_of(st.none(), st.integers(0, 60)),
)
@settings(max_examples=200, deadline=None)
def test_localize_equals_one_lookup_per_row(minutes, far, zone, sort, null_at):
    """Local wall times -> UTC: the settled pass plus per-row lookups near changes gives what per-row
    lookups everywhere give (first of a repeated wall time earlier, second later; the same error, same
    row, for a skipped one)."""
    from mochi_assets.market_data import imports

    change = dt.datetime(2024, 11, 3, 1, 30) if zone == NY else dt.datetime(2024, 10, 27, 1, 30)
    base = dt.datetime(2023, 1, 1)
    values = [change + dt.timedelta(minutes=m) for m in minutes] + [base + dt.timedelta(minutes=m) for m in far]
    if sort:
        values.sort()
    if null_at is not None:
        values.insert(min(null_at, len(values)), None)
    naive = pl.Series("ts", values, dtype=pl.Datetime("us"))
    raw = naive.dt.strftime("%Y-%m-%d %H:%M")

    def localize(function, *extra):
        try:
            return function(naive, zone, raw, "f.csv", *extra)
        except BarsError as exc:
            return str(exc)

    fast = localize(imports._localize)
    slow = localize(imports._localize_near, pl.Series(range(len(values))))
    if isinstance(slow, str):
        assert fast == slow
    else:
        assert isinstance(fast, pl.Series) and fast.equals(slow, check_names=False), (fast, slow)
