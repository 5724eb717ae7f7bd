"""Fast local times and session dates equal polars' one-lookup-per-row conversion."""

import datetime as dt

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mochi_assets.market_data.localtime import local_naive, utc_offsets
from mochi_assets.market_data.sessions import parse_session, session_dates
from mochi_resources.errors import RequestError

ZONES = ["America/New_York", "Europe/London", "Asia/Kathmandu", "Australia/Lord_Howe", "Africa/Monrovia", "UTC"]
SPECS = ["forex", "us-equity", "us-equity-extended", "crypto", "calendar-day", "20:00-04:00/mon-fri", "22:30-23:45/sun"]
LO = int(dt.datetime(1970, 1, 1, tzinfo=dt.UTC).timestamp() * 1e6)
HI = int(dt.datetime(2040, 1, 1, tzinfo=dt.UTC).timestamp() * 1e6)


def _utc(values) -> pl.Series:
    return pl.Series("ts", values, dtype=pl.Int64).cast(pl.Datetime("us", "UTC"))


def _reference_naive(ts: pl.Series, zone: str) -> pl.Series:
    return ts.dt.convert_time_zone(zone).dt.replace_time_zone(None)


def _reference_sessions(ts: pl.Series, calendar) -> pl.Series:
    """The session rule of sessions.py, written with polars' per-row conversion."""
    local = _reference_naive(ts, calendar.timezone)
    minutes = (local - local.dt.truncate("1d")).dt.total_microseconds() / 60e6
    frame = pl.DataFrame({"date": local.dt.date(), "m": minutes})
    same = (pl.col("m") >= calendar.open_min) & (pl.col("m") < calendar.close_min)
    evening = (pl.col("m") - 1440 >= calendar.open_min) & (pl.col("m") - 1440 < calendar.close_min)
    candidate = pl.when(same).then(pl.col("date")).when(evening).then(pl.col("date") + pl.duration(days=1))
    weekday_ok = (candidate.dt.weekday() - 1).is_in(list(calendar.days))
    return frame.select(pl.when(weekday_ok).then(candidate)).to_series()


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.integers(LO, HI), min_size=1, max_size=300),
    zone=st.sampled_from(ZONES),
    sort=st.booleans(),
)
def test_local_naive_equals_polars_conversion(values, zone, sort):
    ts = _utc(sorted(values) if sort else values)
    assert local_naive(ts, zone).equals(_reference_naive(ts, zone), check_names=False)


@pytest.mark.parametrize("zone", ["America/New_York", "Europe/London", "Australia/Lord_Howe"])
def test_every_minute_around_transitions_is_exact(zone):
    """Minute by minute over two years: every DST change of the zone falls inside the data."""
    start = int(dt.datetime(2023, 1, 1, tzinfo=dt.UTC).timestamp() * 1e6)
    ts = _utc(np.arange(start, start + 2 * 365 * 86_400_000_000, 60_000_000))
    assert local_naive(ts, zone).equals(_reference_naive(ts, zone), check_names=False)


def test_nulls_stay_null_and_units_are_converted():
    ts = pl.Series("ts", [dt.datetime(2024, 3, 10, 7, 30), None], dtype=pl.Datetime("ms", "UTC"))
    out = local_naive(ts, "America/New_York")
    assert out.to_list() == [dt.datetime(2024, 3, 10, 3, 30), None]
    assert out.dtype == pl.Datetime("us")


def test_an_unknown_zone_names_itself():
    with pytest.raises(RequestError, match="Mars/Olympus"):
        utc_offsets(np.array([LO]), "Mars/Olympus")


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.integers(LO, HI), min_size=1, max_size=300),
    spec=st.sampled_from(SPECS),
    zone=st.sampled_from(ZONES),
)
def test_session_dates_follow_the_written_rule(values, spec, zone):
    calendar = parse_session(spec, zone)
    ts = _utc(values)
    assert session_dates(ts, calendar).equals(_reference_sessions(ts, calendar), check_names=False)


def _reference_utc(local: np.ndarray, zone: str) -> pl.Series:
    """The instant of each wall time where it has exactly one (polars' per-row lookup); null else."""
    naive = pl.Series("ts", local, dtype=pl.Int64).cast(pl.Datetime("us"))
    early = naive.dt.replace_time_zone(zone, ambiguous="earliest", non_existent="null")
    late = naive.dt.replace_time_zone(zone, ambiguous="latest", non_existent="null")
    return pl.select(pl.when(early == late).then(early)).to_series().dt.convert_time_zone("UTC")


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.integers(LO, HI), min_size=1, max_size=200),
    near=st.lists(st.integers(-3 * 3_600_000_000, 3 * 3_600_000_000), max_size=50),
    zone=st.sampled_from(ZONES),
)
def test_utc_from_local_settles_only_single_instants_and_gets_them_right(values, near, zone):
    """A settled wall time has exactly one instant and utc_from_local gives it; wall times in a
    skipped or repeated hour are never settled (some wall times are drawn within 3 hours of one)."""
    from mochi_assets.market_data.localtime import utc_from_local

    spring = int(dt.datetime(2024, 3, 10, 2, 30, tzinfo=dt.UTC).timestamp() * 1e6)  # NY's skipped hour
    autumn = int(dt.datetime(2024, 10, 27, 1, 30, tzinfo=dt.UTC).timestamp() * 1e6)  # London's repeated hour
    local = np.array(values + [spring + d for d in near] + [autumn + d for d in near], dtype=np.int64)
    utc, settled = utc_from_local(local, zone)
    reference = _reference_utc(local, zone)
    assert not settled[reference.is_null().to_numpy()].any()
    got = pl.Series("ts", utc[settled], dtype=pl.Int64).cast(pl.Datetime("us", "UTC"))
    assert got.equals(reference.filter(pl.Series(settled)), check_names=False)


@pytest.mark.parametrize("zone", ["America/New_York", "Europe/London", "Australia/Lord_Howe", "Asia/Kathmandu"])
def test_utc_from_local_minute_by_minute_over_two_years(zone):
    """Every wall minute of two years: all but those within a day of a change are settled, and right."""
    from mochi_assets.market_data.localtime import utc_from_local

    start = int(dt.datetime(2023, 1, 1, tzinfo=dt.UTC).timestamp() * 1e6)
    local = np.arange(start, start + 2 * 365 * 86_400_000_000, 60_000_000)
    utc, settled = utc_from_local(local, zone)
    reference = _reference_utc(local, zone)
    got = pl.Series("ts", utc[settled], dtype=pl.Int64).cast(pl.Datetime("us", "UTC"))
    assert got.equals(reference.filter(pl.Series(settled)), check_names=False)
    changes = 0 if zone == "Asia/Kathmandu" else 4
    # unsettled: about 52 hours around each change (plus the hour skipped or repeated)
    assert (~settled).sum() <= changes * 54 * 60
    assert settled.mean() > 0.98
