"""The surface's parts without a lab: token roles, alerts as signals, the outbox surviving a
restart (delivered to a real webhook receiver on loopback), JSON logs, shipped Prometheus rules."""

from __future__ import annotations

import io
import json
import logging
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from aiohttp import web

from failover.api import alerts, auth
from failover.cli.logformat import JsonFormatter
from failover.config import loader
from failover.config.surface import NotificationsConfig
from failover.core import errors, secrets, serving
from failover.health.model import CheckKind, CheckResult, Health, SiteView
from failover.notify import notifier as notifier_mod
from failover.notify.outbox import Delivery, Notice, Outbox
from failover.store import sqlite

REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 30, 4, 0, tzinfo=UTC)


def test_tokens_map_to_operators_and_roles_decide() -> None:
    a = auth.TokenAuthenticator([("tok-approver-123", auth.Operator("alice", ("approver",))),
                                 ("tok-viewer-4567", auth.Operator("victor", ("viewer",)))])
    alice, victor = a.authenticate("tok-approver-123"), a.authenticate("tok-viewer-4567")
    assert alice is not None and alice.may(auth.Permission.APPROVE) and not alice.may(auth.Permission.ALERTS)
    assert victor is not None and not victor.may(auth.Permission.APPROVE) and victor.may(auth.Permission.READ)
    assert a.authenticate("tok-approver-12") is None and a.authenticate("") is None
    assert auth.bearer("Bearer abc") == "abc" and auth.bearer("Basic abc") is None and auth.bearer(None) is None


def _view(name: str, n_components: int = 4, failing: int = 0) -> SiteView:
    checks = (CheckResult("kube", CheckKind.KUBE, True),
              *(CheckResult(f"c{i}", CheckKind.COMPONENT, i >= failing, consecutive_failures=3 * (i < failing))
                for i in range(n_components)))
    return SiteView(name=name, role="active", health=Health.HEALTHY, checks=checks)


def _firing(site: str, name: str, *, ends: datetime | None = None) -> alerts.WebhookMessage:
    return alerts.WebhookMessage.model_validate({"status": "firing", "alerts": [
        {"status": "firing", "labels": {"alertname": name, "site": site}, "annotations": {"summary": "5xx high"},
         "startsAt": NOW.isoformat(), "endsAt": (ends or datetime(1, 1, 1, tzinfo=UTC)).isoformat()}]})


def test_a_firing_alert_degrades_its_site_but_never_downs_it_unless_it_may_vote(tmp_path: Path) -> None:
    store = sqlite.SqliteStore(tmp_path / "s.db")
    book = alerts.AlertBook(store, {"a": 1, "b": 1}, vote=False, fail_after=3, critical_majority=0.5,
                            clock=lambda: NOW)
    assert book.receive(_firing("a", "HighErrorRate")) == {"firing": 1, "resolved": 0, "ignored": 0}
    assert book.receive(_firing("nowhere", "X"))["ignored"] == 1
    view = book.apply({"a": _view("a", n_components=1)})["a"]
    assert view.health is Health.DEGRADED and view.reasons[0] == "alert:HighErrorRate: 5xx high"
    # half the components failing is not a majority; the alert's vote makes it one (and only with a vote)
    assert book.apply({"a": _view("a", n_components=2, failing=1)})["a"].health is Health.DEGRADED
    voter = alerts.AlertBook(store, {"a": 1}, vote=True, fail_after=3, critical_majority=0.5, clock=lambda: NOW)
    assert voter.apply({"a": _view("a", n_components=2, failing=1)})["a"].health is Health.DOWN
    assert voter.apply({"a": _view("a", n_components=4)})["a"].health is Health.DEGRADED
    # expired (endsAt passed) and resolved alerts are gone; the book lives in the store
    book.receive(_firing("b", "Old", ends=NOW - timedelta(seconds=1)))
    assert [x.name for x in book.firing()] == ["HighErrorRate"]
    resolved = _firing("a", "HighErrorRate").model_copy(update={"alerts": [
        _firing("a", "HighErrorRate").alerts[0].model_copy(update={"status": "resolved"})]})
    assert book.receive(resolved)["resolved"] == 1 and book.firing() == []


async def test_outbox_survives_a_restart_and_delivers_at_least_once(tmp_path: Path) -> None:
    received: list[dict[str, object]] = []
    keys: list[str] = []

    async def hook(request: web.Request) -> web.Response:
        received.append(await request.json())
        keys.append(request.headers["Idempotency-Key"])
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner, port = await serving.serve(app, host="127.0.0.1")
    try:
        cfg = NotificationsConfig.model_validate({"channels": {"ops": {"kind": "webhook",
                                                                       "url": f"http://127.0.0.1:{port}/hook"}}})
        notice = Notice(id="run7-x-succeeded", event="failover-succeeded", title="Failover done",
                        sentence="a down for 3 checks; b ready; starting failover run 7", run_id="7", rto_s=12.5)
        first = Outbox(tmp_path / "outbox")
        assert first.put(Delivery(notice=notice, channel="ops")) and not first.put(Delivery(notice, "ops"))
        # "restart": a new notifier over the same state directory sends what the old one queued
        n = notifier_mod.Notifier(cfg, state_dir=tmp_path, store=None, link=lambda _: None, clock=lambda: NOW)
        async with httpx.AsyncClient() as http:
            assert await n.deliver_due(http) == 1
            assert await n.deliver_due(http) == 0
        assert received[0]["sentence"] == notice.sentence and "RTO: 12.5 s" in str(received[0]["text"])
        assert len(keys) == 1 and n.outbox.pending() == []
    finally:
        await runner.cleanup()


async def test_an_unreachable_channel_is_retried_then_given_up_and_reported(tmp_path: Path) -> None:
    cfg = NotificationsConfig.model_validate({"attempts": 2, "backoff": 0.01, "channels": {
        "ops": {"kind": "webhook", "url": "http://127.0.0.1:9/hook"}}})
    now = [NOW]
    n = notifier_mod.Notifier(cfg, state_dir=tmp_path, store=None, link=lambda _: None, clock=lambda: now[0])
    n.outbox.put(Delivery(Notice(id="n1", event="e", title="t", sentence="s"), "ops"))
    async with httpx.AsyncClient() as http:
        assert await n.deliver_due(http) == 0
        assert n.report()["pending"][0]["attempts"] == 1 and "ConnectError" in n.report()["pending"][0]["last_error"]
        assert await n.deliver_due(http) == 0 and n.report()["pending"][0]["attempts"] == 1  # not due yet
        now[0] += timedelta(minutes=1)
        await n.deliver_due(http)
    report = n.report()
    assert report["pending"] == [] and report["failed"][0]["attempts"] == 2


def test_json_log_lines_are_one_object_each_and_redacted() -> None:
    secret = "tok-json-log-secret-42"
    secrets.register(secret)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("failover.test.jsonlog")
    logger.addHandler(handler)
    logger.propagate = False  # the session's secret scan sees raw records: this one holds a secret on purpose
    try:
        logger.warning('token "%s" refused\nsecond line', secret)
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    event = json.loads(lines[0])
    assert event["level"] == "warning" and event["logger"] == "failover.test.jsonlog"
    assert event["message"] == 'token "***" refused\nsecond line' and secret not in lines[0]


def test_shipped_alert_rules_pass_promtool_and_the_dashboard_uses_our_metrics() -> None:
    rules = REPO / "deploy" / "prometheus" / "alerts.yaml"
    proc = subprocess.run(["/usr/bin/promtool", "check", "rules", str(rules)], capture_output=True, text=True,
                          check=False, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    dashboard = json.loads((REPO / "deploy" / "grafana" / "failover-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert exprs and all("failover_" in e for e in exprs)


def test_notification_channels_are_validated_with_file_and_line(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    lab = (REPO / "config" / "lab.yaml").read_text().replace("workplaces/", str(REPO / "config" / "workplaces") + "/")
    cfg.write_text(lab + "notifications:\n  channels: {}\n  sites:\n    ionos-de-fra: [chat]\n")
    with pytest.raises(errors.InputError) as exc:
        loader.load(cfg)
    text = str(exc.value.issues[0])
    assert f"{cfg}:" in text and "unknown channel(s) chat" in text


async def test_the_api_serves_tls_when_configured(tmp_path: Path) -> None:
    from failover.api import server
    from failover.config.surface import ApiConfig
    from tests.api.conftest import _self_signed

    _self_signed(tmp_path)
    cfg = ApiConfig(listen="127.0.0.1:0", tls={"cert": tmp_path / "smtp.crt", "key": tmp_path / "smtp.key"})
    runner, url = await server.start(None, cfg)  # type: ignore[arg-type]  # /healthz needs no daemon
    try:
        assert url.startswith("https://127.0.0.1:")
        async with httpx.AsyncClient(verify=False) as http:
            r = await http.get(f"{url}/healthz")
            assert r.json() == {"status": "ok"}
            refused = await http.post(f"{url}/api/v1/pause")  # no token: refused before the daemon is asked
            assert refused.status_code == 401 and refused.json()["error"].startswith("a bearer token")
    finally:
        await runner.cleanup()


def test_notification_sites_must_be_sites(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    lab = (REPO / "config" / "lab.yaml").read_text().replace("workplaces/", str(REPO / "config" / "workplaces") + "/")
    cfg.write_text(lab + "notifications:\n  channels: {hook: {kind: webhook, url: 'http://127.0.0.1:9/'}}\n"
                   "  sites: {ionos-de-fr: [hook]}\n")
    with pytest.raises(errors.InputError) as exc:
        loader.load(cfg)
    assert "unknown site(s) ionos-de-fr" in str(exc.value.issues[0])


class _UnreachableStore:
    """A store whose backend (etcd) cannot answer: every read raises TemporaryError."""

    def __getattr__(self, name: str) -> object:
        def fail(*args: object, **kwargs: object) -> object:
            raise errors.TemporaryError("etcd: connection refused")
        return fail


def test_metrics_and_alerts_survive_a_store_that_cannot_answer(tmp_path: Path) -> None:
    from failover.metrics import Metrics

    exposition = Metrics(store=_UnreachableStore(), clock=lambda: NOW).render().decode()
    assert "failover_store_up 0.0" in exposition and "failover_fencing_epoch" not in exposition
    book = alerts.AlertBook(_UnreachableStore(), {"a": 1}, vote=False, fail_after=3, critical_majority=0.5,
                            clock=lambda: NOW)
    assert book.apply({"a": _view("a")})["a"].health is Health.HEALTHY
