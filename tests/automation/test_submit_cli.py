"""`mochi submit FILE`: the same validation as `mochi backtest`, and nothing written when invalid."""

import json
import os
import subprocess
import sys

import yaml

from tests.automation.requests import small_request

MOCHI = [sys.executable, "-m", "mochi_assets.cli"]


def _run(args, home):
    env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "MOCHI_S3_ENDPOINT", "POLYGON_API_KEY")}
    return subprocess.run([*MOCHI, *args], capture_output=True, text=True, env={**env, "MOCHI_HOME": str(home)}, timeout=120)


def test_submit_validates_then_writes_to_the_params_location(tmp_path):
    home = tmp_path / "home"
    bad = tmp_path / "bad.yaml"
    bad.write_text("ticker: SYN:GOLD\nstart: 2024-05-01\nend: 2024-04-01\natr: {alpha: 2}\n")
    proc = _run(["submit", str(bad)], home)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "bad.yaml: invalid backtest request" in proc.stderr and "end: the date range is inverted" in proc.stderr
    assert not home.exists()

    good = tmp_path / "gold.yaml"
    good.write_text(yaml.safe_dump(small_request()))
    proc = _run(["submit", str(good)], home)
    assert proc.returncode == 0, proc.stderr
    files = list((home / "lake").glob("mochi-params/submissions/*.json"))
    assert len(files) == 1 and files[0].name.startswith("SYN_GOLD-")
    assert json.loads(files[0].read_text())["ticker"] == "SYN:GOLD"
    assert "Submitted request SYN_GOLD-" in proc.stdout
