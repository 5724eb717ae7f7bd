"""Six `mochi backtest` commands started at once on a fresh home: the instance is created once,
each finishes or is refused with one line, and a seventh afterwards works."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

MOCHI = [sys.executable, "-m", "mochi_assets.cli"]
REQUEST = """
ticker: SYN:GOLD
start: 2024-03-01
end: 2024-04-12
atr: {short: 3, long: 5, alpha: 0.5}
duration_min: 90
scenarios:
  breakout-long: {direction: long, offset_ticks: [0, 10], stop_atr: [1.0], limit_atr: [1.0]}
"""


def test_six_backtests_at_once_on_a_fresh_home_then_a_seventh(tmp_path):
    home = tmp_path / "home"
    req = tmp_path / "gold.yaml"
    req.write_text(REQUEST)
    env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "MOCHI_S3_ENDPOINT", "POLYGON_API_KEY")}
    env["MOCHI_HOME"] = str(home)
    procs = [subprocess.Popen([*MOCHI, "backtest", "--request", str(req), "--no-progress"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(6)]
    outs = [p.communicate(timeout=900) for p in procs]
    codes = [p.returncode for p in procs]
    assert 0 in codes, [e[-1500:] for _, e in outs]
    for code, (out, err) in zip(codes, outs):
        assert "Traceback" not in err, err[-3000:]
        if code != 0:  # refused while another one runs this ticker: one line naming the run
            assert code == 2 and "is still in progress" in err.strip().splitlines()[-1], err[-1500:]
    seventh = subprocess.run([*MOCHI, "backtest", "--request", str(req), "--no-progress"], env=env,
                             capture_output=True, text=True, timeout=600)
    assert seventh.returncode == 0, seventh.stderr[-3000:]
    assert "Leaderboard" in seventh.stdout
    assert (Path(home) / "dagster" / "dagster.yaml").is_file()
