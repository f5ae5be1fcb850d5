"""A failover, then switchovers, with the workplace's DNS on each provider's own DNS service:
IONOS Cloud DNS, STACKIT DNS, OTC DNS (eu-de) and SCS Designate — each backed by the lab's real
PowerDNS, so the verification queries are answered by a real DNS server."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import yaml

from tests.e2e.conftest import Lab, wait_for
from tests.e2e.test_failover_lab import ACTIVE, assert_served_by

pytestmark = pytest.mark.timeout(480)  # a lab, a failover and its checks


def with_dns(lab: Lab, provider: str) -> Path:
    data = yaml.safe_load(lab.config.read_text())
    data["dns"]["provider"] = provider
    data["dns"]["ttl"] = 60  # STACKIT's minimum; fine for every provider
    path = lab.config.with_name(f"lab-dns-{provider}.yaml")
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def run(lab: Lab, config: Path, *words: str) -> dict[str, object]:
    return Lab(config=config, state=lab.state).cli(*words, "--json", timeout=240)


async def test_failover_and_switchovers_with_each_dns_backend(lab: Lab) -> None:
    def backed_up() -> bool:
        doc = lab.cli("daemon", "--once")
        return "standbys ready" in str(doc.get("out", "")) and "NO standby" not in str(doc.get("out", ""))

    await wait_for(backed_up, timeout=60, what="backups replicated to a ready standby", interval=1.0)
    steps = [("ionos", ("run", "failover", "--to", "stackit-eu01"), "stackit-eu01"),
             ("stackit", ("run", "switchover", "--to", "otc-eu-de"), "otc-eu-de"),
             ("otc", ("run", "switchover", "--to", "scs-pco-prod1"), "scs-pco-prod1")]
    for provider, words, target in steps:
        doc = run(lab, with_dns(lab, provider), *words)
        assert doc["phase"] == "succeeded" and doc["to"] == target, (provider, doc)
        await assert_served_by(lab, target)
    lab.cli("unfence", ACTIVE, "--yes")
    await asyncio.sleep(0)
    doc = run(lab, with_dns(lab, "scs"), "run", "switchover", "--to", ACTIVE)
    assert doc["phase"] == "succeeded" and doc["to"] == ACTIVE, doc
    await assert_served_by(lab, ACTIVE)
