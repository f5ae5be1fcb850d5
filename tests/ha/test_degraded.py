"""etcd without quorum (here: unreachable): no automatic failover, `status` says why, and a manual
run needs an explicit override with a reason, which is recorded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from failover import cli
from failover.store import sqlite

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FAILOVER_STATE_DIR", str(tmp_path / "state"))
    (tmp_path / "workplaces").mkdir()
    (tmp_path / "workplaces" / "opendesk.yaml").write_text((REPO / "config/workplaces/opendesk.yaml").read_text())
    path = tmp_path / "c.yaml"
    path.write_text("""\
version: 1
workplace: {zone: ckki.test.}
providers: {dns: {kind: powerdns}}
dns: {provider: dns}
health: {interval: 0.2, timeout: 0.3, storage_timeout: 0.3, fail_after: 1, recover_after: 1}
coordination: {backend: etcd, endpoints: ["http://127.0.0.1:9"], request_timeout: 0.5}
sites:
  - {name: a, provider: dns, region: r1, role: active, kube: {api: "http://127.0.0.1:9"}}
  - {name: b, provider: dns, region: r2, kube: {api: "http://127.0.0.1:9"}}
""")
    return path


def test_status_says_the_coordination_backend_is_unavailable(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--config", str(config), "status", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["coordination"]["available"] is False and "etcd unavailable" in doc["coordination"]["error"]
    assert "no automatic failover" in doc["coordination"]["effect"] and doc["sites"]["a"]["role"] == "active"


def test_a_manual_run_needs_the_override_and_its_reason_is_recorded(
        config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--config", str(config), "run", "failover", "--to", "b"]) == 2
    assert "--without-coordination" in capsys.readouterr().err
    assert not (tmp_path / "state" / "failover.db").exists()  # nothing was changed
    rc = cli.main(["--config", str(config), "run", "failover", "--to", "b", "--json",
                   "--without-coordination", "etcd lost with IONOS; approved by the crisis team",
                   "--force", "--reason", "b is unreachable from here too; the crisis team decided"])
    assert rc in (0, 1)  # the sites of this config are unreachable: the run itself may fail
    local = sqlite.SqliteStore(tmp_path / "state" / "failover.db")
    try:
        decisions = [d.sentence for d in local.decisions(limit=20)]
        assert any(s.startswith("manual run without coordination by ") and s.endswith(
            "etcd lost with IONOS; approved by the crisis team") for s in decisions), decisions
        assert len(local.list_runs()) == 1
    finally:
        local.close()
