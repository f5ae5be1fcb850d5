"""`lab down` after the supervisor was killed with SIGKILL: every recorded child is still stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from failover import cli
from failover.lab import runtime as lab_runtime

REPO = Path(__file__).resolve().parents[2]


def test_down_after_supervisor_crash(tmp_path: Path) -> None:
    data = yaml.safe_load((REPO / "config" / "lab.yaml").read_text(encoding="utf-8"))
    data["workplace"]["profile"] = str(REPO / "config" / "workplaces" / "opendesk.yaml")
    data["state_dir"] = str(tmp_path / "state")
    config = tmp_path / "lab.yaml"
    config.write_text(yaml.safe_dump(data), encoding="utf-8")
    paths = lab_runtime.LabPaths(tmp_path / "state")
    assert cli.main(["--config", str(config), "lab", "up"]) == 0
    records = lab_runtime.read_pids(paths)
    try:
        supervisor = next(r for r in records if r.name == "supervisor")
        children = [r for r in records if r.name != "supervisor"]
        etcd = [r for r in children if r.name.startswith("etcd-")]
        assert len(children) - len(etcd) == 5 and len(etcd) == 3 and all(lab_runtime.is_alive(r) for r in children)
        os.kill(supervisor.pid, signal.SIGKILL)
        assert not lab_runtime.wait_gone([supervisor], timeout=5)
        assert all(lab_runtime.is_alive(r) for r in children)  # orphans keep running ...
        # ... and a new `lab up` would not mistake the dead lab for a running one
        assert cli.main(["--config", str(config), "lab", "down"]) == 0
        for record in records:
            assert not lab_runtime.is_alive(record), f"{record.name} survived `lab down`"
        pdns_dir = next(r.directory for r in records if r.name == "pdns")
        assert pdns_dir and not Path(pdns_dir).exists()  # the crashed lab's PowerDNS dir is gone too
        assert not paths.runtime_json.exists() and not paths.pids_json.exists()
    finally:
        cli.main(["--config", str(config), "lab", "down"])


def test_down_after_supervisor_killed_during_start_up(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 13, defect 6: `lab up &`, SIGKILL the supervisor while it starts its children, then
    `lab down`: no moto_server or pdns_server may survive (each is recorded before it serves, and
    `lab down` sweeps the supervisor's session)."""
    data = yaml.safe_load((REPO / "config" / "lab.yaml").read_text(encoding="utf-8"))
    data["workplace"]["profile"] = str(REPO / "config" / "workplaces" / "opendesk.yaml")
    data["state_dir"] = str(tmp_path / "state")
    config = tmp_path / "lab.yaml"
    config.write_text(yaml.safe_dump(data), encoding="utf-8")
    paths = lab_runtime.LabPaths(tmp_path / "state")
    up = subprocess.Popen([sys.executable, "-m", "failover.cli", "--config", str(config), "lab", "up"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seen: list[lab_runtime.PidRecord] = []
    try:
        supervisor = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not seen:  # poll until the first child process exists
            supervisor = next((r for r in lab_runtime.read_pids(paths) if r.name == "supervisor"), None)
            if supervisor is not None:
                seen = [m for m in lab_runtime.session_members(supervisor.pid) if m.command != "failover.lab"]
            time.sleep(0.01)
        assert supervisor is not None and seen, "the supervisor never started a child"
        assert lab_runtime.read_runtime(paths) is None  # still starting up
        up.kill()
        os.kill(supervisor.pid, signal.SIGKILL)
        up.wait()
        assert not lab_runtime.wait_gone([supervisor], timeout=5)
        seen = lab_runtime.session_members(supervisor.pid)  # everything spawned before the kill
        assert seen
        capsys.readouterr()
        assert cli.main(["--config", str(config), "lab", "down"]) == 0
        assert "lab stopped" in capsys.readouterr().out
        assert not lab_runtime.session_members(supervisor.pid)
        for record in seen:
            assert not lab_runtime.is_alive(record), f"{record.command} (pid {record.pid}) survived `lab down`"
    finally:
        up.kill()
        cli.main(["--config", str(config), "lab", "down"])
