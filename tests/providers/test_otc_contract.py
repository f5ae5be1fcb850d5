"""The OTC adapter and its emulator, both held to the vendor contract over real loopback sockets.

Every recorded exchange (the adapter's request and the emulator's response) is validated against
Keystone v3.14 (IAM), the hand-written CCE and DNS specs (OTC publishes none) and the status
dashboard spec. Two vendor specs are patched **in memory** here, never on disk:

* Keystone: ``POST /v3/auth/tokens`` declares only ``200``, but Keystone (and OTC IAM) answer
  ``201 Created``; the 200 response is copied to 201.
* status-dashboard-v3: ``/v2/components/{component_id}`` lacks its path parameter, which makes
  strict validation fail (providers.md §3); the parameter is added.
"""

from __future__ import annotations

import functools
import re
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import contract
import httpx
import otc_lab
import pytest
import yaml
from openapi_core import OpenAPI

from failover.core import errors, secrets
from providers import base
from providers.emulator import Exchange
from providers.otc import adapter
from providers.otc.adapter import OtcProvider, dns_region_warning

HERE = Path(adapter.__file__).parent
KEYSTONE = contract.spec_path("openstack", "keystone-v3.14.yaml")
DASHBOARD = contract.spec_path("otc", "status-dashboard-v3.yaml")
CCE = HERE / "cce.openapi.yaml"
DNS = HERE / "dns.openapi.yaml"
S = base.ClusterState

#: (spec, emulator prefix, the vendor server URL the prefix stands for)
SERVICES = {
    "iam": (KEYSTONE, "/iam", "https://iam.eu-de.otc.t-systems.com"),
    "cce": (CCE, "/cce", "https://cce.eu-de.otc.t-systems.com"),
    "dns": (DNS, "/dns", "https://dns.eu-de.otc.t-systems.com"),
    "status": (DASHBOARD, "/status", "http://localhost:8000"),
}


@functools.cache
def _patched(path: Path) -> OpenAPI:
    doc: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    if path == KEYSTONE:
        responses = doc["paths"]["/v3/auth/tokens"]["post"]["responses"]
        responses["201"] = responses["200"]
    if path == DASHBOARD:
        doc["paths"]["/v2/components/{component_id}"]["parameters"] = [
            {"name": "component_id", "in": "path", "required": True, "schema": {"type": "integer"}}]
    return OpenAPI.from_dict(doc)


@pytest.fixture(autouse=True)
def patched_specs(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    original = contract.load
    monkeypatch.setattr(contract, "load",
                        lambda path: _patched(path) if path in (KEYSTONE, DASHBOARD) else original(path))
    yield


def _operation(ex: Exchange) -> str:
    path = re.sub(r"/projects/[^/]+", "/projects/{p}", ex.path)
    path = re.sub(r"/(clusters|zones|recordsets)/[^/]+", r"/\1/{id}", path)
    return f"{ex.method} {path}"


def validate_all(exchanges: list[Exchange], *, check_request: bool = True) -> Counter[str]:
    """Validate every exchange against its service's spec; return validated counts per operation."""
    counts: Counter[str] = Counter()
    for spec, prefix, server in SERVICES.values():
        for ex in (e for e in exchanges if e.path.startswith(prefix + "/")):
            counts[_operation(ex)] += contract.validate(spec, [ex], server_url=server, strip_prefix=prefix,
                                                          check_request=check_request)
    assert sum(counts.values()) == len(exchanges), "an exchange hit no known service"
    return counts


async def test_every_method_validates_against_the_vendor_specs(tmp_path: Path) -> None:
    async with otc_lab.running(tmp_path) as lab:
        p, name = lab.provider, "portal.ckki.example."
        status = await p.cluster_status(otc_lab.REF)
        kubeconfig = await p.kubeconfig(otc_lab.REF)
        assert await p.dns_get(otc_lab.ZONE, name, "A") is None
        await p.dns_set(otc_lab.ZONE, name, "A", ("192.0.2.10",), 60)  # create (POST)
        await p.dns_set(otc_lab.ZONE, name, "A", ("192.0.2.11", "192.0.2.12"), 60)  # update (PUT)
        got = await p.dns_get(otc_lab.ZONE, name, "A")
        lab.emulator.add_incident(region="eu-nl", title="CCE API degraded")
        incidents = await p.status("eu-nl")
        exchanges = list(lab.emulator.exchanges)

    assert status.state is S.READY and status.raw_state == "Available" and status.node_pools[0].nodes == 3
    assert yaml.safe_load(kubeconfig)["kind"] == "Config"
    assert got is not None and sorted(got.values) == ["192.0.2.11", "192.0.2.12"]
    assert [i.title for i in incidents] == ["CCE API degraded"]
    counts = validate_all(exchanges)
    used = {
        "POST /iam/v3/auth/tokens", "GET /cce/api/v3/projects/{p}/clusters/{id}",
        "GET /cce/api/v3/projects/{p}/clusters/{id}/nodepools",
        "POST /cce/api/v3/projects/{p}/clusters/{id}/clustercert", "GET /dns/v2/zones",
        "GET /dns/v2/zones/{id}/recordsets", "POST /dns/v2/zones/{id}/recordsets",
        "PUT /dns/v2/zones/{id}/recordsets/{id}", "GET /dns/v2/zones/{id}/recordsets/{id}",
        "GET /status/v2/incidents", "GET /status/v2/components",
    }
    assert set(counts) == used
    assert all(counts[op] > 0 for op in used)
    # DNS writes are async (202) and the adapter polled until ACTIVE
    writes = [e for e in exchanges if e.method in ("POST", "PUT") and e.path.startswith("/dns/")]
    assert [e.status for e in writes] == [202, 202]
    # one token per project: eu-nl for CCE, eu-de for DNS (public zones only via eu-de)
    assert lab.emulator.token_requests == 2


def test_the_validator_rejects_what_the_vendor_does_not_send() -> None:
    """The hand-written DNS spec is closed: Designate's PENDING status is not OTC's."""
    body = (b'{"id":"r1","name":"a.ckki.example.","type":"A","ttl":60,"records":["192.0.2.1"],'
            b'"status":"PENDING","zone_id":"z1","zone_name":"ckki.example."}')
    ex = Exchange(method="GET", path="/dns/v2/zones/z1/recordsets/r1", query={},
                  request_headers={"X-Auth-Token": "t0ken-value"}, request_body=b"", status=200,
                  response_headers={"Content-Type": "application/json"}, response_body=body)
    with pytest.raises(AssertionError, match="PENDING"):
        validate_all([ex])


CLUSTER_TABLE = [
    ("Available", S.READY), ("ScalingUp", S.DEGRADED), ("ScalingDown", S.DEGRADED),
    ("Upgrading", S.DEGRADED), ("Resizing", S.DEGRADED), ("Unavailable", S.DOWN), ("Creating", S.DOWN),
    ("Deleting", S.DOWN), ("Empty", S.DOWN), ("Hibernating", S.DOWN), ("Hibernated", S.DOWN),
    ("Awaking", S.DOWN),
]
POOL_TABLE = [("", S.READY), ("Synchronized", S.READY), ("Synchronizing", S.DEGRADED),
              ("SoldOut", S.DEGRADED), ("Deleting", S.DOWN), ("Error", S.DOWN)]


async def test_every_vendor_phase_maps_and_is_served_per_spec(tmp_path: Path) -> None:
    assert {raw for raw, _ in CLUSTER_TABLE} == set(adapter.CLUSTER_PHASES)
    assert {raw for raw, _ in POOL_TABLE} == set(adapter.NODEPOOL_PHASES)
    async with otc_lab.running(tmp_path) as lab:
        for raw, expected in CLUSTER_TABLE:
            lab.emulator.set_raw_cluster_state(otc_lab.REF.cluster, raw)
            got = await lab.provider.cluster_status(otc_lab.REF)
            assert (got.state, got.raw_state) == (expected, raw), raw
        lab.emulator.set_raw_cluster_state(otc_lab.REF.cluster, "Available")
        for raw, expected in POOL_TABLE:
            lab.emulator.set_raw_nodepool_state(otc_lab.REF.cluster, raw)
            got = await lab.provider.cluster_status(otc_lab.REF)
            pool = got.node_pools[0]
            assert (pool.state, pool.raw_state) == (expected, raw), raw
            # a ready control plane with its only pool down serves nothing
            assert got.state is expected
        counts = validate_all(list(lab.emulator.exchanges))
    assert counts["GET /cce/api/v3/projects/{p}/clusters/{id}"] == len(CLUSTER_TABLE) + len(POOL_TABLE)


@pytest.mark.parametrize("health", list(S))
async def test_lab_health_round_trips_through_the_vendor_vocabulary(tmp_path: Path, health: S) -> None:
    async with otc_lab.running(tmp_path) as lab:
        lab.emulator.set_cluster_health(otc_lab.REF.cluster, health)
        got = await lab.provider.cluster_status(otc_lab.REF)
    assert got.state is health
    assert (got.reason == "") is (health is S.READY)


async def test_dns_set_waits_for_active_and_is_idempotent(tmp_path: Path) -> None:
    settle = 0.3
    async with otc_lab.running(tmp_path, settle_delay=settle) as lab:
        name = "files.ckki.example."
        started = time.monotonic()
        result = await lab.provider.dns_set(otc_lab.ZONE, name, "A", ("198.51.100.7",), 120)
        elapsed = time.monotonic() - started
        # returned only once applied: the backend (PowerDNS in the lab) already answers the new value
        assert elapsed >= settle
        backend = await lab.dns.get(otc_lab.ZONE, name, "A")
        assert backend is not None and backend.values == ("198.51.100.7",) and backend.ttl == 120
        assert result == backend
        writes_before = sum(e.method in ("POST", "PUT") for e in lab.emulator.exchanges)
        started = time.monotonic()
        again = await lab.provider.dns_set(otc_lab.ZONE, name, "A", ("198.51.100.7",), 120)
        assert time.monotonic() - started < settle
        assert sum(e.method in ("POST", "PUT") for e in lab.emulator.exchanges) == writes_before
        assert again == result
        # a TTL change alone is a change
        changed = await lab.provider.dns_set(otc_lab.ZONE, name, "A", ("198.51.100.7",), 60)
        assert changed.ttl == 60 and (await lab.dns.get(otc_lab.ZONE, name, "A")) == changed


async def test_dns_sees_records_seeded_in_the_backend(tmp_path: Path) -> None:
    async with otc_lab.running(tmp_path) as lab:
        await lab.dns.set(otc_lab.ZONE, "mail.ckki.example.", "A", ("192.0.2.25",), 300)
        got = await lab.provider.dns_get(otc_lab.ZONE, "mail.ckki.example.", "A")
        assert got is not None and got.values == ("192.0.2.25",)
        # the fuzzy vendor name filter must not leak a longer name into an exact lookup
        assert await lab.provider.dns_get(otc_lab.ZONE, "ail.ckki.example.", "A") is None


async def test_kubeconfig_is_the_registered_one_and_its_key_a_secret(tmp_path: Path) -> None:
    async with otc_lab.running(tmp_path, kubeconfig_days="30") as lab:
        text = await lab.provider.kubeconfig(otc_lab.REF)
        request = next(e for e in lab.emulator.exchanges if e.path.endswith("/clustercert"))
    assert yaml.safe_load(text) == yaml.safe_load(otc_lab.KUBECONFIG)
    assert request.request_body == b'{"duration":30}'
    assert "S0VZLURBVEEtc2VjcmV0LW90Yw==" in secrets.known()


async def test_status_lists_only_open_incidents_of_the_region(tmp_path: Path) -> None:
    async with otc_lab.running(tmp_path) as lab:
        nl = lab.emulator.add_incident(region="eu-nl", title="CCE API errors")
        de = lab.emulator.add_incident(region="eu-de", title="DNS slow")
        closed = lab.emulator.add_incident(region="eu-nl", title="old one")
        lab.emulator.resolve_incident(closed)
        assert [i.id for i in await lab.provider.status("eu-nl")] == [nl]
        assert [i.id for i in await lab.provider.status("eu-de")] == [de]
        assert await lab.provider.status("eu-ch2") == ()
        lab.emulator.resolve_incident(nl)
        assert await lab.provider.status("eu-nl") == ()
        incident = (await lab.provider.status("eu-de"))[0]
        assert incident.impact == "major" and incident.started_at is not None


async def test_s3_endpoints(tmp_path: Path) -> None:
    async with otc_lab.running(tmp_path) as lab:
        assert await lab.provider.s3_endpoint("eu-de") == "https://obs.eu-de.otc.t-systems.com"
        assert await lab.provider.s3_endpoint("eu-nl") == "https://obs.eu-nl.otc.t-systems.com"
        assert await lab.provider.s3_endpoint("eu-ch2") == "https://obs.eu-ch2.sc.otc.t-systems.com"
    async with otc_lab.running(tmp_path, s3_endpoint="http://127.0.0.1:9000/") as lab:
        assert await lab.provider.s3_endpoint("eu-de") == "http://127.0.0.1:9000"


async def test_project_id_from_the_ref_is_used_as_is(tmp_path: Path) -> None:
    ref = base.ClusterRef(region="eu-de", cluster="c-hex", project="0123456789abcdef0123456789abcdef")
    async with otc_lab.running(tmp_path) as lab:
        lab.emulator.add_cluster(ref=ref, name="hex", kubeconfig=otc_lab.KUBECONFIG)
        assert (await lab.provider.cluster_status(ref)).state is S.READY
        assert any(f"/projects/{ref.project}/" in e.path for e in lab.emulator.exchanges)


@pytest.mark.parametrize("missing", ["iam", "cce", "dns", "status", "username", "password", "domain"])
def test_construction_names_a_missing_setting(tmp_path: Path, missing: str) -> None:
    cred = base.Credential(file=tmp_path / "x")
    settings = base.ProviderSettings(
        kind="otc", endpoints={k: "http://127.0.0.1:1" for k in ("iam", "cce", "dns", "status") if k != missing},
        credentials={k: cred for k in ("username", "password", "domain") if k != missing})
    with pytest.raises(errors.PermanentError, match=rf"\b{missing}\b"):
        OtcProvider(settings)


def test_dns_region_warning() -> None:
    eu_de = base.ProviderSettings(kind="otc", endpoints={"dns": "https://dns.eu-de.otc.t-systems.com"})
    assert dns_region_warning(eu_de, site_regions=["eu-de", "eu-de_failover"]) is None
    warning = dns_region_warning(eu_de, site_regions=["eu-nl", "eu-de"])
    assert warning is not None and "eu-nl" in warning and "eu-de" in warning
    assert dns_region_warning(eu_de) is not None
    eu_nl = base.ProviderSettings(kind="otc", endpoints={"dns": "https://dns.eu-nl.otc.t-systems.com"})
    assert "not the eu-de endpoint" in (dns_region_warning(eu_nl, site_regions=["eu-de"]) or "")
    assert dns_region_warning(base.ProviderSettings(kind="ionos")) is None


async def test_emulator_checks_tokens_and_answers_in_each_vendor_error_shape(tmp_path: Path) -> None:
    async with otc_lab.running(tmp_path) as lab:
        emu = lab.emulator
        zone_id = emu.add_zone(otc_lab.ZONE)
        project = emu.project_id(otc_lab.REF.region)
        cluster = f"/cce/api/v3/projects/{project}/clusters/{otc_lab.REF.cluster}"
        json_ct = {"Content-Type": "application/json"}
        async with httpx.AsyncClient(base_url=emu.url, timeout=5) as client:
            missing = await client.get(cluster, headers=json_ct)
            unknown = await client.get(cluster, headers={**json_ct, "X-Auth-Token": "not-a-token-we-issued"})
            dns = await client.get(f"/dns/v2/zones/{zone_id}/recordsets", headers={"X-Auth-Token": "bogus-token"})
            bad_login = await client.post("/iam/v3/auth/tokens", json={"auth": {
                "identity": {"methods": ["password"], "password": {"user": {
                    "name": emu.username, "password": "wrong-password", "domain": {"name": emu.domain}}}},
                "scope": {"project": {"name": "eu-de"}}}})
            emu.inject("unavailable", path_prefix="/dns")
            unavailable = await client.get("/dns/v2/zones", headers={"X-Auth-Token": "bogus-token"})
        assert (missing.status_code, unknown.status_code, dns.status_code, bad_login.status_code) == (401,) * 4
        assert missing.json()["errorCode"].startswith("CCE.") and "errorMessage" in missing.json()
        assert dns.json()["code"].startswith("DNS.") and "message" in dns.json()
        assert bad_login.json()["error"]["code"] == 401 and "X-Subject-Token" not in bad_login.headers
        assert unavailable.status_code == 503 and unavailable.json()["code"].startswith("DNS.")
        # error bodies are part of the contract too (CCE/DNS default responses, Keystone 401); the
        # requests are deliberately outside it (no or unknown token), so only responses are checked
        assert sum(validate_all([e for e in emu.exchanges if e.status >= 400], check_request=False).values()) == 5
        assert emu.token_requests == 0


async def test_dns_uses_the_configured_eu_de_sub_project(tmp_path: Path) -> None:
    async with otc_lab.running(tmp_path, dns_project="eu-de_dns") as lab:
        lab.emulator.zones.clear()
        lab.emulator.zones["z-sub"] = (otc_lab.ZONE, lab.emulator.project_id("eu-de_dns"))
        await lab.provider.dns_set(otc_lab.ZONE, "a.ckki.example.", "A", ("192.0.2.3",), 60)
        assert await lab.provider.s3_endpoint("eu-de_dns") == "https://obs.eu-de.otc.t-systems.com"
    with pytest.raises(errors.PermanentError, match="dns_project"):
        OtcProvider(lab.settings.model_copy(update={"options": {"dns_project": "eu-nl"}}))
