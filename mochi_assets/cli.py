"""The `mochi` command: run backtests, import bars, show results.

Every command works on the store under MOCHI_HOME (default ./.mochi) and the Dagster instance
under DAGSTER_HOME (default $MOCHI_HOME/dagster), so `dagster dev` started with the same
MOCHI_HOME shows the same runs.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click
import polars as pl
from tqdm import tqdm

from mochi_resources.errors import MochiError

LEADERBOARD_COLUMNS = [
    "rank", "scenario", "trader_id", "direction", "entry_time", "offset_ticks", "stop_atr", "limit_atr",
    "trades", "eligible", "win_rate", "net_pnl", "net_pnl_ticks", "net_r", "sharpe", "dsr", "dsr_eff", "pbo",
    "spa_pvalue", "oos_beats_random_share", "duplicate_of",
]
# Shown only when some row has a value (the leaderboard never lists a duplicate).
OPTIONAL_COLUMNS = {"duplicate_of"}


def _fail(message: str, code: int = 2) -> None:
    click.echo(f"mochi: error: {message}", err=True)
    sys.exit(code)


def _table(df: pl.DataFrame, columns: list[str]) -> str:
    """Text table of ``columns`` (those present); floats formatted per column to their magnitude,
    an ineligible trader's ``eligible`` cell reads NO."""
    from mochi_assets.reporting.numbers import value_labels

    cols = [
        c for c in columns if c in df.columns and not (c in OPTIONAL_COLUMNS and df[c].null_count() == df.height)
    ]
    cells = []
    for c in cols:
        if df[c].dtype.is_float():
            cells.append(value_labels(df[c].to_list()))
        elif df[c].dtype == pl.Boolean:
            cells.append(["-" if v is None else "yes" if v else "NO" for v in df[c].to_list()])
        else:
            cells.append(["-" if v is None else str(v) for v in df[c].to_list()])
    rows = [list(r) for r in zip(*cells)]
    widths = [max(len(c), *(len(r[i]) for r in rows)) if rows else len(c) for i, c in enumerate(cols)]
    line = lambda vals: "  ".join(v.rjust(w) for v, w in zip(vals, widths))  # noqa: E731
    return "\n".join([line(cols), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def _ranked_table(df: pl.DataFrame, top: int) -> str:
    """The first ``top`` rows, a note on ineligible or duplicate rows, and the verdict sentence
    of all the traders of ``df``."""
    from mochi_assets.reporting.rankings import MIN_TRADES_DEFAULT, verdict

    shown = df.head(top)
    text = _table(shown, LEADERBOARD_COLUMNS)
    if "eligible" in shown.columns and not shown["eligible"].fill_null(False).all():
        text += (
            f"\neligible NO: fewer than {MIN_TRADES_DEFAULT} trades; such a trader's statistics mean little "
            "and it ranks after every eligible one."
        )
    if "duplicate_of" in shown.columns and shown["duplicate_of"].null_count() < shown.height:
        text += "\nduplicate_of: the trader's trades are identical to that trader's (one outcome, counted once)."
    if {"trader_id", "eligible", "dsr", "pbo"} <= set(df.columns):
        text += f"\n\nVerdict: {verdict(df)}"
    return text


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Mochi: backtest trading strategies over large parameter grids (Dagster code location)."""
    from mochi_assets.environment import environment_problem

    problem = environment_problem()  # before numba or Dagster is imported (environment.py)
    if problem:
        _fail(problem)


@main.command()
@click.argument("ticker", required=False)
@click.option("--start", help="First session date, YYYY-MM-DD (inclusive).")
@click.option("--end", help="Last session date, YYYY-MM-DD (inclusive).")
@click.option("--request", "request_file", type=click.Path(dir_okay=False), help="A request document (YAML or JSON).")
@click.option("--timezone", help="Zone of explicit session hours (a request's `session` key); session dates and entry times follow the ticker's session calendar [default: America/New_York].")
@click.option("--no-progress", is_flag=True, help="Do not draw the progress bar.")
@click.option("--force", is_flag=True, help="Re-run every stage, even those whose code and data are unchanged.")
def backtest(ticker, start, end, request_file, timezone, no_progress, force):
    """Run the whole pipeline for TICKER (or the ticker of --request FILE), every scenario.

    \b
    Examples:
      mochi backtest SYN:GOLD --start 2024-01-01 --end 2024-06-30
      mochi backtest --request gold.yaml
    """
    from mochi_assets.request import load_request, parse_request

    try:
        if request_file:
            if ticker or start or end or timezone:
                _fail("give either --request FILE or TICKER --start --end, not both")
            request = load_request(request_file)
        else:
            if not ticker:
                _fail("missing TICKER (or --request FILE); see `mochi backtest --help`")
            doc = {"ticker": ticker, "start": start, "end": end}
            if timezone:
                doc["timezone"] = timezone
            request = parse_request({k: v for k, v in doc.items() if v is not None}, source="command line")
        result = _run_with_progress(request, no_progress, force=force)
    except MochiError as exc:
        _fail_backtest(exc)
    _report(result)
    _exit_without_teardown(0)


@main.command()
@click.argument("ticker")
@click.option("--no-progress", is_flag=True, help="Do not draw the progress bar.")
def refresh(ticker, no_progress):
    """Extend TICKER's backtest to the latest complete session (fetching only new bars) and run it again.

    Provider tickers fetch what is missing; synthetic and imported bars are fixed sources, so their
    backtest is re-run as it is (import a newer file to extend imported bars).
    """
    from mochi_assets.market_data.sources import refresh_request
    from mochi_assets.partitions import sanitize_ticker
    from mochi_assets.store import stored_request
    from mochi_resources.lake import Lake
    from mochi_resources.settings import MochiSettings

    try:
        lake = Lake(MochiSettings.from_env())
        request = refresh_request(lake, stored_request(lake, sanitize_ticker(ticker)))
        result = _run_with_progress(request, no_progress)
    except MochiError as exc:
        _fail_backtest(exc)
    _report(result)
    _exit_without_teardown(0)


def _exit_without_teardown(code: int) -> None:
    """End the process once everything is written and its runs ended: the interpreter's teardown
    after a backtest (numba's and LLVM's finalizers, DuckDB, polars and Dagster's objects) took
    about a second, and leaves nothing behind that outlives the process (no temporary folders;
    the SQLite databases are consistent at every commit)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _fail_backtest(exc: MochiError) -> None:
    """One line: a failed run exits 1, an interruption 128 + the signal (130 for Ctrl-C), bad input 2."""
    name = exc.__class__.__name__
    if name == "Interrupted":
        click.echo(f"mochi: {exc}", err=True)
        # The run is canceled and its pool slots are free; a step that did not stop within the
        # grace period (a kernel chunk, a pool wait) must not hold the process (Python would wait
        # for its threads at exit).
        _exit_without_teardown(128 + exc.signum)
    _fail(str(exc), code=1 if name == "RunFailed" else 2)


def _run_with_progress(request, no_progress: bool, force: bool = False):
    """Run the backtest with a progress bar on stderr (one step per asset materialization); Ctrl-C
    or SIGTERM cancels the run in progress (a second one ends the process at once)."""
    import os

    from mochi_assets import run_worker
    from mochi_assets.memory import threshold_from_env
    from mochi_resources.settings import MochiSettings

    threshold_from_env()  # a bad MOCHI_MALLOC_MMAP_THRESHOLD: one clear error before any work
    parallel = run_worker.parallel_runs(request)
    if run_worker.wants_workers(request, parallel):
        # the scenario runs' worker processes import the definitions while this one does; they wait
        # for the instance this process creates (a refused request creates nothing)
        os.environ["DAGSTER_HOME"] = str(MochiSettings.from_env().dagster_home)
        run_worker.prestart(parallel - 1)
    try:
        return _run_backtest_with_progress(request, no_progress, force)
    finally:
        run_worker.discard_prestarted()


def _run_backtest_with_progress(request, no_progress: bool, force: bool):
    from mochi_assets import interrupt
    from mochi_assets.runner import run_backtest

    interrupt.install()

    bar = None if no_progress else tqdm(total=None, desc=request.ticker, unit="step", file=sys.stderr, dynamic_ncols=True)

    def progress(label: str, done: int, total: int | None) -> None:
        if bar is None:
            return
        if total is not None and bar.total != total:
            bar.total = total
        bar.set_description(f"{request.ticker} [{label}]")
        bar.n = done
        bar.refresh()

    def notice(line: str) -> None:
        tqdm.write(f"mochi: {line}", file=sys.stderr)

    try:
        return run_backtest(request, progress=progress, force=force, notice=notice)
    finally:
        if bar is not None:
            bar.close()


def _report(result) -> None:
    request = result.request
    synthetic = bool(result.leaderboard["synthetic"].any()) if "synthetic" in result.leaderboard.columns else False
    label = " (synthetic data)" if synthetic else ""
    click.echo(f"\nBacktest of {request.ticker}{label}, {request.start} to {request.end}: "
               f"{len(result.scenarios)} scenarios ({', '.join(result.scenarios)})")
    _print_sessions(request)
    _print_locations(result)
    if result.skipped:
        click.echo(f"Up to date, not re-run (code and data versions unchanged): {', '.join(result.skipped)}"
                   " (--force re-runs them)")
    click.echo("\nLeaderboard (top 10; each distinct outcome once; P&L in price units, ticks and R):")
    click.echo(_ranked_table(result.leaderboard, 10))


def _print_sessions(request) -> None:
    """The session calendar and the sessions actually traded (the first one may be after --start)."""
    from mochi_assets.market_data.sources import traded_sessions
    from mochi_resources.lake import Lake
    from mochi_resources.settings import MochiSettings

    calendar, first, last, count, first_session = traded_sessions(Lake(MochiSettings.from_env()), request)
    click.echo(f"Sessions: {calendar.describe()}")
    if first is None:
        click.echo(f"No tradable session between {request.start} and {request.end}.")
        return
    click.echo(f"Traded sessions: {first} to {last} ({count} sessions)")
    if first_session is not None and first > first_session:
        click.echo(f"Note: the bars start too late to warm the ATR up before {request.start}: "
                   f"the first tradable session is {first}.")


def _print_locations(result) -> None:
    click.echo(f"Results in {result.lake_location} (Hive-style folders, ticker={result.request.ticker_key}):")
    for what, where in result.locations.items():
        click.echo(f"  {what:<12} {where}")
    click.echo(f"Dagster runs in {result.dagster_home} (see them with `mochi ui`)")


@main.command("import-bars")
@click.argument("ticker")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--tick-size", type=float, required=True, help="Minimum price increment of the instrument.")
@click.option("--timezone", required=True, help="The instrument's exchange/session timezone (IANA name).")
@click.option("--file-timezone", default=None,
              help="Zone of timestamps in the file that carry no offset [default: UTC; HistData: EST without "
                   "DST (UTC-5); Dukascopy: GMT].")
@click.option("--format", "file_format", type=click.Choice(["auto", "generic", "histdata", "dukascopy"]),
              default="auto", show_default=True,
              help="File layout; auto tells HistData ASCII M1 and Dukascopy CSV exports from generic files.")
@click.option("--session", default="calendar-day", show_default=True,
              help="Trading sessions: forex, us-equity, us-equity-extended, crypto, calendar-day, or hours "
                   "OPEN-CLOSE[/DAYS] in --timezone (e.g. 08:00-16:30, 18:00-17:00/mon-fri); see docs/strategy.md.")
def import_bars(ticker, file, tick_size, timezone, file_timezone, file_format, session):
    """Import a user's bars for TICKER from FILE: CSV or Parquet with ts, open, high, low, close, volume,
    a HistData.com ASCII M1 file, or a Dukascopy CSV export.

    Later backtests of TICKER use these bars instead of any provider.
    """
    from zoneinfo import available_timezones

    from mochi_assets.market_data.imports import read_bars_file
    from mochi_assets.market_data.sessions import parse_session
    from mochi_assets.partitions import sanitize_ticker
    from mochi_assets.store import save_import
    from mochi_resources.lake import Lake
    from mochi_resources.settings import MochiSettings

    try:
        key = sanitize_ticker(ticker)
        if not 0 < tick_size <= 1000:  # also refuses nan and inf
            _fail(f"--tick-size: {tick_size} must be a positive number up to 1000")
        for opt, tz in (("--timezone", timezone), ("--file-timezone", file_timezone)):
            if tz is not None and tz not in available_timezones():
                _fail(f"{opt}: {tz!r} is not a known IANA timezone")
        calendar = parse_session(session, timezone, field="--session")
        bars = read_bars_file(file, file_timezone=file_timezone, format=file_format)
        lake = Lake(MochiSettings.from_env())
        info = save_import(lake, ticker, key, bars, tick_size=tick_size, timezone=timezone,
                           source_file=str(Path(file).resolve()), session=calendar.spec)
    except MochiError as exc:
        _fail(str(exc))
    click.echo(f"Imported {info['rows']} bars of {ticker} ({info['first_ts']} to {info['last_ts']}), "
               f"tick size {tick_size}, timezone {timezone}, into {lake.uri(lake.folder_key('raw', 'imported_bars', key))}")
    click.echo(f"Sessions: {calendar.describe()}")


@main.command()
@click.argument("file", type=click.Path(dir_okay=False))
def submit(file):
    """Hand the request document FILE (YAML or JSON) to the request sensor, which runs it.

    The request is validated first (same messages as `mochi backtest`); nothing is written when it
    is invalid. It lands in the params location of the lake in use (`submissions/`), where
    `backtest_request_sensor` picks it up (`mochi ui` or a running Dagster daemon). Submitting the
    same request twice runs it once.
    """
    from mochi_assets.automation.submissions import submit_request
    from mochi_assets.market_data.sources import check_source
    from mochi_assets.request import load_request
    from mochi_resources.lake import Lake
    from mochi_resources.settings import MochiSettings

    try:
        request = load_request(file)
        lake = Lake(MochiSettings.from_env())
        check_source(lake, request)
        key = submit_request(lake, request)
    except MochiError as exc:
        _fail(str(exc))
    click.echo(f"Submitted request {request.request_id} for {request.ticker} ({request.start} to {request.end}) "
               f"as {lake.uri(key)}")
    click.echo("backtest_request_sensor starts it on its next tick (see the Dagster UI: `mochi ui`).")


@main.command()
@click.argument("ticker", required=False)
@click.option("--scenario", help="Show this scenario's rankings instead of the leaderboard.")
@click.option("--top", default=10, show_default=True, help="How many rows to show.")
@click.option("--walk-forward", "walk_forward", is_flag=True,
              help="Show the walk-forward folds and the robustness table (of --scenario, or of every scenario).")
def results(ticker, scenario, top, walk_forward):
    """Show a finished backtest's leaderboard (or a scenario's rankings); without TICKER, list tickers."""
    from mochi_assets.partitions import sanitize_ticker
    from mochi_resources.lake import Lake
    from mochi_resources.settings import MochiSettings

    try:
        lake = Lake(MochiSettings.from_env())
        if not ticker:
            tickers = lake.list_partitions("rankings", "leaderboard")
            if not tickers:
                click.echo(f"No finished backtests in {lake.location}.")
            for t in tickers:
                click.echo(t)
            return
        key = sanitize_ticker(ticker)
        if walk_forward:
            _show_walk_forward(lake, ticker, key, scenario, top)
            return
        if scenario:
            table_key = lake.key("rankings", "rankings", key, scenario)
        else:
            table_key = lake.key("rankings", "leaderboard", key)
        if not lake.exists(table_key):
            _fail(f"no results for {ticker}{' / ' + scenario if scenario else ''} in {lake.location}: "
                  "run `mochi backtest` first")
        df = lake.read_table(table_key)
    except MochiError as exc:
        _fail(str(exc))
    meta_key = lake.key("ticker-meta", "ticker_meta", key)
    synthetic = lake.exists(meta_key) and bool(lake.read_table(meta_key)["synthetic"].any())
    title = f"{ticker} {'scenario ' + scenario if scenario else 'leaderboard'}"
    click.echo(title + (" (synthetic data)" if synthetic else ""))
    click.echo(_ranked_table(df, top))
    graphs = [lake.uri(k) for k in lake.list_files("graphs", None, key, scenario, suffix=".png")]
    if graphs:
        click.echo("\nGraphs:")
        for g in graphs:
            click.echo(f"  {g}")


WALK_FORWARD_SUMMARY = [
    "folds", "folds_with_pick", "distinct_picks", "oos_trades", "oos_net_r", "oos_sharpe", "oos_win_rate",
    "oos_max_drawdown_r", "is_sharpe_mean", "sharpe_degradation", "top_decile_share", "beats_random_share",
]
WALK_FORWARD_FOLDS = [
    "fold", "oos_start", "oos_end", "trader_id", "is_trades", "is_sharpe", "oos_trades", "oos_net_r", "oos_sharpe",
    "oos_percentile", "oos_top_decile",
]


def _show_walk_forward(lake, ticker: str, key: str, scenario: str | None, top: int) -> None:
    """Print each scenario's walk-forward summary, folds and robustness table (from the lake)."""
    from mochi_assets.validation.assets import ROBUSTNESS_COLUMNS

    if scenario:
        scenarios = [scenario]
    else:
        grids_key = lake.key("ticker-meta", "scenario_grids", key)
        scenarios = lake.read_table(grids_key)["scenario"].to_list() if lake.exists(grids_key) else []
    shown = 0
    for name in scenarios:
        summary_key = lake.key("rankings", "walk_forward_summary", key, name)
        if not lake.exists(summary_key):
            continue
        summary = lake.read_table(summary_key)
        row = summary.row(0, named=True)
        click.echo(f"{ticker} scenario {name}: walk-forward ({row['mode']}, {row['is_sessions']} in-sample / "
                   f"{row['oos_sessions']} out-of-sample sessions ({row.get('windows') or 'request'}), "
                   f"selection: {row['selection']})")
        click.echo(_table(summary, WALK_FORWARD_SUMMARY))
        click.echo(f"verdict: {row['note']}")
        folds = lake.read_table(lake.key("rankings", "walk_forward_folds", key, name))
        if folds.height:
            click.echo("\nFolds:")
            click.echo(_table(folds, WALK_FORWARD_FOLDS))
        robust_key = lake.key("rankings", "robustness", key, name)
        if lake.exists(robust_key):
            click.echo("\nRobustness of the top traders:")
            click.echo(_table(lake.read_table(robust_key).head(top), ROBUSTNESS_COLUMNS))
        graph = lake.key("rankings", "walk_forward", key, name, "walk_forward.png")
        if lake.exists(graph):
            click.echo(f"\nGraph: {lake.uri(graph)}")
        click.echo("")
        shown += 1
    if not shown:
        _fail(f"no walk-forward results for {ticker}{' / ' + scenario if scenario else ''} in {lake.location}: "
              "run `mochi backtest` first")


@main.command(context_settings={"ignore_unknown_options": True, "help_option_names": ["--help"]})
@click.argument("dagster_args", nargs=-1, type=click.UNPROCESSED)
def ui(dagster_args):
    """Start the Dagster web UI (`dagster dev`) on this MOCHI_HOME's instance; extra args go to dagster dev."""
    import os
    import shutil

    from mochi_assets.runner import get_instance, workspace_file
    from mochi_resources.settings import MochiSettings

    try:
        settings = MochiSettings.from_env()
        workspace = workspace_file(settings)
        get_instance(settings).dispose()  # created once, and runs of dead `mochi` processes failed
    except MochiError as exc:
        _fail(str(exc))
    exe = shutil.which("dagster") or str(Path(sys.executable).parent / "dagster")
    click.echo(f"Dagster home {settings.dagster_home}; starting `dagster dev`, code location `mochi` (Ctrl-C stops it)",
               err=True)
    os.execv(exe, [exe, "dev", "-w", str(workspace), *dagster_args])


def _add_stage_commands() -> None:
    """Commands whose code lives with their stage (live trading, SEC filings)."""
    from mochi_assets.filings.commands import filings
    from mochi_assets.live.commands import brokers, live

    for command in (brokers, live, filings):
        main.add_command(command)


_add_stage_commands()

if __name__ == "__main__":
    main()
