"""The ingress against a real emulated cluster: every probe of the profile, readiness, records."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from failover.config import loader, models
from failover.lab import ingress, seed
from failover.lab.kube import types as kt

cluster_mod = pytest.importorskip("failover.lab.kube.cluster")

PROFILE = loader.load_profile(Path(__file__).resolve().parents[2] / "config" / "workplaces" / "opendesk.yaml")
ZONE = "ckki.lab."


async def _site(*, active: bool) -> tuple[Any, ingress.Ingress]:
    cluster = await cluster_mod.Cluster.start(name="t", host="127.0.0.1", port=0, ready_delay=0.05)
    seed.seed(cluster.store, PROFILE, active=active)
    site = ingress.Ingress(site="site-a", store=cluster.store, profile=PROFILE, zone=ZONE)
    await site.start(host="127.0.0.1")
    return cluster, site


@pytest.fixture
async def active() -> AsyncIterator[tuple[Any, ingress.Ingress, httpx.AsyncClient]]:
    cluster, site = await _site(active=True)
    client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{site.port}", timeout=2.0)
    try:
        yield cluster, site, client
    finally:
        await client.aclose()
        await site.close()
        await cluster.close()


async def _wait_ready(store: kt.Store) -> None:
    import asyncio

    for _ in range(200):
        if all(ingress.component_ready(store, c) for c in PROFILE.components):
            return
        await asyncio.sleep(0.02)
    raise AssertionError("workloads never became ready")


async def test_every_profile_probe_passes_on_the_active_site(active: Any) -> None:
    cluster, _, client = active
    await _wait_ready(cluster.store)
    probes = [(c, p) for c in PROFILE.components for p in c.probes if p.type == "http"]
    assert len(probes) >= 12
    for component, probe in probes:
        response = await client.get(probe.path, headers={"Host": f"{probe.hostname}.ckki.lab"})
        assert response.status_code == probe.expect_status, (component.name, probe.path)
        assert probe.expect_body is None or probe.expect_body in response.text, (component.name, response.text)
        assert response.headers["X-Lab-Site"] == "site-a"
    assert (await client.get("/", headers={"Host": "elsewhere.example"})).status_code == 404


async def test_failed_workload_makes_only_its_app_unavailable(active: Any) -> None:
    cluster, _, client = active
    await _wait_ready(cluster.store)
    cluster.workloads.fail("opendesk", "opendesk-nextcloud")
    assert (await client.get("/status.php", headers={"Host": "files.ckki.lab"})).status_code == 503
    assert (await client.get("/health", headers={"Host": "matrix.ckki.lab"})).status_code == 200
    cluster.workloads.recover("opendesk", "opendesk-nextcloud")
    await _wait_ready(cluster.store)
    assert (await client.get("/status.php", headers={"Host": "files.ckki.lab"})).status_code == 200


async def test_records_are_labelled_configmaps(active: Any) -> None:
    cluster, _, client = active
    await _wait_ready(cluster.store)
    host = {"Host": "files.ckki.lab"}
    assert (await client.post("/lab/records", json={"id": "r-1", "body": "x"}, headers=host)).status_code == 201
    assert (await client.post("/lab/records", json={"id": "Bad Id"}, headers=host)).status_code == 400
    office = {"Host": "office.ckki.lab"}
    assert (await client.post("/lab/records", json={"id": "r-2"}, headers=office)).status_code == 404
    assert (await client.get("/lab/records", headers=host)).json() == {"ids": ["r-1"]}
    obj = cluster.store.get(kt.CONFIGMAPS, "opendesk", "rec-nextcloud-r-1")
    labels = obj["metadata"]["labels"]
    assert labels["app.kubernetes.io/instance"] == "opendesk-nextcloud"
    assert labels[seed.RECORD_LABEL] == "true"


async def test_standby_serves_nothing_until_restored() -> None:
    cluster, site = await _site(active=False)
    try:
        store = cluster.store
        scale = [c for c in PROFILE.components if c.strategy is models.Strategy.SCALE]
        restore = [c for c in PROFILE.components if c.strategy is models.Strategy.RESTORE and c.workloads]
        for c in scale:
            for w in c.workloads:
                rt = kt.STATEFULSETS if w.kind == "StatefulSet" else kt.DEPLOYMENTS
                assert store.get(rt, c.namespace, w.name)["spec"]["replicas"] == 0
        for c in restore:
            assert not ingress.component_ready(store, c)
            with pytest.raises(kt.NotFound):
                store.get(kt.DEPLOYMENTS if c.workloads[0].kind == "Deployment" else kt.STATEFULSETS,
                          c.namespace, c.workloads[0].name)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{site.port}", timeout=2.0) as client:
            assert (await client.get("/status.php", headers={"Host": "files.ckki.lab"})).status_code == 503
            assert (await client.get("/hosting/discovery", headers={"Host": "office.ckki.lab"})).status_code == 503
    finally:
        await site.close()
        await cluster.close()
