"""The package installs anywhere: the wheel, installed into a fresh virtualenv outside the
repository, validates its embedded config and runs the lab from an unrelated directory.

One test on purpose: building the wheel and installing it with its dependencies (from the package
index or pip's cache) is the expensive part (about a minute).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: what the build reads (pyproject's `readme` included); copied so the build leaves the checkout alone
PACKAGING_INPUTS = ("failover", "providers", "config", "playbooks", "drills", "pyproject.toml", "setup.py",
                    "README.md")


def _run(argv: list[str], *, cwd: Path, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} exited {proc.returncode}:\n"
                             f"{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    return proc


def _copy_sources(dest: Path) -> Path:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "_test")
    for name in PACKAGING_INPUTS:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=ignore)
        else:
            shutil.copy2(source, dest / name)
    return dest


@pytest.mark.timeout(900)
def test_the_wheel_runs_the_cli_and_the_lab_from_anywhere(tmp_path: Path) -> None:
    ours = ("FAILOVER_", "PYTHON", "VIRTUAL_ENV")
    env = {key: value for key, value in os.environ.items() if not key.startswith(ours)}
    src = _copy_sources(tmp_path / "src")
    dist = tmp_path / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(src), "-w", str(dist)], cwd=tmp_path, env=env)
    wheels = list(dist.glob("failover-*.whl"))
    assert len(wheels) == 1, wheels

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], cwd=tmp_path, env=env)
    _run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", f"{wheels[0]}[lab]"], cwd=tmp_path, env=env)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env["FAILOVER_STATE_DIR"] = str(tmp_path / "state")
    failover = str(venv / "bin" / "failover")

    valid = _run([failover, "config", "validate", "--json"], cwd=elsewhere, env=env)
    report = json.loads(valid.stdout)
    assert str(venv) in json.dumps(report), "the embedded config must come from the installed package"
    try:
        up = _run([failover, "lab", "up", "--json"], cwd=elsewhere, env=env)
        assert len(json.loads(up.stdout)["sites"]) == 4
        status = json.loads(_run([failover, "lab", "status", "--json"], cwd=elsewhere, env=env).stdout)
        assert {site["role"] for site in status["sites"].values()} == {"active", "standby"}
    finally:
        down = _run([failover, "lab", "down"], cwd=elsewhere, env=env, check=False)
    assert down.returncode == 0 and "lab stopped" in down.stdout, down.stderr
    assert not (elsewhere / ".failover-state").exists(), "state goes to FAILOVER_STATE_DIR, not the working directory"


def test_the_lab_without_its_extra_says_how_to_install_it(tmp_path: Path) -> None:
    # moto hidden from the import system, as in an install without `[lab]`
    code = "import sys; sys.modules['moto'] = None; from failover.cli import main; raise SystemExit(main())"
    env = {**os.environ, "FAILOVER_STATE_DIR": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-c", code, "lab", "up"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert "pip install 'failover[lab]'" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "lab").exists(), "nothing was started"
