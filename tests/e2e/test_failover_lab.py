"""The failover spine end to end in the lab: outage → detection → fence → restore → DNS → verify."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from failover import daemon as daemon_mod
from failover.health import probes
from failover.lab.control import ControlClient
from failover.lab.kube import types as kt
from tests.e2e.conftest import Lab, newest_run, wait_for

pytestmark = pytest.mark.timeout(480)  # a lab, a failover and its checks

ACTIVE = "ionos-de-fra"


async def ready_standbys(d: daemon_mod.Daemon) -> list[str]:
    views = d.watcher.views()
    return [n for n, v in views.items() if v.role == "standby" and v.ready]


async def assert_served_by(lab: Lab, site: str, *, timeout: float = 3.0) -> None:
    """Every hostname resolves to the site's ingress and every component's probe passes there
    (``timeout`` per answer: a slow answer on a loaded machine is still an answer)."""
    rt = lab.runtime()
    ep = rt.sites[site]
    assert rt.resolver is not None
    resolver = probes.make_resolver(*rt.resolver, timeout=timeout)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as client:
        for comp in rt.profile.components:
            for p in comp.probes:
                if p.type != "http" or not p.hostname:
                    continue
                fqdn = rt.fqdn(p.hostname)
                assert await probes.dns_answer(resolver, fqdn, str(ep.ingress_address)) == ep.ingress_address
                await probes.http_component(client, scheme="http", address=str(ep.ingress_address),
                                            port=ep.ingress_port, fqdn=fqdn, probe=p)


async def finished_run(d: daemon_mod.Daemon, timeout: float = 120) -> dict[str, Any]:
    async def done() -> Any:
        run = newest_run(d)
        return run if run is not None and str(run.phase) in daemon_mod.TERMINAL else None

    run = await wait_for(done, timeout=timeout, what="a finished failover run")
    return daemon_mod.run_document(d.store, str(run.id))


async def test_site_down_fails_over_automatically_and_old_site_stays_fenced(lab: Lab, running_daemon: Any) -> None:
    d = running_daemon(lab)
    await wait_for(lambda: ready_standbys(d), timeout=60, what="a ready standby")
    await assert_served_by(lab, ACTIVE)

    def preferred_ready_in_status() -> dict[str, Any] | None:  # the status contract scripts rely on
        doc = lab.cli("status", "--json")
        return doc if doc["sites"]["stackit-eu01"]["ready"] else None

    status = await wait_for(preferred_ready_in_status, timeout=60, what="stackit-eu01 ready in status --json")
    assert status["active"] == ACTIVE and status["paused"] is False and status["run"] is None
    for name, site in status["sites"].items():
        assert {"role", "health", "reasons", "ready", "replication_lag_s"} <= site.keys(), name
    assert status["sites"][ACTIVE]["health"] in ("healthy", "degraded")  # never down before the fault
    assert status["sites"]["stackit-eu01"]["ready"] is True
    plan = lab.cli("plan", "failover", "--to", "stackit-eu01", "--json")  # a dry run changes nothing
    assert plan["changes_made"] is False and plan["backup"] and plan["within_rpo"] is True
    assert plan["restore_groups"] == [0, 1, 2, 3, 4] and plan["stages"][0]["name"] == "fence"
    assert newest_run(d) is None and daemon_mod.active_of(d.store, d.cfg) == ACTIVE
    lab.cli("lab", "break", ACTIVE, "--mode", "down")
    doc = await finished_run(d)
    assert doc["phase"] == "succeeded", doc
    assert (doc["from"], doc["to"]) == (ACTIVE, "stackit-eu01")
    assert doc["rto_s"] is not None and doc["rto_s"] > 0
    assert doc["data_loss_window_s"] is not None and doc["data_loss_window_s"] >= 0
    await assert_served_by(lab, "stackit-eu01")
    sentences = [dec.sentence for dec in d.store.decisions(limit=50)]
    assert any(s.startswith(f"{ACTIVE} down for") and "stackit-eu01 ready; starting failover run" in s
               for s in sentences), sentences
    # exactly one Restore per restore group on the target
    kube = d.services.kube_for("stackit-eu01")
    restores = await kube.list(kt.VELERO_RESTORES, "velero")
    groups = [r["metadata"]["labels"]["failover.io/group"] for r in restores]
    assert sorted(groups) == sorted(set(groups)) and len(groups) == 5
    # the old site comes back: no flip-back, no second active, its apps stay at zero
    lab.cli("lab", "heal", ACTIVE)

    def old_site_answers_again() -> bool:  # the controller has seen it back: a flip-back would start now
        return d.watcher.views()[ACTIVE].health.value in ("healthy", "degraded")

    await wait_for(old_site_answers_again, timeout=60, what=f"{ACTIVE} answering again after the heal")
    assert daemon_mod.active_of(d.store, d.cfg) == "stackit-eu01"
    roles = daemon_mod.roles_of(d.store, d.cfg)
    assert roles[ACTIVE] == "fenced" and list(roles.values()).count("active") == 1
    assert len(d.store.list_runs(limit=10)) == 1
    old = d.services.kube_for(ACTIVE)

    async def old_site_at_zero() -> bool:
        deploy = await old.get(kt.DEPLOYMENTS, "opendesk", "opendesk-nextcloud")
        return deploy is not None and int(deploy["spec"]["replicas"]) == 0

    await wait_for(old_site_at_zero, timeout=20, what="the fenced site's apps at zero replicas")
    await assert_served_by(lab, "stackit-eu01")
    assert len(d.store.list_runs(limit=10)) == 1 and daemon_mod.active_of(d.store, d.cfg) == "stackit-eu01"


async def test_blackhole_with_the_preferred_standby_unready_fails_over_to_the_next(
        lab: Lab, running_daemon: Any) -> None:
    """Timeouts, not refusals; and a standby that is not ready is skipped with its reason."""
    d = running_daemon(lab)
    await wait_for(lambda: ready_standbys(d), timeout=60, what="a ready standby")
    lab.cli("lab", "break", "stackit-eu01", "--mode", "storage")

    async def stackit_unready() -> bool:
        views = d.watcher.views()
        return not views["stackit-eu01"].ready and views["otc-eu-de"].ready

    await wait_for(stackit_unready, timeout=45, what="stackit not ready, otc ready")
    lab.cli("lab", "break", ACTIVE, "--mode", "blackhole")
    doc = await finished_run(d)
    assert doc["phase"] == "succeeded" and doc["to"] == "otc-eu-de", doc
    sentences = [dec.sentence for dec in d.store.decisions(limit=50)]
    assert any("stackit-eu01 skipped (not ready: " in s and "otc-eu-de ready" in s for s in sentences), sentences
    reasons = d.watcher.views()["stackit-eu01"].ready_reasons
    assert any(r.startswith(("storage:", "bsl:")) for r in reasons), reasons
    assert any("timed out" in s for s in sentences if s.startswith(f"{ACTIVE} down")), sentences
    assert d.watcher.views()[ACTIVE].role == "fenced"
    await assert_served_by(lab, "otc-eu-de")


async def test_flapping_never_fails_over_and_approval_waits(lab_factory: Any, running_daemon: Any) -> None:
    lab = lab_factory(mode="approval")
    d = running_daemon(lab)
    await wait_for(lambda: ready_standbys(d), timeout=60, what="a ready standby")
    interval = d.cfg.health.interval
    rt = lab.runtime()
    assert rt.lab is not None
    control = ControlClient(str(rt.lab["control"]))
    rounds = d.watcher.sites[ACTIVE].rounds
    for _ in range(8):  # the kube API fails every other cycle (toggled in milliseconds through the lab API)
        await control.break_site(ACTIVE, "api-only")
        await asyncio.sleep(interval)
        await control.heal(ACTIVE)
        await asyncio.sleep(interval)
    assert d.watcher.sites[ACTIVE].rounds - rounds >= 8  # the probes really saw the flapping
    assert newest_run(d) is None
    assert daemon_mod.active_of(d.store, d.cfg) == ACTIVE
    lab.cli("lab", "break", ACTIVE, "--mode", "down")
    run = await wait_for(lambda: newest_run(d), timeout=45, what="a run waiting for approval")
    seen = d.watcher.sites[ACTIVE].rounds  # three more probe rounds: the run must still be waiting
    await wait_for(lambda: d.watcher.sites[ACTIVE].rounds >= seen + 3, timeout=60, what="three more probe rounds")
    run = d.store.get_run(str(run.id))
    assert str(run.phase) == "waiting_approval"
    assert daemon_mod.active_of(d.store, d.cfg) == ACTIVE
    assert lab.cli("approve", str(run.id))["rc"] == 0
    doc = await finished_run(d)
    assert doc["phase"] == "succeeded" and doc["to"] == "stackit-eu01"
    assert len(d.store.list_runs(limit=10)) == 1
