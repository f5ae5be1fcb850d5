"""The operations surface around one lab failover: API and its auth, metrics, the status page in
headless Chromium, an Alertmanager alert, approval through the API, and the notices arriving in a
Matrix room on a real Synapse and in an SMTP mailbox — while two unreachable channels fail and
are reported without holding the run up."""

from __future__ import annotations

import asyncio
import email
import email.policy
import os
import re
import secrets
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from failover import daemon as daemon_mod
from failover.core import tasks
from tests.api.conftest import Mailbox, Matrix, chromium, free_port
from tests.e2e.conftest import Lab, make_config, wait_for

pytestmark = pytest.mark.timeout(900)  # generous: a machine shared by many suites runs the lab slowly

ACTIVE, TARGET = "ionos-de-fra", "stackit-eu01"
REPO = Path(__file__).resolve().parents[2]
TOKENS = {name: secrets.token_urlsafe(24) for name in ("APPROVER", "VIEWER", "ALERTMANAGER")}


def surface_config(tmp: Path, synapse: Matrix, smtp: Mailbox) -> Path:
    path = make_config(tmp, mode="approval", rpo=900)  # a loaded machine must not make the backup stale
    data = yaml.safe_load(path.read_text())
    data["health"].update({"timeout": 5.0, "fail_after": 4})  # a machine shared by many suites is slow
    data["api"] = {"listen": "127.0.0.1:0", "refresh_s": 1.0, "tokens": [
        {"name": "alice", "roles": ["approver"], "token": {"env": "TEST_API_APPROVER"}},
        {"name": "victor", "roles": ["viewer"], "token": {"env": "TEST_API_VIEWER"}},
        {"name": "alertmanager", "roles": ["alertmanager"], "token": {"env": "TEST_API_ALERTMANAGER"}},
    ]}
    token = {"env": "TEST_MATRIX_TOKEN"}
    data["notifications"] = {
        "backoff": 0.5,
        "channels": {
            "chat": {"kind": "matrix", "homeserver": synapse.url, "room": synapse.room, "access_token": token},
            "mail": {"kind": "email", "host": smtp.host, "port": smtp.port, "starttls": True, "verify_tls": False,
                     "sender": "failover@ckki.lab", "to": ["krisenstab@ckki.lab"]},
            "chat-down": {"kind": "matrix", "homeserver": f"http://127.0.0.1:{free_port()}", "room": synapse.room,
                          "access_token": token},
            "mail-down": {"kind": "email", "host": "127.0.0.1", "port": free_port(), "starttls": True,
                          "sender": "failover@ckki.lab", "to": ["krisenstab@ckki.lab"]},
        },
        # a failover away from IONOS notifies only through channels that do not run on IONOS
        "sites": {ACTIVE: ["chat", "mail", "chat-down", "mail-down"]},
    }
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture
async def lab_daemon(tmp_path: Path, synapse: Matrix, smtp: Mailbox,
                     monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[Lab, daemon_mod.Daemon]]:
    for name, value in TOKENS.items():
        monkeypatch.setenv(f"TEST_API_{name}", value)
    monkeypatch.setenv("TEST_MATRIX_TOKEN", synapse.token)
    lab = Lab(config=surface_config(tmp_path, synapse, smtp), state=tmp_path / "state")
    await asyncio.to_thread(lab.cli, "lab", "up", "--json")
    task: asyncio.Task[Any] | None = None
    try:
        d = daemon_mod.Daemon(lab.runtime(), holder="api-test")
        task = tasks.create_guarded_task(d.run(), name="daemon under test", eternal=True)
        yield lab, d
    finally:
        if task is not None:
            await tasks.cancel_and_wait(task, timeout=10)
        await asyncio.to_thread(lab.cli, "lab", "down", check=False)


def auth(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[name]}"}


def samples(exposition: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for family in text_string_to_metric_families(exposition):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(series: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float | None:
    want = set(labels.items())
    found = [v for (n, ls), v in series.items() if n == name and want <= set(ls)]
    return found[0] if found else None


async def scrape(api: httpx.AsyncClient, tmp: Path, label: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    r = await api.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    (tmp / f"metrics-{label}.txt").write_text(r.text)
    check = await asyncio.create_subprocess_exec("/usr/bin/promtool", "check", "metrics",
                                                 stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                                                 stderr=asyncio.subprocess.STDOUT)
    out, _ = await check.communicate(r.content)
    assert check.returncode == 0, out.decode()
    return samples(r.text)


def mail_texts(box: Mailbox) -> list[str]:
    out = []
    for raw in list(box.messages):
        body = email.message_from_string(raw, policy=email.policy.default).get_body()
        out.append(str(body.get_content()) if body is not None else "")
    return out


async def cli(lab: Lab, *words: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
    env = lab.env()
    env.pop("FAILOVER_TOKEN", None)
    if token:
        env["FAILOVER_TOKEN"] = token
    return await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "failover.cli", *words],
                                   capture_output=True, text=True, env=env, timeout=60, check=False)


async def test_lab_failover_through_the_operations_surface(
        lab_daemon: tuple[Lab, daemon_mod.Daemon], synapse: Matrix, smtp: Mailbox, tmp_path: Path) -> None:
    lab, d = lab_daemon
    url = await wait_for(lambda: d.surface.url, timeout=30, what="the API server")
    async with httpx.AsyncClient(base_url=url, timeout=10) as api:
        async def status() -> dict[str, Any]:
            return dict((await api.get("/api/v1/status")).json())

        async def target_ready() -> bool:
            return bool((await status())["sites"].get(TARGET, {}).get("ready"))

        await wait_for(target_ready, timeout=180, what=f"{TARGET} ready in /api/v1/status")
        assert (await api.get("/healthz")).json() == {"status": "ok"}
        assert (await api.get("/readyz")).status_code == 200

        # --- before: metrics and the page ---------------------------------------------------------
        before = await scrape(api, tmp_path, "before")
        assert value(before, "failover_active_site", site=ACTIVE) == 1
        assert value(before, "failover_site_health", site=ACTIVE, failover_site_health="down") == 0
        assert value(before, "failover_site_health", site=TARGET, failover_site_health="unknown") == 0
        assert value(before, "failover_site_ready", site=TARGET) == 1
        assert value(before, "failover_run_in_progress") is None
        assert value(before, "failover_last_run_rto_seconds") is None
        assert (value(before, "failover_probe_duration_seconds_count", site=ACTIVE, kind="kube") or 0) > 0
        epoch_before = value(before, "failover_fencing_epoch")
        dom = await chromium(f"{url}/", tmp_path, budget_ms=2500, screenshot=tmp_path / "page-before.png")
        assert f'<span id="active-site">{ACTIVE}</span>' in dom and 'data-phase="none"' in dom
        assert re.search(r'data-refreshes="\d+"', dom), "the page did not refresh itself"

        # --- an alert in: a signal, shown in status and the decision, never a failover -----------
        alert = {"version": "4", "status": "firing", "receiver": "failover", "alerts": [
            {"status": "firing", "labels": {"alertname": "HighErrorRate", "site": ACTIVE},
             "annotations": {"summary": "5xx above 5%"}, "startsAt": "2026-01-01T00:00:00Z",
             "endsAt": "0001-01-01T00:00:00Z", "fingerprint": "abc123"}]}
        assert (await api.post("/api/v1/alerts", json=alert)).status_code == 401
        refused = await api.post("/api/v1/alerts", json=alert, headers=auth("VIEWER"))
        assert refused.status_code == 403 and "may not alerts" in refused.json()["error"]
        taken = await api.post("/api/v1/alerts", json=alert, headers=auth("ALERTMANAGER"))
        assert taken.status_code == 200 and taken.json()["firing"] == 1

        async def alert_in_decision() -> dict[str, Any] | None:
            doc = await status()
            shown = "alert:HighErrorRate: 5xx above 5%" in (doc.get("decision") or "") and \
                doc["sites"][ACTIVE]["reasons"][:1] == ["alert:HighErrorRate: 5xx above 5%"]
            return doc if shown else None  # the decision is live; the stored site view follows within seconds

        doc = await wait_for(alert_in_decision, timeout=60, what="the alert in the decision sentence")
        assert doc["sites"][ACTIVE]["health"] == "degraded" and doc["run"] is None
        assert doc["decision"].startswith(f"{ACTIVE} degraded (") and "no action" in doc["decision"]
        resolved = {**alert, "status": "resolved", "alerts": [{**alert["alerts"][0], "status": "resolved"}]}
        assert (await api.post("/api/v1/alerts", json=resolved, headers=auth("ALERTMANAGER"))).json()["resolved"] == 1

        # --- the outage: a run that waits for approval -------------------------------------------
        await asyncio.to_thread(lab.cli, "lab", "break", ACTIVE, "--mode", "down")

        async def waiting_run() -> dict[str, Any] | None:
            run = (await status())["run"]
            return run if run and run["phase"] == "waiting_approval" else None

        run = await wait_for(waiting_run, timeout=120, what="a run waiting for approval")
        run_id = run["id"]
        dom = await chromium(f"{url}/", tmp_path)
        assert f'data-run="{run_id}" data-phase="waiting_approval"' in dom
        approve = f"/api/v1/runs/{run_id}/approve"
        anonymous = await api.post(approve)
        assert anonymous.status_code == 401 and anonymous.json()["error"].startswith("a bearer token is required")
        assert (await api.post(approve, headers={"Authorization": "Bearer wrong-token"})).status_code == 401
        wrong_role = await api.post(approve, headers=auth("VIEWER"))
        assert wrong_role.status_code == 403 and "may not approve" in wrong_role.json()["error"]
        remote = await cli(lab, "status", "--server", url, "--json")
        assert remote.returncode == 0, remote.stderr
        assert '"waiting_approval"' in remote.stdout
        no_token = await cli(lab, "approve", run_id, "--server", url)
        assert no_token.returncode == 1 and "HTTP 401" in no_token.stderr
        approved = await cli(lab, "approve", run_id, "--server", url, token=TOKENS["APPROVER"])
        assert approved.returncode == 0 and "approved by alice" in approved.stdout, approved.stderr
        assert d.store.get_run(run_id).approved_by == "alice"

        # --- during the run: the page shows its progress ----------------------------------------------
        async def progressing() -> dict[str, Any] | None:
            doc = (await api.get(f"/api/v1/runs/{run_id}")).json()
            return doc if any(s["status"] == "succeeded" for s in doc["steps"]) else None

        await wait_for(progressing, timeout=240, what="a succeeded step of the approved run")
        dom = await chromium(f"{url}/", tmp_path, screenshot=tmp_path / "page-during.png")
        if f'data-run="{run_id}" data-phase="running"' in dom:  # the usual case: restores take seconds
            assert re.search(r'data-step="[^"]+" data-status="succeeded"', dom)  # fence may end unconfirmed
        else:  # a fast machine finished the run while Chromium started
            assert re.search(rf'<tr data-run="{run_id}">.*?(succeeded|failed)', dom), dom

        # --- after: the run, the metrics, the page ----------------------------------------------------
        async def finished() -> dict[str, Any] | None:
            doc = (await api.get(f"/api/v1/runs/{run_id}")).json()
            return doc if doc["phase"] in daemon_mod.TERMINAL else None

        doc = await wait_for(finished, timeout=400, what="the run to finish")
        assert doc["phase"] == "succeeded" and doc["to"] == TARGET and doc["rto_s"] > 0, doc

        async def old_site_down_in_metrics() -> dict[tuple[str, frozenset[tuple[str, str]]], float] | None:
            # the fenced site is probed with its new role's checks: "unknown" until they have samples
            after = await scrape(api, tmp_path, "after")
            return after if value(after, "failover_site_health", site=ACTIVE, failover_site_health="down") == 1 \
                else None

        after = await wait_for(old_site_down_in_metrics, timeout=60, what=f"{ACTIVE} down in the metrics")
        assert value(after, "failover_active_site", site=TARGET) == 1
        assert value(after, "failover_active_site", site=ACTIVE) is None
        assert value(after, "failover_site_role", site=ACTIVE, role="fenced") == 1
        assert value(after, "failover_run_in_progress") is None
        assert value(after, "failover_last_run_rto_seconds", run=run_id, since="outage") == pytest.approx(doc["rto_s"])
        assert value(after, "failover_last_run_data_loss_seconds", run=run_id) == \
            pytest.approx(doc["data_loss_window_s"])
        assert (value(after, "failover_decisions_total", verdict="request-approval") or 0) >= 1
        assert (value(after, "failover_fencing_epoch") or 0) > (epoch_before or 0)
        assert value(after, "failover_alerts_received_total", status="firing") == 1

        async def new_active_in_status() -> bool:  # the page renders the daemon's published status
            return (await status())["active"] == TARGET

        await wait_for(new_active_in_status, timeout=60, what=f"{TARGET} active in /api/v1/status")
        dom = await chromium(f"{url}/", tmp_path, screenshot=tmp_path / "page-after.png")
        phone = await chromium(f"{url}/", tmp_path, screenshot=tmp_path / "page-phone.png", size="412,1400")
        assert 'name="viewport"' in phone and f'<span id="active-site">{TARGET}</span>' in phone
        assert f'<span id="active-site">{TARGET}</span>' in dom
        assert re.search(rf'<tr data-run="{run_id}">.*?succeeded.*?<td class="rto">\d+\.\d s</td>', dom)
        if os.environ.get("FAILOVER_UPDATE_DOCS"):
            shutil.copy(tmp_path / "page-during.png", REPO / "docs" / "status-page.png")
        keep = os.environ.get("FAILOVER_TEST_ARTIFACTS")  # CI: keep the screenshots beyond pytest's tmp rotation
        if keep:
            Path(keep).mkdir(parents=True, exist_ok=True)
            for artifact in [*tmp_path.glob("page-*.png"), *tmp_path.glob("metrics-*.txt")]:
                shutil.copy(artifact, Path(keep) / artifact.name)

        # --- notices: delivered to the room and the mailbox; the unreachable ones reported ---------
        sentence = next(x.sentence for x in d.store.decisions(limit=50)
                        if isinstance(x.payload, dict) and x.payload.get("run") == run_id)
        assert sentence.startswith(f"{ACTIVE} down for")

        def done_notice(texts: list[str]) -> str | None:
            return next((t for t in texts if "Failover done" in t and "RTO:" in t), None)

        message = await wait_for(lambda: done_notice(synapse.messages()), timeout=120, what="the Matrix message")
        assert sentence in message and f"RTO: {doc['rto_s']:.1f} s" in message and f"/runs/{run_id}" in message
        mail = await wait_for(lambda: done_notice(mail_texts(smtp)), timeout=120, what="the e-mail")
        assert sentence in mail and smtp.tls_sessions >= 1
        assert any("waits for approval" in t for t in synapse.messages())

        async def failures_reported() -> list[dict[str, Any]] | None:
            pending = (await status())["notifications"]["pending"]
            failed = [p for p in pending if p["channel"] in ("chat-down", "mail-down") and p["last_error"]]
            return failed if {p["channel"] for p in failed} == {"chat-down", "mail-down"} else None

        failed = await wait_for(failures_reported, timeout=120, what="the unreachable channels reported")
        assert any("smtp 127.0.0.1" in p["last_error"] for p in failed)
        assert any("matrix http://127.0.0.1" in p["last_error"] for p in failed)
        final = samples((await api.get("/metrics")).text)
        assert (value(final, "failover_notifications_total", channel="chat", outcome="delivered") or 0) >= 2
        assert (value(final, "failover_notifications_total", channel="mail-down", outcome="failed") or 0) >= 1
        page = await api.get("/")
        assert 'id="notifications"' in page.text and "mail-down" in page.text

        # --- the CLI against the remote daemon: history, pause with the wrong and the right role -----
        hist = await cli(lab, "history", "--server", url, "--json")
        assert hist.returncode == 0 and f'"rto_s": {doc["rto_s"]}' in hist.stdout
        viewer = await cli(lab, "pause", "--server", url, "--token", TOKENS["VIEWER"])
        assert viewer.returncode == 1 and "HTTP 403" in viewer.stderr
        paused = await cli(lab, "pause", "--server", url, token=TOKENS["APPROVER"])
        assert paused.returncode == 0 and (await status())["paused"] is True
        assert (await api.post("/api/v1/resume", headers=auth("APPROVER"))).json()["paused"] is False

        # --- no secret in any answer ---------------------------------------------------------------------
        bodies = [(await api.get(p)).text for p in ("/", "/metrics", "/api/v1/status", "/api/v1/runs",
                                                    "/api/v1/decisions", f"/runs/{run_id}")]
        for secret in [*TOKENS.values(), synapse.token]:
            assert not any(secret in b for b in bodies)
