"""Least privilege, proven on a recorded run: a whole lab failover (probes, fence, restore, DNS,
verify, the fenced site scaled to zero) asks each site's Kubernetes API for nothing outside
``deploy/site-rbac/clusterrole.yaml``, and every resource that role names was used. The
deployment manifests apply to the lab's Kubernetes API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from failover import daemon as daemon_mod
from failover.kube import KubeClient
from failover.lab import rbac
from failover.lab.kube import types as kt
from tests.e2e.conftest import Lab, newest_run, wait_for

pytestmark = pytest.mark.timeout(480)  # a lab and a failover

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
ACTIVE, TARGET = "ionos-de-fra", "stackit-eu01"


def manifests(directory: Path) -> list[dict[str, Any]]:
    """The objects a kustomization lists (its own resources, no generators)."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text(encoding="utf-8"))
    objects: list[dict[str, Any]] = []
    for name in kustomization["resources"]:
        objects += [doc for doc in yaml.safe_load_all((directory / name).read_text(encoding="utf-8")) if doc]
    return objects


def site_role() -> dict[str, Any]:
    return next(o for o in manifests(DEPLOY / "site-rbac") if o["kind"] == "ClusterRole")


async def failover_recorded(lab: Lab, d: daemon_mod.Daemon) -> list[dict[str, str]]:
    async def ready() -> bool:
        views = d.watcher.views()
        return any(v.role == "standby" and v.ready for v in views.values())

    await wait_for(ready, timeout=90, what="a ready standby")
    lab.cli("lab", "break", ACTIVE, "--mode", "down")

    async def done() -> Any:
        run = newest_run(d)
        return run if run is not None and str(run.phase) in daemon_mod.TERMINAL else None

    run = await wait_for(done, timeout=180, what="a finished failover run")
    assert str(run.phase) == "succeeded"
    lab.cli("lab", "heal", ACTIVE)
    old = d.services.kube_for(ACTIVE)

    async def fenced_at_zero() -> bool:  # the fence reaches the healed site (a recorded request too)
        deploy = await old.get(kt.DEPLOYMENTS, "opendesk", "opendesk-nextcloud")
        return deploy is not None and int(deploy["spec"]["replicas"]) == 0

    await wait_for(fenced_at_zero, timeout=60, what="the fenced site at zero replicas")
    status = lab.cli("lab", "status", "--json")
    return [r for site, records in status["kube_access"].items() if site != "scs-management"
            for r in records if r["user"].startswith("failover-")]


async def test_a_failover_needs_nothing_outside_the_site_role(lab: Lab, running_daemon: Any) -> None:
    records = await failover_recorded(lab, running_daemon(lab))
    assert {r["resource"] for r in records} >= {"deployments", "restores", "namespaces"}
    role = site_role()
    derived = yaml.safe_dump(rbac.rules_from(records), sort_keys=False)
    missing = rbac.uncovered(role["rules"], records)
    assert not missing, f"the run needed more than the role: {missing}\nrules of the run:\n{derived}"
    used = {(r["group"], f"{r['resource']}/{r['subresource']}" if r["subresource"] else r["resource"])
            for r in records if not r["non_resource"]}
    granted = {(g, res) for rule in role["rules"]
               for g in rule.get("apiGroups", []) for res in rule.get("resources", [])}
    assert granted <= used, f"the role grants resources no run used: {granted - used}\nrules of the run:\n{derived}"

    # the manifests apply to a site's API (the lab's admin kubeconfig), and the role reads back as written
    rt = lab.runtime()
    admin = KubeClient(site=TARGET, kubeconfig=rt.sites[TARGET].kubeconfig)
    by_kind = {rt_.kind: rt_ for rt_ in kt.ALL}
    try:
        for obj in manifests(DEPLOY / "site-rbac") + manifests(DEPLOY / "base"):
            await admin.ensure(by_kind[obj["kind"]], obj)
        served = await admin.get(kt.CLUSTERROLES, None, "failover-operator")
        assert served is not None and served["rules"] == role["rules"]
        assert await admin.get(kt.DEPLOYMENTS, "failover-system", "failover") is not None
    finally:
        await admin.aclose()
