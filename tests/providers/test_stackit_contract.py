"""The STACKIT adapter and its emulator, both held to the vendor contract over real loopback sockets.

Every recorded exchange (the adapter's request and the emulator's response) is validated against
the vendor's SKE v2 and DNS v1 specs and the hand-written token and Statuspage specs beside the
emulator; the state mapping is checked against every value of the spec's ``ClusterStatusState``.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from pathlib import Path

import contract
import pytest
import stackit_lab

from failover.core import errors, secrets
from providers import base
from providers.emulator import Exchange
from providers.stackit import adapter
from providers.stackit.adapter import STATE_MAP, StackitProvider
from providers.stackit.emulator import StackitEmulator

HERE = Path(adapter.__file__).parent
S = base.ClusterState
ZONE = stackit_lab.ZONE
WWW = f"www.{ZONE}"

#: emulator prefix → (spec, the vendor server URL the prefix stands for)
SERVICES = {
    "/sa": (HERE / "token.openapi.yaml", "https://service-account.api.stackit.cloud"),
    "/accounts": (HERE / "token.openapi.yaml", "https://accounts.stackit.cloud"),
    "/ske": (contract.spec_path("stackit", "ske-v2.json"), "https://ske.api.stackit.cloud"),
    "/dns": (contract.spec_path("stackit", "dns-v1.json"), "https://dns.api.stackit.cloud"),
    "/status": (HERE / "status.openapi.yaml", "https://status.stackit.cloud"),
}

#: endpoint name → (method, path pattern); every one the adapter uses must be validated > 0 times
ENDPOINTS = {
    "token": ("POST", r"^/(sa/token|accounts/oauth/v2/token)$"),
    "get-cluster": ("GET", r"^/ske/v2/projects/[^/]+/regions/[^/]+/clusters/[^/]+$"),
    "kubeconfig": ("POST", r"^/ske/v2/projects/[^/]+/regions/[^/]+/clusters/[^/]+/kubeconfig$"),
    "list-zones": ("GET", r"^/dns/v1/projects/[^/]+/zones$"),
    "list-rrsets": ("GET", r"^/dns/v1/projects/[^/]+/zones/[^/]+/rrsets$"),
    "create-rrset": ("POST", r"^/dns/v1/projects/[^/]+/zones/[^/]+/rrsets$"),
    "get-rrset": ("GET", r"^/dns/v1/projects/[^/]+/zones/[^/]+/rrsets/[^/]+$"),
    "patch-rrset": ("PATCH", r"^/dns/v1/projects/[^/]+/zones/[^/]+/rrsets/[^/]+$"),
    "status-summary": ("GET", r"^/status/api/v2/summary\.json$"),
}

#: the expected normalisation of every SKE v2 ClusterStatusState value
EXPECTED = {
    "STATE_HEALTHY": S.READY, "STATE_RECONCILING": S.DEGRADED, "STATE_CREATING": S.DOWN,
    "STATE_DELETING": S.DOWN, "STATE_UNHEALTHY": S.DOWN, "STATE_HIBERNATED": S.DOWN,
    "STATE_HIBERNATING": S.DOWN, "STATE_WAKINGUP": S.DOWN,
}


def endpoint_of(ex: Exchange) -> str | None:
    for name, (method, pattern) in ENDPOINTS.items():
        if ex.method == method and re.match(pattern, ex.path):
            return name
    return None


def validate_all(exchanges: list[Exchange]) -> Counter[str]:
    """Validate every exchange against its service's spec; count them per endpoint."""
    counts: Counter[str] = Counter()
    for ex in exchanges:
        prefix = "/" + ex.path.split("/", 2)[1]
        spec, server = SERVICES[prefix]
        assert contract.validate(spec, [ex], server_url=server, strip_prefix=prefix) == 1
        name = endpoint_of(ex)
        assert name is not None, f"unexpected call {ex.method} {ex.path}"
        counts[name] += 1
    return counts


def spec_states() -> list[str]:
    doc = json.loads(contract.spec_path("stackit", "ske-v2.json").read_text(encoding="utf-8"))
    return list(doc["components"]["schemas"]["ClusterStatusState"]["enum"])


async def drive(lab: stackit_lab.StackitLab) -> None:
    p = lab.provider
    assert (await p.cluster_status(lab.ref)).state is S.READY
    lab.emulator.set_cluster_health(lab.ref.cluster, S.DOWN)
    down = await p.cluster_status(lab.ref)
    assert down.state is S.DOWN and "SKE_NODE_NO_VALID_HOST_FOUND" in down.reason
    assert await p.kubeconfig(lab.ref) == stackit_lab.KUBECONFIG
    assert await p.dns_get(ZONE, WWW, "A") is None
    await p.dns_set(ZONE, WWW, "A", ("192.0.2.10",), 60)
    await p.dns_set(ZONE, WWW, "A", ("192.0.2.20", "192.0.2.21"), 300)
    assert (await p.dns_get(ZONE, WWW, "A")) is not None
    lab.emulator.add_incident(region="eu01", title="SKE control plane degraded")
    assert len(await p.status("eu01")) == 1
    assert await p.s3_endpoint("eu01") == "https://object.storage.eu01.onstackit.cloud"


async def test_every_exchange_validates_against_the_vendor_contract(tmp_path: Path) -> None:
    async with stackit_lab.running(tmp_path) as lab:
        await drive(lab)
        exchanges = list(lab.emulator.exchanges)
    counts = validate_all(exchanges)
    assert set(counts) == set(ENDPOINTS), f"endpoints never exercised: {set(ENDPOINTS) - set(counts)}"
    assert all(n > 0 for n in counts.values())
    assert sum(counts.values()) == len(exchanges) >= 12


async def test_new_style_key_uses_its_token_endpoint(tmp_path: Path) -> None:
    async with stackit_lab.running(tmp_path, token_endpoint=True) as lab:
        await lab.provider.cluster_status(lab.ref)
        paths = [ex.path for ex in lab.emulator.exchanges]
        exchanges = list(lab.emulator.exchanges)
    assert "/accounts/oauth/v2/token" in paths and "/sa/token" not in paths
    validate_all(exchanges)


def test_state_table_covers_every_vendor_enum_value() -> None:
    assert set(spec_states()) == set(STATE_MAP) == set(EXPECTED)


async def test_every_vendor_state_maps(tmp_path: Path) -> None:
    """Table-driven over the spec's enum, against one running emulator."""
    seen: dict[str, base.ClusterStatus] = {}
    async with stackit_lab.running(tmp_path) as lab:
        for raw in spec_states():
            lab.emulator.set_raw_cluster_state(lab.ref.cluster, raw)
            seen[raw] = await lab.provider.cluster_status(lab.ref)
        validate_all(list(lab.emulator.exchanges))
    for raw, status in seen.items():
        assert (status.state, status.raw_state) == (EXPECTED[raw], raw), raw
        # no per-nodepool status in SKE: pools come from the spec with the aggregate state
        assert [(n.name, n.state, n.raw_state) for n in status.node_pools] == [("pool1", EXPECTED[raw], raw)]


async def test_lab_health_round_trips_through_the_vendor_vocabulary(tmp_path: Path) -> None:
    async with stackit_lab.running(tmp_path) as lab:
        for health in S:
            lab.emulator.set_cluster_health(lab.ref.cluster, health)
            assert (await lab.provider.cluster_status(lab.ref)).state is health
        validate_all(list(lab.emulator.exchanges))


async def test_dns_set_is_idempotent_and_waits_for_the_applied_state(tmp_path: Path) -> None:
    async with stackit_lab.running(tmp_path, settle_delay=0.3) as lab:
        started = time.monotonic()
        result = await lab.provider.dns_set(ZONE, WWW, "A", ("192.0.2.7",), 60)
        waited = time.monotonic() - started
        # returned only once applied: the backend has it and the vendor state is *_SUCCEEDED
        assert waited >= 0.3
        assert (await lab.dns.get(ZONE, WWW, "A")) == result
        assert {r.state for r in lab.emulator.rrsets.values()} == {"CREATE_SUCCEEDED"}
        writes = sum(ex.method in ("POST", "PATCH") and ex.path.startswith("/dns") for ex in lab.emulator.exchanges)
        again = await lab.provider.dns_set(ZONE, WWW, "A", ("192.0.2.7",), 60)
        writes_after = sum(ex.method in ("POST", "PATCH") and ex.path.startswith("/dns")
                           for ex in lab.emulator.exchanges)
        assert again == result and writes_after == writes == 1
        switched = await lab.provider.dns_set(ZONE, WWW, "A", ("192.0.2.8",), 60)
        assert (await lab.dns.get(ZONE, WWW, "A")) == switched
        assert {r.state for r in lab.emulator.rrsets.values()} == {"UPDATE_SUCCEEDED"}
        validate_all(list(lab.emulator.exchanges))


async def test_dns_change_in_flight_is_awaited_not_repeated(tmp_path: Path) -> None:
    async with stackit_lab.running(tmp_path, settle_delay=0.3) as lab:
        await lab.provider.dns_set(ZONE, WWW, "A", ("192.0.2.7",), 60)
        lab.emulator.settle_delay = 0.4
        rrset = next(iter(lab.emulator.rrsets.values()))
        rrset.records, rrset.ttl = ["192.0.2.9"], 60
        lab.emulator._change(rrset, "UPDATE")  # someone else's identical change, still UPDATING
        await lab.provider.dns_set(ZONE, WWW, "A", ("192.0.2.9",), 60)
        assert not any(ex.method == "PATCH" for ex in lab.emulator.exchanges)
        assert rrset.state == "UPDATE_SUCCEEDED"


async def test_dns_failed_state_is_permanent_and_slow_change_is_temporary(tmp_path: Path) -> None:
    async with stackit_lab.running(tmp_path, dns_timeout="0.3") as lab:
        lab.emulator.fail_dns_changes = 1
        with pytest.raises(errors.PermanentError, match="CREATE_FAILED"):
            await lab.provider.dns_set(ZONE, WWW, "A", ("192.0.2.7",), 60)
        lab.emulator.settle_delay = 5.0
        started = time.monotonic()
        with pytest.raises(errors.TemporaryError, match="not applied within"):
            await lab.provider.dns_set(ZONE, WWW, "A", ("192.0.2.8",), 60)
        assert time.monotonic() - started < 2.0
        with pytest.raises(errors.PermanentError, match="minimum of 60"):
            await lab.provider.dns_set(ZONE, WWW, "A", ("192.0.2.8",), 30)


async def test_kubeconfig_is_the_registered_one_and_a_secret(tmp_path: Path) -> None:
    async with stackit_lab.running(tmp_path, kubeconfig_expiration="7200") as lab:
        text = await lab.provider.kubeconfig(lab.ref)
        posts = [ex for ex in lab.emulator.exchanges if ex.path.endswith("/kubeconfig")]
    assert text == stackit_lab.KUBECONFIG
    assert json.loads(posts[0].request_body) == {"expirationSeconds": "7200"}
    assert {text, "ske-admin-token-3f9d2c1b7a"} <= secrets.known()


async def test_status_page_filters_by_region_and_tolerates_other_formats(tmp_path: Path) -> None:
    async with stackit_lab.running(tmp_path) as lab:
        emu, p = lab.emulator, lab.provider
        first = emu.add_incident(region="eu01", title="eu01 object storage errors")
        emu.add_incident(region="eu02", title="SKE API slow")
        assert [i.id for i in await p.status("eu01")] == [first]
        emu.resolve_incident(first)
        assert await p.status("eu01") == ()
        emu.status_page_html = True
        assert await p.status("eu01") == ()


async def test_s3_endpoint_default_and_override(tmp_path: Path) -> None:
    async with stackit_lab.running(tmp_path, s3_endpoint="http://127.0.0.1:9000/") as lab:
        assert await lab.provider.s3_endpoint("eu01") == "http://127.0.0.1:9000"
    settings = lab.settings.model_copy(update={"options": {"project_id": "p"}})
    provider = StackitProvider(settings)
    assert await provider.s3_endpoint("eu02") == "https://object.storage.eu02.onstackit.cloud"
    await provider.close()


@pytest.mark.parametrize(("field", "key"), [("endpoints", "ske"), ("endpoints", "dns"), ("endpoints", "status"),
                                            ("credentials", "service_account_key"), ("options", "project_id")])
def test_missing_settings_are_named_at_construction(field: str, key: str) -> None:
    settings = base.ProviderSettings(
        kind="stackit", endpoints={"ske": "http://x", "dns": "http://x", "status": "http://x"},
        credentials={"service_account_key": base.Credential(env="NOPE")}, options={"project_id": "p"})
    broken = settings.model_copy(update={field: {k: v for k, v in getattr(settings, field).items() if k != key}})
    with pytest.raises(errors.PermanentError, match=rf"{field}\.{key}"):
        StackitProvider(broken)


async def test_emulator_key_file_matches_the_service_account_api_schema() -> None:
    from openapi_schema_validator import OAS30Validator

    doc = json.loads(contract.spec_path("stackit", "service-account-v2.json").read_text(encoding="utf-8"))
    schema = {**doc["components"]["schemas"]["CreateServiceAccountKeyResponse"], "components": doc["components"]}
    emu = StackitEmulator()
    for new_style in (False, True):
        key = json.loads(emu.service_account_key(token_endpoint=new_style))
        OAS30Validator(schema, format_checker=OAS30Validator.FORMAT_CHECKER).validate(key)
        assert ("tokenEndpoint" in key["credentials"]) is new_style
