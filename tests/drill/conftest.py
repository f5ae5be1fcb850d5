"""Drill fixtures: ONE lab and ONE daemon for every lab drill test in the session (scenarios run
sequentially against it, each healing what it broke), plus helpers to run the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from failover.store import sqlite

REPO = Path(__file__).resolve().parents[2]


@dataclass
class DrillLab:
    config: Path
    state: Path
    daemon: subprocess.Popen[bytes] | None = None

    def daemon_log(self, lines: int = 25) -> str:
        path = self.state.parent / "daemon.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(line for line in text.splitlines() if "failover.daemon" in line or "WARN" in line
                         or "ERROR" in line)[-4000:]

    def start_daemon(self) -> None:
        with (self.state.parent / "daemon.log").open("ab") as log:
            self.daemon = subprocess.Popen([sys.executable, "-m", "failover.cli", "--config", str(self.config),
                                            "daemon"], env=self.env(), stdout=log, stderr=subprocess.STDOUT,
                                           start_new_session=True)

    def stop_daemon(self) -> None:
        if self.daemon is None:
            return
        self.daemon.send_signal(signal.SIGTERM)
        try:
            self.daemon.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.daemon.kill()
            self.daemon.wait(timeout=10)

    def env(self) -> dict[str, str]:
        return {**os.environ, "FAILOVER_STATE_DIR": str(self.state), "FAILOVER_NODE": "drill-test-daemon",
                "FAILOVER_DRILL_USER_RATE": "1"}

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
    # probe timeouts with a margin: the test machine is shared and often loaded far beyond its cores
    data["health"].update({"interval": 1.0, "timeout": 4.0, "storage_timeout": 15.0, "fail_after": 3,
                           "recover_after": 2})
    data["lab"].update({"backup_interval": "@every 10s", "sync_period": 0.5, "ready_delay": 0.3,
                        "restore_item_delay": 0.0, "slow_latency": 3.0})
    # rpo 600: on a machine loaded far beyond its cores a replication pass took two minutes, and a
    # standby that flips between ready and not ready would make every drill wait for it
    data["policy"].update({"cooldown": 0, "rpo": 600, **policy})
    path = directory / "lab.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _wait_for_lease(lab: DrillLab, timeout: float = 90) -> None:
    """The daemon holds the lease (so a drill uses it instead of starting its own)."""
    deadline = time.monotonic() + timeout
    store = None
    while time.monotonic() < deadline:
        assert lab.daemon is not None and lab.daemon.poll() is None, "the daemon exited"
        db = lab.state / "failover.db"
        if store is None and db.exists():
            store = sqlite.SqliteStore(db)
        if store is not None and str(store.lease_holder() or "").startswith("drill-test-daemon"):
            store.close()
            return
        time.sleep(0.2)
    raise AssertionError("the daemon did not take the lease")


@pytest.fixture(scope="module")  # a whole lab and a daemon: gone once the drill module is done
def drill_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DrillLab]:
    base = tmp_path_factory.mktemp("drill-lab")
    lab = DrillLab(config=write_config(base), state=base / "state")
    up = lab.cli("lab", "up", "--json")
    if up.returncode != 0:
        lab.cli("lab", "down")
        raise AssertionError(f"lab up failed: {up.stderr[-2000:]}")
    lab.start_daemon()
    try:
        _wait_for_lease(lab)
        yield lab
    finally:
        lab.stop_daemon()
        lab.cli("lab", "down")
