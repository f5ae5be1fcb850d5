"""The alert vote in the quorum of observers: every observer publishes its verdict with the firing
alerts applied (the alerts live in etcd, so every instance sees them). With ``api.alerts_vote`` an
alert is one failing critical component check in each observer's view: observers that also see a
component of their own failing vote ``down`` and, as a quorum, confirm the outage; an observer
whose components all answer is not tipped by the alert alone. Without it the alert only makes the
site degraded for everyone. Three daemon instances on a real etcd, hand-built probe views."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from failover import controller
from failover import daemon as daemon_mod
from failover.api import alerts
from failover.config import loader, runtime
from failover.health.model import CheckKind, CheckResult, Health, SiteView
from failover.lab.etcd import EtcdCluster
from failover.services import utcnow

REPO = Path(__file__).resolve().parents[2]
OBSERVERS = ("obs-a", "obs-b", "obs-c")


def write_config(tmp_path: Path, endpoints: list[str], prefix: str, *, vote: bool) -> Path:
    (tmp_path / "workplaces").mkdir(exist_ok=True)
    (tmp_path / "workplaces" / "opendesk.yaml").write_text((REPO / "config/workplaces/opendesk.yaml").read_text())
    cfg = {
        "version": 1, "workplace": {"zone": "ckki.test."}, "providers": {"dns": {"kind": "powerdns"}},
        "dns": {"provider": "dns"}, "health": {"interval": 1.0, "fail_after": 2},
        "sites": [{"name": "a", "provider": "dns", "region": "r1", "role": "active",
                   "kube": {"api": "http://127.0.0.1:9"}},
                  {"name": "b", "provider": "dns", "region": "r2", "kube": {"api": "http://127.0.0.1:9"}}],
        "coordination": {"backend": "etcd", "endpoints": endpoints, "prefix": prefix, "lease_ttl": 5},
        "api": {"listen": "127.0.0.1:0", "alerts_vote": vote},
    }
    path = tmp_path / f"ha-{vote}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


@pytest.fixture
async def trio(etcd_cluster: EtcdCluster, prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
               ) -> AsyncIterator[Callable[[bool], list[daemon_mod.Daemon]]]:
    monkeypatch.setenv("FAILOVER_STATE_DIR", str(tmp_path / "state"))
    made: list[daemon_mod.Daemon] = []

    def make(vote: bool) -> list[daemon_mod.Daemon]:
        rt = runtime.resolve(loader.load(write_config(tmp_path, etcd_cluster.endpoints, f"{prefix}-{vote}",
                                                      vote=vote)))
        made.extend(daemon_mod.Daemon(rt, holder=name) for name in OBSERVERS)
        return made[-3:]

    yield make
    for d in made:
        d.store.withdraw_member(d.holder)
        await d.services.aclose()
        d.store.close()


def views(*, nextcloud_ok: bool) -> dict[str, SiteView]:
    """One observer's probes: keycloak answers, nextcloud answers or not (1 of 2 critical: degraded)."""
    now = utcnow()
    comps = (CheckResult("keycloak", CheckKind.COMPONENT, True, sampled_at=now),
             CheckResult("nextcloud", CheckKind.COMPONENT, nextcloud_ok, "" if nextcloud_ok else "503",
                         consecutive_failures=0 if nextcloud_ok else 2, sampled_at=now,
                         failing_since=None if nextcloud_ok else now - timedelta(seconds=5)))
    health = Health.HEALTHY if nextcloud_ok else Health.DEGRADED
    return {"a": SiteView(name="a", role="active", health=health, checks=comps),
            "b": SiteView(name="b", role="standby", health=Health.HEALTHY, ready=True,
                          checks=(CheckResult("kube", CheckKind.KUBE, True, sampled_at=now),))}


def fire(d: daemon_mod.Daemon) -> None:
    d.surface.alerts.receive(alerts.WebhookMessage(status="firing", alerts=[alerts.Alert(
        status="firing", labels={"alertname": "HighErrorRate", "site": "a"},
        annotations={"summary": "5xx above 5%"})]))


async def test_with_the_alert_vote_two_observers_with_a_failing_component_confirm_the_outage(trio: Any) -> None:
    a, b, c = trio(True)
    fire(a)  # Alertmanager reached one instance; the alert is in etcd for all three
    a.observe(views(nextcloud_ok=False))
    b.observe(views(nextcloud_ok=False))
    votes = c.observe(views(nextcloud_ok=True))
    site = votes["a"]
    assert {v.observer: v.health for v in site.votes} == {"obs-a": "down", "obs-b": "down", "obs-c": "degraded"}
    assert site.confirmed(2) and all("alert:HighErrorRate" in v.reason for v in site.votes)
    decision = controller.decide(c.snapshot(votes), c.policy)
    assert decision.sentence.startswith("a down for 2 of 3 observers (obs-a down: alert:HighErrorRate: 5xx above")
    assert "no quorum" not in decision.sentence


async def test_without_the_alert_vote_the_alert_never_tips_an_observer(trio: Any) -> None:
    a, b, c = trio(False)
    fire(a)
    a.observe(views(nextcloud_ok=False))
    b.observe(views(nextcloud_ok=False))
    votes = c.observe(views(nextcloud_ok=True))
    site = votes["a"]
    assert [v.health for v in site.votes] == ["degraded"] * 3 and not site.down
    assert all(v.reason.startswith("alert:HighErrorRate") for v in site.votes)
    assert not controller.decide(c.snapshot(votes), c.policy).acts
