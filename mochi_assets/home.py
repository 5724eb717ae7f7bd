"""The Dagster home of a MOCHI_HOME: where it is, seeded once with the repository's dagster.yaml.

Kept free of heavy imports: `mochi backtest` prepares it before anything else, so that worker
processes can start at once (run_worker.py)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from filelock import FileLock

from mochi_resources.settings import MochiSettings

INSTANCE_LOCK = ".mochi-instance.lock"  # in the Dagster home: held while the instance is created
LOCK_TIMEOUT_S = 120
_REPO_DAGSTER_YAML = Path(__file__).resolve().parents[1] / "dagster.yaml"


def ensure_dagster_home(settings: MochiSettings) -> Path:
    """Point DAGSTER_HOME at `$MOCHI_HOME/dagster` unless set, seeded with the repo's dagster.yaml."""
    home = settings.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    os.environ["DAGSTER_HOME"] = str(home)
    target = home / "dagster.yaml"
    if not target.exists() and _REPO_DAGSTER_YAML.is_file():
        with FileLock(str(home / INSTANCE_LOCK), timeout=LOCK_TIMEOUT_S):
            if not target.exists():
                staged = home / f".dagster.yaml.{os.getpid()}"
                shutil.copyfile(_REPO_DAGSTER_YAML, staged)
                os.replace(staged, target)
    return home
