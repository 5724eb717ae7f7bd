"""Walk-forward against a slow pandas reference, on noise, with a planted edge, and without look-ahead."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from mochi_assets.aggregation import stats
from mochi_assets.reporting.rankings import rank_traders, significant_traders
from mochi_assets.reporting.rankings import verdict as ranking_verdict
from mochi_assets.validation import panel as panel_module
from mochi_assets.validation.panel import DAILY_R_COLUMNS, build_panel, daily_r, panel_trade_batches, panel_trades
from mochi_assets.validation.walk_forward import (
    WalkForwardParams,
    fold_windows,
    out_of_sample_sentence,
    walk_forward,
    window_sizes,
    with_oos_verdict,
)
from mochi_resources.errors import MochiError
from tests.validation.synthetic import calendar, grid, random_trades

SCENARIO = "breakout-long"


def _run(traders, trades, sessions, **params):
    panel = build_panel(trades, traders["trader_id"].to_numpy(), sessions)
    return walk_forward(panel, traders, WalkForwardParams(**params), scenario=SCENARIO)


# ------------------------------------------------------------------ slow, obvious reference


def _reference(traders: pl.DataFrame, trades: pl.DataFrame, sessions: pl.DataFrame, p: WalkForwardParams) -> list[dict]:
    """Loops over folds and traders with pandas: what each fold picks and what the pick does OOS."""
    t = trades.to_pandas()
    cal = sessions.to_pandas()
    dates = list(cal["session_date"])
    ids = sorted(traders["trader_id"].to_list())
    out = []
    n = len(dates)
    oos_lo = p.is_sessions
    while oos_lo < n:
        oos_hi = min(oos_lo + p.oos_sessions, n)
        is_lo = 0 if p.mode == "anchored" else oos_lo - p.is_sessions
        is_dates, oos_dates = dates[is_lo:oos_lo], dates[oos_lo:oos_hi]
        oos_start_ts = cal["start_ts"].iloc[oos_lo]
        known = t[t["session_date"].isin(is_dates) & (t["exit_ts"] < oos_start_ts)]
        sharpe, count, dsr_rows = {}, {}, []
        rows = []
        for trader_id in ids:
            mine = known[known["trader_id"] == trader_id]
            daily = mine.groupby("session_date")["r"].sum().reindex(is_dates, fill_value=0.0)
            count[trader_id] = len(mine)
            std = daily.std(ddof=1)
            sharpe[trader_id] = daily.mean() / std * math.sqrt(252) if std > 0 else float("nan")
            dsr_rows.append(daily.to_numpy())
            ticks_by_year = mine.assign(year=pd.to_datetime(mine["session_date"]).dt.year).groupby("year")
            for year, group in ticks_by_year:
                rows.append({"trader_id": trader_id, "year": year, "net_pnl": group["pnl_ticks"].sum()})
        candidates = [i for i in ids if count[i] >= p.min_trades]
        pick = None
        if candidates and p.selection == "sharpe":
            pick = max(candidates, key=lambda i: (-np.inf if np.isnan(sharpe[i]) else sharpe[i], -i))
        elif candidates:
            dsr = stats.deflated_sharpe_ratios(np.array(dsr_rows))
            summary = pl.DataFrame({"trader_id": ids, "trades": [count[i] for i in ids],
                                    "sharpe": [sharpe[i] for i in ids], "dsr": dsr}).with_columns(
                pl.col("sharpe", "dsr").fill_nan(None))
            by_year = pl.DataFrame(rows, schema={"trader_id": pl.Int64, "year": pl.Int64, "net_pnl": pl.Float64})
            ranked = rank_traders(traders, summary, by_year, scenario=SCENARIO, pbo=None, min_trades=p.min_trades)
            pick = ranked.row(0, named=True)["trader_id"]
        fold = {"trader_id": pick, "oos_trades": 0, "oos_net_r": 0.0, "oos_sharpe": None, "oos_top_decile": None,
                "is_sharpe": None, "oos_series": np.zeros(len(oos_dates)), "oos_wins": 0}
        if pick is not None:
            oos = t[t["session_date"].isin(oos_dates)]
            series = {i: oos[oos["trader_id"] == i].groupby("session_date")["r"].sum().reindex(oos_dates, fill_value=0.0)
                      for i in ids}
            oos_sr = {i: (s.mean() / s.std(ddof=1) * math.sqrt(252) if s.std(ddof=1) > 0 else -np.inf)
                      for i, s in series.items()}
            mine = oos[oos["trader_id"] == pick]
            better = sum(1 for i in ids if oos_sr[i] > oos_sr[pick])
            fold.update(
                is_sharpe=sharpe[pick], oos_trades=len(mine), oos_net_r=mine["r"].sum(), oos_wins=int((mine["pnl"] > 0).sum()),
                oos_sharpe=None if np.isinf(oos_sr[pick]) else oos_sr[pick],
                oos_top_decile=better < math.ceil(0.1 * len(ids)), oos_series=series[pick].to_numpy(),
            )
        out.append(fold)
        oos_lo += p.oos_sessions
    return out


@pytest.mark.parametrize("selection,mode", [("sharpe", "rolling"), ("ranking", "rolling"), ("ranking", "anchored")])
def test_walk_forward_matches_the_pandas_reference(selection, mode):
    traders = grid(3, 2, 2)  # 12 traders
    sessions = calendar(230)
    trades = random_trades(traders, sessions, seed=11, edge={3: 0.2, 7: 0.1}, late_share=0.1)
    params = WalkForwardParams(is_sessions=80, oos_sessions=40, mode=mode, selection=selection, min_trades=20,
                               random_paths=200)
    result = _run(traders, trades, sessions, **params.__dict__)
    expected = _reference(traders, trades, sessions, params)
    folds = result["folds"]
    assert folds.height == len(expected) == 4 and folds["complete"].to_list() == [True, True, True, False]
    for row, ref in zip(folds.iter_rows(named=True), expected):
        assert row["trader_id"] == ref["trader_id"]
        assert row["oos_trades"] == ref["oos_trades"]
        assert row["oos_net_r"] == pytest.approx(ref["oos_net_r"], abs=1e-9)
        assert row["oos_top_decile"] == ref["oos_top_decile"]
        for key in ("is_sharpe", "oos_sharpe"):
            assert (row[key] is None and ref[key] is None) or row[key] == pytest.approx(ref[key], rel=1e-9)
    stitched = np.concatenate([ref["oos_series"] for ref in expected])
    summary = result["summary"].row(0, named=True)
    assert summary["oos_sharpe"] == pytest.approx(stitched.mean() / stitched.std(ddof=1) * math.sqrt(252), rel=1e-9)
    assert summary["oos_net_r"] == pytest.approx(stitched.sum(), abs=1e-9)
    assert summary["oos_trades"] == sum(ref["oos_trades"] for ref in expected)
    assert summary["oos_win_rate"] == pytest.approx(sum(r["oos_wins"] for r in expected) / summary["oos_trades"])
    equity = np.cumsum(stitched)
    assert summary["oos_max_drawdown_r"] == pytest.approx(np.max(np.maximum.accumulate(np.maximum(equity, 0)) - equity))
    assert result["equity"].height == len(stitched)
    assert result["equity"]["oos_cum_r"].to_numpy() == pytest.approx(equity)


def test_folds_rolling_and_anchored_windows():
    rolling = fold_windows(700, WalkForwardParams(is_sessions=504, oos_sessions=126))
    assert [(f.is_lo, f.is_hi, f.oos_hi, f.complete) for f in rolling] == [(0, 504, 630, True), (126, 630, 700, False)]
    anchored = fold_windows(700, WalkForwardParams(is_sessions=504, oos_sessions=126, mode="anchored"))
    assert [f.is_lo for f in anchored] == [0, 0]
    assert fold_windows(504, WalkForwardParams(is_sessions=504, oos_sessions=126)) == []


def test_default_windows_adapt_so_a_one_year_backtest_gets_folds():
    """The README's one-year backtest (SYN:GOLD 2024, Mon-Fri sessions: 262) is checked out of
    sample with the default settings; long histories keep 504 / 126; explicit values are kept."""
    import datetime as dt

    from mochi_assets.request import parse_request

    request = parse_request({"ticker": "SYN:GOLD", "start": "2024-01-01", "end": "2024-12-31"})
    assert request.walk_forward.is_sessions is None and request.walk_forward.oos_sessions is None
    one_year = sum((dt.date(2024, 1, 1) + dt.timedelta(days=i)).weekday() < 5 for i in range(366))
    defaults = WalkForwardParams()
    assert window_sizes(one_year, defaults)[:2] == (131, 33)
    assert len(fold_windows(one_year, defaults)) >= 3
    assert window_sizes(2000, defaults)[:2] == (504, 126)
    assert window_sizes(100, defaults)[:2] == (60, 15) and len(fold_windows(100, defaults)) == 3
    assert fold_windows(60, defaults) == []
    for n in range(121, 1100, 7):  # about four folds wherever the cap does not bind
        is_, oos, _ = window_sizes(n, defaults)
        assert oos == math.floor(is_ / 4 + 0.5) and (len(fold_windows(n, defaults)) >= 4 or is_ == 504)

    explicit = parse_request({"ticker": "SYN:GOLD", "start": "2024-01-01", "end": "2024-12-31",
                              "walk_forward": {"is_sessions": 504, "oos_sessions": 126}}).walk_forward
    params = WalkForwardParams(is_sessions=explicit.is_sessions, oos_sessions=explicit.oos_sessions)
    assert window_sizes(one_year, params) == (504, 126, "request") and fold_windows(one_year, params) == []
    assert window_sizes(one_year, WalkForwardParams(is_sessions=80))[:2] == (80, 20)
    assert window_sizes(one_year, WalkForwardParams(oos_sessions=10))[:2] == (131, 10)

    traders = grid(2, 2, 1)
    sessions = calendar(one_year, dt.date(2024, 1, 1))
    trades = random_trades(traders, sessions, seed=4, trade_prob=0.6)
    summary = _run(traders, trades, sessions, min_trades=10, random_paths=50)["summary"].row(0, named=True)
    assert (summary["folds"], summary["is_sessions"], summary["oos_sessions"]) == (4, 131, 33)
    assert summary["windows"].startswith("adaptive") and summary["oos_sessions_total"] == one_year - 131
    summary = _run(traders, trades, sessions, is_sessions=80, oos_sessions=40, min_trades=10,
                   random_paths=50)["summary"].row(0, named=True)
    assert (summary["is_sessions"], summary["oos_sessions"], summary["windows"]) == (80, 40, "request")
    assert summary["folds"] == math.ceil((one_year - 80) / 40)


def test_a_trade_still_open_when_the_oos_window_starts_is_not_seen_in_sample():
    traders = grid(2, 1, 1)  # traders 0 and 1
    sessions = calendar(12)
    starts = sessions["start_ts"]
    dates = sessions["session_date"]

    def trade(trader_id, i, r, exit_ts):
        return {"trader_id": trader_id, "session_date": dates[i], "exit_ts": exit_ts, "r": r, "pnl_ticks": 10 * r,
                "pnl": r}

    # trader 1 is the better one, except for a large loss entered on the last in-sample session
    base = [trade(t, i, (0.3 + 0.05 * (i % 3)) if t else (0.05 + 0.15 * (i % 3)), starts[i] + pd.Timedelta(hours=12)) for t in (0, 1) for i in range(12)]
    early = trade(1, 7, -5.0, starts[7] + pd.Timedelta(hours=12))  # closed before the OOS window
    late = trade(1, 7, -5.0, starts[8] + pd.Timedelta(hours=1))  # still open when it starts
    kwargs = dict(is_sessions=8, oos_sessions=4, selection="sharpe", min_trades=1, random_paths=50)
    rows = [r for r in base if not (r["trader_id"] == 1 and r["session_date"] == dates[7])]
    known = _run(traders, pl.DataFrame(rows + [early]), sessions, **kwargs)["folds"]
    unknown = _run(traders, pl.DataFrame(rows + [late]), sessions, **kwargs)["folds"]
    assert known["trader_id"].to_list() == [0]
    assert unknown["trader_id"].to_list() == [1]  # the loss was not known yet: no look-ahead
    assert unknown["is_trades"].item() == 7  # the open trade is left out in sample (and entered before the OOS window)


def test_appending_later_sessions_and_trades_does_not_change_earlier_folds():
    traders = grid(3, 2, 2)
    sessions = calendar(400)
    trades = random_trades(traders, sessions, seed=5, edge={4: 0.15}, late_share=0.1)
    kwargs = dict(is_sessions=100, oos_sessions=50, min_trades=15, random_paths=100)
    short_sessions = sessions.head(260)
    # what was known when the data ended at session 260: trades entered before it (open ones end there)
    short_trades = trades.filter(pl.col("session_date") < short_sessions["session_date"].max())
    short = _run(traders, short_trades, short_sessions, **kwargs)["folds"]
    full = _run(traders, trades, sessions, **kwargs)["folds"]
    complete = short.filter(pl.col("complete"))
    assert complete.height == 3
    assert_frame_equal(complete, full.head(complete.height))


@pytest.mark.parametrize("selection", ["ranking", "sharpe"])
def test_on_noise_the_selection_beats_random_picks_about_half_the_time(selection):
    traders = grid(3, 3, 2)  # 18 traders
    sessions = calendar(420)
    shares, verdicts = [], []
    for seed in range(40):
        trades = random_trades(traders, sessions, seed=1000 + seed)
        summary = _run(traders, trades, sessions, is_sessions=120, oos_sessions=60, min_trades=20,
                       random_paths=500, seed=seed, selection=selection)["summary"].row(0, named=True)
        shares.append(summary["beats_random_share"])
        verdicts.append((summary["oos_beats_random"], summary["note"]))
    above_half = np.mean(np.array(shares) > 0.5)
    assert 0.25 <= above_half <= 0.75, shares
    assert 0.35 <= np.mean(shares) <= 0.65
    not_beating = [note for beats, note in verdicts if not beats]
    assert len(not_beating) >= 32  # about 5% of noise runs reach the 95% level
    assert all("not significant" in note for note in not_beating)


def test_a_planted_persistent_edge_is_found_in_most_folds():
    traders = grid(3, 3, 2)
    sessions = calendar(700)
    planted = 7
    trades = random_trades(traders, sessions, seed=3, edge={planted: 0.5})
    result = _run(traders, trades, sessions, is_sessions=150, oos_sessions=75, min_trades=20, random_paths=2000)
    folds = result["folds"]
    assert (folds["trader_id"] == planted).mean() >= 0.8
    summary = result["summary"].row(0, named=True)
    assert summary["oos_beats_random"] is True and summary["beats_random_share"] >= 0.95
    assert summary["top_decile_share"] >= 0.7
    assert "beats" in summary["note"] and "not significant" not in summary["note"]


def test_reruns_are_identical_and_the_seed_matters():
    traders = grid(3, 2, 2)
    sessions = calendar(300)
    trades = random_trades(traders, sessions, seed=9)
    kwargs = dict(is_sessions=100, oos_sessions=50, min_trades=10, random_paths=300)
    first = _run(traders, trades, sessions, seed=4, **kwargs)
    again = _run(traders, trades, sessions, seed=4, **kwargs)
    for name in ("folds", "equity", "summary"):
        assert_frame_equal(first[name], again[name])
    other = _run(traders, trades, sessions, seed=5, **kwargs)["summary"]["beats_random_share"].item()
    assert other != first["summary"]["beats_random_share"].item()


def test_too_short_a_history_says_so_and_the_verdict_is_not_gated():
    traders = grid(2, 1, 1)
    sessions = calendar(50)
    trades = random_trades(traders, sessions, seed=1)
    result = _run(traders, trades, sessions)
    assert result["folds"].is_empty() and result["equity"].is_empty()
    summary = result["summary"].row(0, named=True)
    assert summary["folds"] == 0 and summary["oos_beats_random"] is None
    assert "is_sessions = 60" in summary["note"] and "adaptive" in summary["note"]
    board = pl.DataFrame({"trader_id": [1, 2, 3], "eligible": [True] * 3, "dsr": [0.99, 0.98, 0.5], "pbo": [0.2] * 3,
                          "oos_beats_random_share": [None, 0.4, 0.99], "oos_beats_random": [None, False, True],
                          "wf_folds": [0, 8, 8]})
    verdict = with_oos_verdict(board)
    assert "not checked out of sample" in verdict["oos_verdict"][0]
    assert "not significant" in verdict["oos_verdict"][1] and "beats 99%" in verdict["oos_verdict"][2]
    # the rankings' significance rule: no walk-forward does not block, failing it does
    assert significant_traders(board)["trader_id"].to_list() == [1]
    failing = board.filter(pl.col("trader_id") == 2)
    sentence = ranking_verdict(failing)
    assert sentence.startswith("No trader") and "a selection that beats random picks out of sample" in sentence
    assert "Trader 2" in ranking_verdict(failing.with_columns(pl.lit(True).alias("oos_beats_random")))
    assert "beats only 40%" in out_of_sample_sentence({"breakout-long": failing})


def test_bad_settings_and_inputs_get_one_clear_error():
    with pytest.raises(MochiError, match="walk_forward.mode"):
        WalkForwardParams(mode="expanding")
    with pytest.raises(MochiError, match="walk_forward.oos_sessions"):
        WalkForwardParams(oos_sessions=0)
    traders = grid(2, 1, 1)
    sessions = calendar(20)
    trades = random_trades(traders, sessions, seed=1)
    with pytest.raises(MochiError, match="traders not in the trader table"):
        build_panel(trades, [0], sessions)
    with pytest.raises(MochiError, match="outside the session calendar"):
        build_panel(trades, [0, 1], sessions.head(10))
    twice = pl.concat([trades.head(1), trades.head(1)])
    with pytest.raises(MochiError, match="one per session date"):
        build_panel(twice, [0, 1], sessions)
    # the robustness step's daily r alone says the same
    with pytest.raises(MochiError, match="traders not in the trader table"):
        daily_r(trades, [0], sessions)
    with pytest.raises(MochiError, match="outside the session calendar"):
        daily_r(trades, [0, 1], sessions.head(10))
    with pytest.raises(MochiError, match="one per session date"):
        daily_r(twice, [0, 1], sessions)
    with pytest.raises(MochiError, match=r"missing column\(s\) r"):
        daily_r(trades.drop("r"), [0, 1], sessions)


@given(seed=st.integers(0, 10_000), n_sessions=st.integers(1, 80), shuffled=st.booleans())
@settings(max_examples=10, deadline=None)
def test_property_daily_r_is_the_panels_r(seed, n_sessions, shuffled):
    traders = grid(3, 2, 2)
    sessions = calendar(n_sessions)
    trades = random_trades(traders, sessions, seed=seed)
    if shuffled:
        trades = trades.sample(fraction=1.0, shuffle=True, seed=seed)
    ids = traders["trader_id"].to_numpy()[::-1]  # any order of the trader ids
    panel = build_panel(trades, ids, sessions)
    got_ids, r = daily_r(trades.select(DAILY_R_COLUMNS), ids, sessions)
    np.testing.assert_array_equal(got_ids, panel.trader_ids)
    assert r.tobytes() == panel.r.tobytes()  # the same sums, added in the same order


@given(cut=st.integers(130, 300), seed=st.integers(0, 10_000), anchored=st.booleans())
@settings(max_examples=5, deadline=None)
def test_property_complete_folds_do_not_depend_on_later_data(cut, seed, anchored):
    traders = grid(2, 2, 2)
    sessions = calendar(320)
    trades = random_trades(traders, sessions, seed=seed, late_share=0.2)
    kwargs = dict(is_sessions=60, oos_sessions=30, min_trades=10, random_paths=50,
                  mode="anchored" if anchored else "rolling")
    head = sessions.head(cut)
    short = _run(traders, trades.filter(pl.col("session_date") <= head["session_date"].max()), head, **kwargs)["folds"]
    full = _run(traders, trades, sessions, **kwargs)["folds"]
    complete = short.filter(pl.col("complete"))
    assert_frame_equal(complete, full.head(complete.height))


def _panel_arrays(panel) -> list[np.ndarray]:
    late = panel.late
    return [panel.trader_ids, panel.dates, panel.r, panel.ticks, panel.count_cum, panel.win_cum,
            late.trader, late.session, late.known, late.r, late.ticks, late.win]


def test_a_panel_built_part_by_part_from_the_file_is_the_same(tmp_path, monkeypatch):
    """The walk-forward step reads the trades' file a batch at a time (panel_trade_batches):
    the panel is the one the whole table gives, to the byte, late trades and errors included."""
    traders = grid(3, 3, 2)
    sessions = calendar(120)
    trades = random_trades(traders, sessions, seed=7)
    path = tmp_path / "trades.parquet"
    trades.write_parquet(path, row_group_size=97)
    monkeypatch.setattr(panel_module, "PANEL_BATCH_ROWS", 50)
    batches = list(panel_trade_batches(pl.scan_parquet(path), str(path)))
    assert len(batches) > 3 and sum(b.height for b in batches) == trades.height
    ids = traders["trader_id"].to_numpy()
    whole = build_panel(panel_trades(pl.scan_parquet(path)), ids, sessions)
    parts = build_panel(iter(batches), ids, sessions)
    assert whole.late.trader.size > 0  # the case has trades still open at the next session's start
    for a, b in zip(_panel_arrays(whole), _panel_arrays(parts), strict=True):
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes()
    # without a local file the whole table is one batch
    assert [b.height for b in panel_trade_batches(pl.scan_parquet(path), None)] == [trades.height]
    # a second trade of a trader on a session date in a later part is still found
    twice = [*batches, batches[0].head(1)]
    with pytest.raises(MochiError, match="one per session date"):
        build_panel(iter(twice), ids, sessions)
