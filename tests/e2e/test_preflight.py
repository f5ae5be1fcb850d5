"""``config validate --online`` against the lab: every check passes, and one provider's wrong
credentials fail exactly that provider's checks; sites reach their clusters with the kubeconfigs
their providers hand out."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from failover import kubeaccess
from failover.core import kubetypes as kt
from providers import registry
from tests.e2e.conftest import Lab, make_config


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    tmp = tmp_path_factory.mktemp("preflight")
    started = Lab(config=make_config(tmp), state=tmp / "state")
    started.cli("lab", "up", "--json")
    try:
        yield started
    finally:
        started.cli("lab", "down", check=False)


def preflight(lab: Lab, config: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "failover.cli", "--config", str(config), "config", "validate",
                           "--online", *extra], capture_output=True, text=True, env=lab.env(), timeout=300, check=False)


def test_every_check_passes_against_the_lab(lab: Lab) -> None:
    proc = preflight(lab, lab.config, "--json")
    doc = json.loads(proc.stdout)
    failed = [c for c in doc["checks"] if not c["ok"]]
    assert proc.returncode == 0 and doc["online"] and not failed, failed
    names = {(c["scope"].split()[0], c["name"]) for c in doc["checks"]}
    assert names == {("provider", "auth"), ("site", "cluster"), ("site", "kubeconfig"), ("site", "velero"),
                     ("site", "bucket"), ("dns", "zone")}
    assert len(doc["checks"]) == 5 + 4 * 4 + 1
    writable = [c["detail"] for c in doc["checks"] if c["name"] == "bucket" and "writable" in c["detail"]]
    assert len(writable) == 3  # the standbys, where the replicator writes


def test_wrong_credentials_of_one_provider_fail_its_checks_only(lab: Lab, tmp_path: Path) -> None:
    wrong = tmp_path / "otc-password"
    wrong.write_text("not-the-password")
    data = yaml.safe_load(lab.config.read_text())
    data["providers"]["otc"]["credentials"] = {"password": {"file": str(wrong)}}
    config = tmp_path / "wrong.yaml"
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    proc = preflight(lab, config)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stdout.splitlines()
    failing = [line for line in lines if line.startswith("FAIL")]
    assert {tuple(line.split()[1:4]) for line in failing} == {("provider", "otc", "auth"),
                                                              ("site", "otc-eu-de", "cluster")}, lines
    assert "not-the-password" not in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert lines[-1].endswith("; 2 failed")


@pytest.mark.parametrize("site", ["ionos-de-fra", "stackit-eu01", "otc-eu-de", "scs-pco-prod1"])
async def test_the_provider_hands_out_a_working_kubeconfig(lab: Lab, site: str) -> None:
    rt = lab.runtime()
    ep = dataclasses.replace(rt.sites[site], kubeconfig=None, kube_api=None)  # only the provider knows
    adapters = {name: registry.create(settings) for name, settings in rt.providers.items()}
    kube = kubeaccess.client_for(ep, timeout=10, provider=adapters.get)
    try:
        await kube.readyz()
        assert await kube.get(kt.VELERO_BSLS, ep.site.velero_namespace, ep.site.bsl) is not None
    finally:
        await kube.aclose()
        for adapter in adapters.values():
            await adapter.close()
