"""Drill fixtures: ONE lab and ONE daemon for every lab drill test in the session (scenarios run
sequentially against it, each healing what it broke), plus helpers to run the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


@dataclass
class DrillLab:
    config: Path
    state: Path
    daemon: subprocess.Popen[bytes] | None = None

    def env(self) -> dict[str, str]:
        return {**os.environ, "FAILOVER_STATE_DIR": str(self.state), "FAILOVER_NODE": "drill-test-daemon"}

    def cli(self, *words: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "failover.cli", "--config", str(self.config), *words],
                              capture_output=True, text=True, env=self.env(), timeout=timeout, check=False)

    def drill(self, scenario: str | Path) -> tuple[int, dict[str, Any]]:
        """``drill run SCENARIO --json``: the exit code and the result document."""
        proc = self.cli("drill", "run", str(scenario), "--json")
        out = proc.stdout.strip()
        if not out.startswith("{"):
            raise AssertionError(f"drill run {scenario} -> {proc.returncode}\n{proc.stderr[-3000:]}")
        return proc.returncode, json.loads(out)


def write_config(directory: Path, **policy: Any) -> Path:
    """The lab config with test timings; cool-down 0 so that two failover drills run in one lab."""
    data = yaml.safe_load((REPO / "config" / "lab.yaml").read_text())
    data["workplace"]["profile"] = str(REPO / "config" / "workplaces" / "opendesk.yaml")
    data["health"].update({"interval": 1.0, "timeout": 2.0, "storage_timeout": 10.0, "fail_after": 3,
                           "recover_after": 2})
    data["lab"].update({"backup_interval": "@every 5s", "sync_period": 0.5, "ready_delay": 0.3,
                        "restore_item_delay": 0.0, "slow_latency": 3.0})
    data["policy"].update({"cooldown": 0, **policy})
    path = directory / "lab.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture(scope="session")
def drill_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DrillLab]:
    base = tmp_path_factory.mktemp("drill-lab")
    lab = DrillLab(config=write_config(base), state=base / "state")
    up = lab.cli("lab", "up", "--json")
    if up.returncode != 0:
        lab.cli("lab", "down")
        raise AssertionError(f"lab up failed: {up.stderr[-2000:]}")
    log = (base / "daemon.log").open("wb")
    lab.daemon = subprocess.Popen([sys.executable, "-m", "failover.cli", "--config", str(lab.config), "daemon"],
                                  env=lab.env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield lab
    finally:
        lab.daemon.send_signal(signal.SIGTERM)
        try:
            lab.daemon.wait(timeout=20)
        except subprocess.TimeoutExpired:
            lab.daemon.kill()
            lab.daemon.wait(timeout=10)
        log.close()
        lab.cli("lab", "down")
