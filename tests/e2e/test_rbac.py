"""Least privilege, proven on a recorded run: a whole lab failover (probes, replication, fence,
restore, DNS, verify) asks each site's Kubernetes API for nothing outside
``deploy/site-rbac/clusterrole.yaml``, and every resource that role names was used. The
deployment manifests apply to the lab's Kubernetes API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from failover.kube import KubeClient
from failover.lab import rbac
from failover.lab.kube import types as kt
from tests.e2e.conftest import LAB_OPERATOR, LAB_OPERATOR_ENV, Lab, wait_for

pytestmark = pytest.mark.timeout(900)  # a lab and a failover on a possibly loaded machine

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


async def failover_recorded(lab: Lab) -> list[dict[str, str]]:
    """A whole failover through the CLI (one daemon cycle replicates the backups, then ``run``
    fences the active site, restores on the target, switches DNS and verifies), then one probe
    round; returns every request the product made to the sites' kube APIs (RBAC terms)."""

    def replicated() -> dict[str, Any] | None:
        lab.cli("daemon", "--once", timeout=300)
        plan = lab.cli("plan", "failover", "--to", TARGET, "--json", check=False)  # exit 1: would refuse
        return plan if plan.get("backup") or plan.get("skipped_backups") else None  # any age: --allow-stale

    await wait_for(replicated, timeout=240, what="a backup replicated to the target", interval=1.0)
    # readiness is not what this test is about (a loaded machine may keep a probe verdict pending)
    run = lab.cli("run", "failover", "--to", TARGET, "--allow-stale", "--force", "--reason",
                  "recording the requests a failover makes", "--as", LAB_OPERATOR, "--json", timeout=420,
                  extra_env=LAB_OPERATOR_ENV)
    assert run["phase"] == "succeeded", run
    lab.cli("status", "--live", "--json", timeout=300)  # a probe round of its own, not the snapshot
    status = lab.cli("lab", "status", "--json")
    return [r for site, records in status["kube_access"].items() if site != "scs-management"
            for r in records if r["user"].startswith("failover-")]


async def test_a_failover_needs_nothing_outside_the_site_role(lab: Lab) -> None:
    records = await failover_recorded(lab)
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
