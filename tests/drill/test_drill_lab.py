"""Every shipped scenario in ONE lab with ONE daemon, sequentially (each drill heals what it broke):
expectations met, a wrong expectation fails with a finding naming it, the test failover leaves
production and DNS alone and nothing behind (also after kill -9 + ``drill cleanup``), and the
HTML Übungsbericht renders in headless Chromium with its SVG timeline.

Order matters: the drills without a failover run first; the two failover drills last (the first
moves the workplace to the preferred standby, the second from there to the next one)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from failover.config import loader, runtime
from failover.core import kubetypes as kt
from failover.drill import journal as journal_mod
from failover.drill import testfailover
from failover.health import probes
from failover.kube import KubeClient
from failover.velero import bucket
from tests.drill.conftest import DrillLab

pytestmark = pytest.mark.timeout(300)

ACTIVE, STANDBY = "ionos-de-fra", "stackit-eu01"
CHROMIUM = "/usr/bin/chromium"


async def wait_for(predicate: Any, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        assert time.monotonic() < deadline, f"condition not met within {timeout}s"
        await asyncio.sleep(0.1)


async def standby_holds_a_backup(rt: runtime.Runtime) -> None:
    """The test failover restores what is replicated; a fresh lab needs a moment for the first replica."""
    loc = rt.sites[STANDBY].storage
    assert loc is not None

    async def present() -> bool:
        return await bucket.newest_complete(loc) is not None

    await wait_for(present, timeout=180)


def runtime_of(lab: DrillLab) -> runtime.Runtime:
    os.environ["FAILOVER_STATE_DIR"] = str(lab.state)
    return runtime.resolve(loader.load(lab.config))


def assert_passed(code: int, doc: dict[str, Any], lab: DrillLab | None = None) -> None:
    failed = [e for e in doc["expectations"] if not e["passed"]]
    assert code == 0 and doc["outcome"] == "passed" and not failed, (
        doc.get("error"), failed, doc["findings"], lab.daemon_log() if lab else "")


def test_component_failure_degrades_without_failover(drill_lab: DrillLab) -> None:
    code, doc = drill_lab.drill("component-failure")
    assert_passed(code, doc, drill_lab)
    assert doc["measurements"]["failover_run"] is None
    assert doc["measurements"]["records_written"] > 0 and doc["measurements"]["records_lost"] == 0


def test_flapping_network_never_fails_over(drill_lab: DrillLab) -> None:
    code, doc = drill_lab.drill("flapping-network")
    assert_passed(code, doc, drill_lab)
    assert [i["what"] for i in doc["injects"]] == ["down", "heal"] * 3


def test_dns_provider_outage_no_failover_and_standbys_not_ready(drill_lab: DrillLab) -> None:
    code, doc = drill_lab.drill("dns-provider-outage")
    assert_passed(code, doc, drill_lab)
    not_ready = [f for f in doc["findings"] if "nicht bereit" in f["title"]]
    assert any(f["title"] == f"Standby {STANDBY} zeitweise nicht bereit" and "dns-api" in f["detail"]
               for f in not_ready), doc["findings"]


def test_standby_storage_lost_no_ready_standby_no_failover(drill_lab: DrillLab) -> None:
    code, doc = drill_lab.drill("standby-storage-lost")
    assert_passed(code, doc, drill_lab)
    titles = {f["title"] for f in doc["findings"]}
    assert {f"Standby {s} zeitweise nicht bereit" for s in (STANDBY, "otc-eu-de", "scs-pco-prod1")} <= titles


def test_a_wrong_expectation_fails_with_a_finding_that_names_it(drill_lab: DrillLab, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("name: wrong-expectation\ntype: lab\nsettle: 2\nrun_timeout: 3\ntimeline:\n"
                     "  - {at: 0, do: component=jitsi, site: active}\n"
                     "expectations:\n  no_action: true\n  site_health: {active: down}\n")
    code, doc = drill_lab.drill(wrong)
    assert code == 1 and doc["outcome"] == "failed"
    by_name = {e["name"]: e["passed"] for e in doc["expectations"]}
    assert by_name == {"no_action": True, "site_health.active": False}
    assert any(f["severity"] == "critical" and "site_health.active" in f["title"] for f in doc["findings"])


async def _production(rt: runtime.Runtime, kube: KubeClient) -> tuple[tuple[str, ...], tuple[Any, ...]]:
    """What users see (DNS answers) and what the active site runs (workload specs)."""
    assert rt.resolver is not None
    resolver = probes.make_resolver(*rt.resolver, timeout=2)
    answers = []
    for fqdn in sorted(rt.hostnames.values()):
        answer = await resolver.resolve(fqdn, "A")
        answers.append(f"{fqdn}={','.join(sorted(r.to_text() for r in answer))}")
    workloads = []
    for rtype in (kt.DEPLOYMENTS, kt.STATEFULSETS):
        for obj in await kube.list(rtype):
            meta = obj["metadata"]
            workloads.append((meta["namespace"], meta["name"], meta["uid"], meta.get("generation"),
                              obj["spec"].get("replicas")))
    return tuple(answers), tuple(sorted(workloads))


async def _drill_objects(kube: KubeClient) -> list[str]:
    spaces = [o["metadata"]["name"] for o in await kube.list(kt.NAMESPACES)
              if o["metadata"]["name"].startswith("drill-")]
    restores = [o["metadata"]["name"] for o in await kube.list(kt.VELERO_RESTORES, "velero",
                                                               label_selector="failover.io/drill")]
    return spaces + restores


async def test_test_failover_touches_neither_production_nor_dns_and_leaves_nothing(drill_lab: DrillLab) -> None:
    rt = runtime_of(drill_lab)
    active = testfailover.kube_for(rt, rt.sites[ACTIVE])
    standby = testfailover.kube_for(rt, rt.sites[STANDBY])
    try:
        await standby_holds_a_backup(rt)
        before = await _production(rt, active)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "failover.cli", "--config", str(drill_lab.config), "drill", "run", "test-failover",
            "--json", env=drill_lab.env(), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        communicate = asyncio.ensure_future(proc.communicate())
        observations, seen_drill_objects = 0, False
        while not communicate.done():  # during the drill: production and DNS never change
            assert await _production(rt, active) == before
            seen_drill_objects = seen_drill_objects or bool(await _drill_objects(standby))
            observations += 1
            await asyncio.wait([communicate], timeout=0.5)
        out, _ = communicate.result()
        doc = json.loads(out)
        assert_passed(proc.returncode or 0, doc, drill_lab)
        assert observations >= 3 and seen_drill_objects
        assert [s["key"] for s in doc["steps"]] == ["select-backup", "restore", "scale", "verify", "cleanup"]
        assert len(doc["verification"]) >= 8 and all("drill-" in v for v in doc["verification"])
        assert await _production(rt, active) == before
        assert await _drill_objects(standby) == []
    finally:
        await active.aclose()
        await standby.aclose()


@pytest.mark.parametrize("cleaner", ["drill cleanup", "the next daemon start"])
async def test_kill_9_mid_drill_then_cleanup_leaves_nothing(drill_lab: DrillLab, cleaner: str) -> None:
    rt = runtime_of(drill_lab)
    standby = testfailover.kube_for(rt, rt.sites[STANDBY])
    journal = journal_mod.DrillJournal.open(drill_lab.state)
    await standby_holds_a_backup(rt)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "failover.cli", "--config", str(drill_lab.config), "drill", "run", "test-failover",
        "--json", env=drill_lab.env(), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)

    async def restore_created() -> bool:  # journaled before it is created, then visible on the standby
        assert proc.returncode is None, "the drill ended before it created its Restore"
        planned = any(r.kind == "restore" for row in journal.open_drills() for r in journal.resources(row.seq))
        return planned and any(name.endswith("-restore") for name in await _drill_objects(standby))

    try:
        await wait_for(restore_created, timeout=120)
        proc.send_signal(signal.SIGKILL)
        await asyncio.wait_for(proc.wait(), timeout=10)
        (killed,) = journal.open_drills()
        assert await _drill_objects(standby)  # the killed drill left its objects
        if cleaner == "drill cleanup":
            cleanup = drill_lab.cli("drill", "cleanup", "--json")
            assert cleanup.returncode == 0, cleanup.stderr
            assert json.loads(cleanup.stdout) == {"cleaned": [killed.id], "left": {}}
        else:
            drill_lab.stop_daemon()
            drill_lab.start_daemon()
            async def cleaned_by_the_daemon() -> bool:
                return journal.get(killed.id).status == "interrupted"

            await wait_for(cleaned_by_the_daemon, timeout=120)
        assert await _drill_objects(standby) == []
        assert journal.get(killed.id).status == "interrupted" and journal.open_drills() == []
    finally:
        if proc.returncode is None:
            proc.kill()
        journal.close()
        await standby.aclose()


def test_provider_region_outage_fails_over_to_the_preferred_standby(drill_lab: DrillLab, tmp_path: Path) -> None:
    code, doc = drill_lab.drill("provider-region-outage")
    assert_passed(code, doc, drill_lab)
    m = doc["measurements"]
    assert m["target"] == STANDBY and m["rto_s"] > 0 and m["data_loss_window_s"] is not None
    keys = [s["key"] for s in doc["steps"]]
    assert {"fence", "select-backup", "dns-switch", "verify", "mark-active"} <= set(keys)
    assert any(f["title"] == "DNS-TTL verlängert die reale WAZ" for f in doc["findings"])
    _html_report_renders_in_chromium(drill_lab, doc, tmp_path)
    md = drill_lab.cli("drill", "report", doc["id"], "--format", "md").stdout
    assert "## 6. Soll-Ist-Abgleich" in md and f"{m['rto_s']:.1f} s" in md


def _html_report_renders_in_chromium(lab: DrillLab, doc: dict[str, Any], tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    made = lab.cli("drill", "report", doc["id"], "--format", "html", "--output", str(page))
    assert made.returncode == 0, made.stderr
    base = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'chr'}"]
    shot = tmp_path / "report.png"
    subprocess.run([*base, f"--screenshot={shot}", "--window-size=1200,1600", page.as_uri()], capture_output=True,
                   timeout=90, check=True)
    assert shot.stat().st_size > 10_000
    dom = subprocess.run([*base, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=90,
                         check=True).stdout
    assert '<svg xmlns="http://www.w3.org/2000/svg" id="timeline"' in dom
    for step in doc["steps"]:
        assert f'data-step="{step["key"]}"' in dom
    assert 'class="marker"' in dom and "Umschaltung verifiziert" in dom


def test_corrupted_newest_backup_restores_the_previous_one(drill_lab: DrillLab) -> None:
    code, doc = drill_lab.drill("corrupted-newest-backup")
    m = doc["measurements"]
    assert m["newest_backup_at_inject"] and m["previous_backup_at_inject"]
    assert_passed(code, doc, drill_lab)  # select-backup verifies the tarball and falls back (issue 13)
    assert m["backup"] == m["previous_backup_at_inject"] and m["target"] == m["standby_at_start"]


def test_drill_list_shows_every_drill_and_the_trend(drill_lab: DrillLab) -> None:
    proc = drill_lab.cli("drill", "list", "--json")
    doc = json.loads(proc.stdout)
    names = {d["scenario"] for d in doc["drills"]}
    assert {"component-failure", "flapping-network", "test-failover", "provider-region-outage"} <= names
    assert doc["trend"]["provider-region-outage"][0]["rto_s"] > 0
