"""Scenario documents: the shipped ones validate, bad ones get every problem with file:line and exit 2,
the loader finds drills beside the config; reports render from the journal and carry no secret."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from failover.config import loader
from failover.core import secrets
from failover.drill import html, report, scenario
from failover.drill import journal as journal_mod
from failover.drill.model import DrillResult, Finding, InjectRecord, Measurements, Outcome, StepTiming

REPO = Path(__file__).resolve().parents[2]
SHIPPED = sorted(p.stem for p in (REPO / "drills").glob("*.yaml"))


def cli(*words: str, state: Path, config: Path | None = None) -> subprocess.CompletedProcess[str]:
    pre = ["--config", str(config)] if config else []
    return subprocess.run([sys.executable, "-m", "failover.cli", *pre, *words], capture_output=True, text=True,
                          env={"FAILOVER_STATE_DIR": str(state), "PATH": "/usr/bin:/bin"}, timeout=60, check=False)


def test_the_shipped_scenarios_cover_the_issue_and_validate(tmp_path: Path) -> None:
    assert {"provider-region-outage", "dns-provider-outage", "standby-storage-lost", "flapping-network",
            "component-failure", "corrupted-newest-backup", "test-failover"} <= set(SHIPPED)
    proc = cli("drill", "validate", *SHIPPED, "--json", state=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert sorted(json.loads(proc.stdout)["valid"]) == SHIPPED


BAD = """\
name: bad-drill
type: lab
timeline:
  - {at: 0, do: down, site: nowhere}
  - {at: 2, do: component=nosuch, site: active}
  - {at: 3, do: explode, site: active}
expectations:
  takes_over: mars
"""


def test_a_bad_scenario_gets_every_problem_with_file_and_line_and_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    proc = cli("drill", "run", str(path), state=tmp_path)
    assert proc.returncode == 2
    assert f"{path}:6: timeline.2: Value error, do: unknown inject 'explode'" in proc.stderr
    assert "Traceback" not in proc.stderr
    path.write_text(BAD.replace("  - {at: 3, do: explode, site: active}\n", ""))
    proc = cli("drill", "run", str(path), state=tmp_path)
    assert proc.returncode == 2
    assert f"{path}:4: timeline[0].site: unknown site 'nowhere'" in proc.stderr
    assert f"{path}:5: timeline[1].do: component 'nosuch' has no workloads" in proc.stderr
    assert f"{path}:7: takes_over: unknown site 'mars'" in proc.stderr
    assert "3 problems found" in proc.stderr


@pytest.mark.parametrize(("text", "line", "message"), [
    ("name: x\ntype: lab\ntimeline: [\n", 4, "YAML syntax error"),
    ("name: x\ntype: drill\ntimeline: []\n", 2, "type: Input should be 'lab', 'test-failover' or 'tabletop'"),
    ("name: x\ntype: lab\ntimeline:\n  - {at: 'T+1q', do: down, site: active}\n", 4, "write seconds"),
    ("name: x\ntype: lab\nsettle: 1\ntimeline:\n  - {at: 5, do: heal}\n  - {at: 1, do: heal}\n", 1,
     "in time order"),
    ("name: x\ntype: tabletop\ntimeline:\n  - {at: 0, do: down, site: active}\n", 4, "injects nothing"),
    ("name: x\ntype: lab\ntimeline:\n  - {at: 0, do: heal}\nexpectations: {bogus: 1}\n", 5, "unknown field"),
])
def test_scenario_errors_name_the_line(tmp_path: Path, text: str, line: int, message: str) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    loaded = loader.load(REPO / "config" / "lab.yaml")
    with pytest.raises(scenario.ScenarioError) as err:
        scenario.load(path, loaded.config, loaded.profile)
    assert any(i.line == line and message in i.message for i in err.value.issues), err.value.issues


def test_the_loader_finds_drills_beside_the_config_then_the_shipped_ones(tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / "drills").mkdir()
    config = tmp_path / "config" / "lab.yaml"
    config.write_text((REPO / "config" / "lab.yaml").read_text().replace(
        "profile: workplaces/opendesk.yaml", f"profile: {REPO / 'config' / 'workplaces' / 'opendesk.yaml'}"))
    (tmp_path / "drills" / "component-failure.yaml").write_text(
        "name: local-copy\ntype: tabletop\ntimeline:\n  - {at: 0, do: note, text: hello}\n")
    assert scenario.find("component-failure", config) == tmp_path / "drills" / "component-failure.yaml"
    assert scenario.find("flapping-network", config) == REPO / "drills" / "flapping-network.yaml"
    proc = cli("drill", "run", "no-such-drill", state=tmp_path, config=config)
    assert proc.returncode == 2 and "no scenario of that name" in proc.stderr


def test_a_tabletop_drill_is_journaled_and_reported(tmp_path: Path) -> None:
    path = tmp_path / "tabletop.yaml"
    path.write_text("name: table\ntype: tabletop\ntitle: Planbesprechung\nparticipants:\n"
                    "  - {name: Krisenstab, role: Leitung}\ntimeline:\n"
                    "  - {at: 0, do: note, text: IONOS meldet Regionsausfall}\n"
                    "  - {at: 'T+1m', do: note, text: Krisenstab entscheidet}\n")
    proc = cli("drill", "run", str(path), "--json", state=tmp_path)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert [i["at_s"] for i in doc["injects"]] == [0.0, 60.0]
    md = cli("drill", "report", doc["id"], "--format", "md", state=tmp_path).stdout
    assert "Planbesprechung (Tabletop)" in md and "Krisenstab entscheidet" in md
    assert cli("drill", "report", "99", state=tmp_path).returncode == 2


def _result(secret: str) -> DrillResult:
    t0 = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)
    m = Measurements(t0=t0, active_at_start="a", standby_at_start="b", failover_run="1", run_phase="succeeded",
                     target="b", rto_s=12.5, data_loss_window_s=4.0, outage_started_at=t0 + timedelta(seconds=1),
                     verified_at=t0 + timedelta(seconds=13), dns_ttl_s=5)
    return DrillResult(
        id="1", scenario="s", title="T", type="lab", label="drill-1-abcd", outcome=Outcome.FAILED, started_at=t0,
        finished_at=t0 + timedelta(seconds=20), measurements=m,
        injects=[InjectRecord(at_s=0, ts=t0, what="down", site="a", detail=f"token {secret}")],
        steps=[StepTiming(key="restore[1]", status="succeeded", started_at=t0 + timedelta(seconds=5),
                          finished_at=t0 + timedelta(seconds=9), duration_s=4.0)],
        findings=[Finding(severity="critical", title="x", detail=f"password={secret}")])


def test_reports_never_contain_a_secret(tmp_path: Path) -> None:
    secret = "s3cr3t-drill-value-42"
    secrets.register(secret)
    journal = journal_mod.DrillJournal.open(tmp_path)
    row = journal.start(scenario="s", type="lab", scenario_doc={"name": "s", "type": "lab", "timeline": [
        {"at": 0, "do": "down", "site": "a"}]}, label_of=lambda seq: f"drill-{seq}-abcd")
    journal.finish(row.seq, status="failed", result=_result(secret).model_dump(mode="json"))
    rep = report.build(journal.get(row.id), policy_rto=300, policy_rpo=120)
    for text in (report.markdown(rep), html.render(rep), report.json_document(rep),
                 (tmp_path / "failover.db").read_bytes().decode("latin-1")):
        assert secret not in text
    page = html.render(rep)
    assert '<svg xmlns="http://www.w3.org/2000/svg" id="timeline"' in page and 'data-step="restore[1]"' in page
    assert "@media print" in page and "<script" not in page


def test_drill_names_never_collide_with_production() -> None:
    from failover.drill import naming

    label = naming.new_label(7)
    assert naming.is_label(label) and label.startswith("drill-7-")
    fqdn = naming.hostname(label, "files", "ckki.lab.")
    assert naming.split_hostname(fqdn, "ckki.lab.") == ("files", label)
    assert naming.split_hostname("files.ckki.lab", "ckki.lab.") is None  # production names are not drill names
    assert naming.split_hostname("files.other.ckki.lab", "ckki.lab.") is None
    assert naming.namespace(label, "opendesk") == f"{label}-opendesk"
