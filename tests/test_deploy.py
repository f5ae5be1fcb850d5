"""deploy/ is consistent: every kustomization names files that exist and parse, one overlay per
provider builds on the base, the daemon runs without API access in its own cluster, and the
systemd unit and the Containerfile start the installed product (not the lab)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
PROVIDERS = ("ionos", "stackit", "otc", "scs")


def kustomization(directory: Path) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((directory / "kustomization.yaml").read_text(encoding="utf-8"))
    return doc


@pytest.mark.parametrize("directory", ["base", "site-rbac"])
def test_every_listed_manifest_exists_and_parses(directory: str) -> None:
    root = DEPLOY / directory
    kinds = []
    for name in kustomization(root)["resources"]:
        kinds += [doc["kind"] for doc in yaml.safe_load_all((root / name).read_text(encoding="utf-8")) if doc]
    assert kinds


@pytest.mark.parametrize("provider", PROVIDERS)
def test_one_overlay_per_provider_on_the_base(provider: str) -> None:
    doc = kustomization(DEPLOY / "overlays" / provider)
    assert doc["resources"] == ["../../base"] and doc["nameSuffix"] == f"-{provider}"
    assert {"config.yaml", "opendesk.yaml"} <= set(doc["configMapGenerator"][0]["files"])
    patches = "\n".join(p["patch"] for p in doc["patches"])
    assert f"failover-{provider}" in patches and "storageClassName" in patches


def test_the_daemon_has_no_api_access_in_its_own_cluster() -> None:
    objects = [d for name in kustomization(DEPLOY / "base")["resources"]
               for d in yaml.safe_load_all((DEPLOY / "base" / name).read_text(encoding="utf-8")) if d]
    kinds = {o["kind"] for o in objects}
    assert not kinds & {"Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"}
    pod = next(o for o in objects if o["kind"] == "Deployment")["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False and pod["securityContext"]["runAsNonRoot"] is True
    container = pod["containers"][0]
    assert container["args"] == ["daemon"] and container["securityContext"]["readOnlyRootFilesystem"] is True


def test_the_site_role_grants_no_wildcards_and_no_secrets() -> None:
    role = next(d for d in yaml.safe_load_all((DEPLOY / "site-rbac" / "clusterrole.yaml").read_text()) if d)
    for rule in role["rules"]:
        assert "*" not in rule["verbs"] and "*" not in rule.get("resources", []), rule
        assert "secrets" not in rule.get("resources", []) and "delete" not in rule["verbs"], rule


def test_systemd_unit_and_containerfile_run_the_installed_daemon() -> None:
    unit = (DEPLOY / "systemd" / "failover.service").read_text(encoding="utf-8")
    assert "ExecStart=/opt/failover/bin/failover daemon" in unit and "User=failover" in unit
    containerfile = (DEPLOY / "Containerfile").read_text(encoding="utf-8")
    assert 'CMD ["daemon"]' in containerfile and "[lab]" not in containerfile and "USER 10001" in containerfile
