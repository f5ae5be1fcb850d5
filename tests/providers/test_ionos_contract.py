"""The IONOS adapter and its emulator, both held to the vendor contract over real loopback sockets.

Every recorded exchange (the adapter's request and the emulator's response) is validated against
the vendor's Auth API v1 spec, the Cloud API v6 spec and the hand-written Cloud DNS and Statuspage
specs beside the emulator. The Cloud API spec (2023) lacks the states the live API added
(HIBERNATING, FAILED_HIBERNATING, MAINTENANCE) and the node-pool fields ``serverType``/``taints``;
it is patched in memory (written once per session as JSON to a temporary file, which
``contract.validate`` loads; only its ``/k8s`` paths are kept, to load fast) and a test shows that
the unpatched schema indeed rejects a new state.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import re
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import contract
import ionos_lab
import pytest
import yaml
from openapi_schema_validator import OAS30Validator

from failover.core import errors, http, secrets
from providers import base
from providers.emulator import Exchange
from providers.ionos import adapter
from providers.ionos.adapter import STATE_MAP, IonosProvider
from providers.ionos.emulator import NodePool

HERE = Path(adapter.__file__).parent
S = base.ClusterState
ZONE = ionos_lab.ZONE
WWW = f"www.{ZONE}"
ADDED_STATES = ["HIBERNATING", "FAILED_HIBERNATING", "MAINTENANCE"]
RATE_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Burst", "X-RateLimit-Remaining")

#: endpoint name → (method, path pattern); every one the adapter uses must be validated > 0 times
ENDPOINTS = {
    "token": ("GET", r"^/auth/v1/tokens/generate$"),
    "get-cluster": ("GET", r"^/cloudapi/v6/k8s/[^/]+$"),
    "nodepools": ("GET", r"^/cloudapi/v6/k8s/[^/]+/nodepools$"),
    "kubeconfig": ("GET", r"^/cloudapi/v6/k8s/[^/]+/kubeconfig$"),
    "list-zones": ("GET", r"^/dns/zones$"),
    "list-records": ("GET", r"^/dns/zones/[^/]+/records$"),
    "get-record": ("GET", r"^/dns/zones/[^/]+/records/[^/]+$"),
    "put-record": ("PUT", r"^/dns/zones/[^/]+/records/[^/]+$"),
    "delete-record": ("DELETE", r"^/dns/zones/[^/]+/records/[^/]+$"),
    "status-summary": ("GET", r"^/status/api/v2/summary\.json$"),
}

#: the expected normalisation of every Cloud API metadata.state value (2023 spec + live additions)
EXPECTED = {
    "AVAILABLE": S.READY, "ACTIVE": S.READY, "BUSY": S.DEGRADED, "UPDATING": S.DEGRADED,
    "MAINTENANCE": S.DEGRADED, "DEPLOYING": S.DOWN, "INACTIVE": S.DOWN, "FAILED": S.DOWN,
    "SUSPENDED": S.DOWN, "FAILED_SUSPENDED": S.DOWN, "FAILED_UPDATING": S.DOWN, "DESTROYING": S.DOWN,
    "FAILED_DESTROYING": S.DOWN, "TERMINATED": S.DOWN, "HIBERNATING": S.DOWN, "FAILED_HIBERNATING": S.DOWN,
}


@functools.cache
def cloudapi_doc() -> dict[str, object]:
    text = contract.spec_path("ionos", "cloudapi-v6.yaml").read_text(encoding="utf-8")
    doc: dict[str, object] = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    return doc


@pytest.fixture(scope="session")
def cloudapi_spec(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The Cloud API v6 spec with the live API's additions (see the module docstring)."""
    original = cloudapi_doc()
    schemas = dict(original["components"]["schemas"])  # type: ignore[index]
    for name in ("DatacenterElementMetadata", "KubernetesNodePoolProperties"):  # copied, then patched
        schemas[name] = copy.deepcopy(schemas[name])
    doc = {**original, "components": {**original["components"], "schemas": schemas}}  # type: ignore[dict-item]
    schemas["DatacenterElementMetadata"]["properties"]["state"]["enum"] += ADDED_STATES
    pool = schemas["KubernetesNodePoolProperties"]["properties"]
    pool["serverType"] = {"type": "string", "enum": ["DedicatedCore", "VCPU"]}
    taint = {"type": "object", "required": ["key", "effect"], "properties": {
        "key": {"type": "string"}, "value": {"type": "string"}, "effect": {"type": "string"}}}
    pool["taints"] = {"type": "array", "items": taint}
    # only the managed-Kubernetes paths are kept (every schema stays): openapi-core validates the
    # whole document on load, 4 s for all 114 paths, under 1 s for the /k8s ones
    doc["paths"] = {k: v for k, v in original["paths"].items() if k.startswith("/k8s")}  # type: ignore[attr-defined]
    path = tmp_path_factory.mktemp("ionos-spec") / "cloudapi-v6-patched.json"
    path.write_text(json.dumps(doc, default=str), encoding="utf-8")
    yield path


def services(cloudapi: Path) -> dict[str, tuple[Path, str, str]]:
    """emulator prefix → (spec, vendor host, prefix to strip). The emulator serves the Auth and Cloud
    API under their real base paths (``/auth/v1``, ``/cloudapi/v6``), so only the host differs."""
    return {
        "auth": (contract.spec_path("ionos", "auth-v1.yaml"), "https://api.ionos.com", ""),
        "cloudapi": (cloudapi, "https://api.ionos.com", ""),
        "dns": (HERE / "dns.openapi.yaml", "https://dns.de-fra.ionos.com", "/dns"),
        "status": (HERE / "statuspage.openapi.yaml", "https://status.ionos.cloud", "/status"),
    }


def endpoint_of(ex: Exchange) -> str | None:
    for name, (method, pattern) in ENDPOINTS.items():
        if ex.method == method and re.match(pattern, ex.path):
            return name
    return None


def as_json_string(ex: Exchange) -> Exchange:
    """openapi-core has no YAML deserializer: a YAML body (the kubeconfig; its schema is ``type:
    string`` under every media type) is checked to be UTF-8 YAML and validated as that JSON string."""
    headers = {k.lower(): v for k, v in ex.response_headers.items()}
    if not headers.get("content-type", "").startswith(("application/yaml", "application/x-yaml")):
        return ex
    text = ex.response_body.decode("utf-8")
    yaml.safe_load(text)
    return dataclasses.replace(ex, response_body=json.dumps(text).encode(),
                               response_headers={**headers, "content-type": "application/json"})


def validate_all(exchanges: list[Exchange], cloudapi: Path) -> Counter[str]:
    """Validate every exchange against its service's spec; count them per endpoint."""
    counts: Counter[str] = Counter()
    table = services(cloudapi)
    for ex in map(as_json_string, exchanges):
        spec, server, prefix = table[ex.path.split("/", 2)[1]]
        assert contract.validate(spec, [ex], server_url=server, strip_prefix=prefix) == 1
        name = endpoint_of(ex)
        assert name is not None, f"unexpected call {ex.method} {ex.path}"
        counts[name] += 1
    return counts


async def drive(lab: ionos_lab.IonosLab) -> None:
    p = lab.provider
    assert (await p.cluster_status(lab.ref)).state is S.READY
    lab.emulator.set_cluster_health(lab.ref.cluster, S.DOWN)
    down = await p.cluster_status(lab.ref)
    assert down.state is S.DOWN and "FAILED" in down.reason
    assert await p.kubeconfig(lab.ref) == ionos_lab.KUBECONFIG
    assert await p.dns_get(ZONE, WWW, "A") is None
    await p.dns_set(ZONE, WWW, "A", ("192.0.2.10", "192.0.2.11"), 60)
    await p.dns_set(ZONE, WWW, "A", ("192.0.2.20",), 300)  # one PUT, one DELETE
    assert (await p.dns_get(ZONE, WWW, "A")) is not None
    lab.emulator.add_incident(region="de/fra", title="Managed Kubernetes in Frankfurt degraded")
    assert len(await p.status("de/fra")) == 1
    assert await p.s3_endpoint("de/fra") == "https://s3.eu-central-1.ionoscloud.com"


async def test_every_exchange_validates_against_the_vendor_contract(tmp_path: Path,
                                                                   cloudapi_spec: Path) -> None:
    async with ionos_lab.running(tmp_path) as lab:
        await drive(lab)
        exchanges = list(lab.emulator.exchanges)
    counts = validate_all(exchanges, cloudapi_spec)
    assert set(counts) == set(ENDPOINTS), f"endpoints never exercised: {set(ENDPOINTS) - set(counts)}"
    assert all(n > 0 for n in counts.values())
    assert sum(counts.values()) == len(exchanges) >= 15
    # the Cloud API's rate-limit headers on every IONOS API answer (not on the status page)
    for ex in exchanges:
        if not ex.path.startswith("/status"):
            assert set(RATE_HEADERS) <= set(ex.response_headers)


def test_state_table_covers_every_vendor_enum_value() -> None:
    doc = cloudapi_doc()
    enum = doc["components"]["schemas"]["DatacenterElementMetadata"]["properties"]["state"]["enum"]  # type: ignore[index]
    assert not set(ADDED_STATES) & set(enum)  # the 2023 spec lacks them: hence the patch
    assert set(enum) | set(ADDED_STATES) == set(STATE_MAP) == set(EXPECTED)


async def test_every_vendor_state_maps(tmp_path: Path, cloudapi_spec: Path) -> None:
    """Table-driven over the whole enum, against one running emulator; node pools too."""
    seen: dict[str, base.ClusterStatus] = {}
    async with ionos_lab.running(tmp_path) as lab:
        for raw in EXPECTED:
            lab.emulator.set_raw_cluster_state(lab.ref.cluster, raw)
            lab.emulator.set_raw_nodepool_state(lab.ref.cluster, raw)
            seen[raw] = await lab.provider.cluster_status(lab.ref)
        exchanges = list(lab.emulator.exchanges)
    validate_all(exchanges, cloudapi_spec)
    for raw, status in seen.items():
        assert (status.state, status.raw_state) == (EXPECTED[raw], raw), raw
        assert [(n.state, n.raw_state, n.nodes) for n in status.node_pools] == [(EXPECTED[raw], raw, 3)]
    # why the spec is patched: the 2023 schema rejects what the live API (and the emulator) sends
    hibernating = next(ex for ex in exchanges if b'"HIBERNATING"' in ex.response_body)
    metadata = json.loads(hibernating.response_body)["metadata"]
    schema = cloudapi_doc()["components"]["schemas"]["DatacenterElementMetadata"]  # type: ignore[index]
    problems = [e.message for e in OAS30Validator(schema).iter_errors(metadata)]
    assert problems and all("HIBERNATING" in p for p in problems)


async def test_node_pools_degrade_or_take_down_a_ready_cluster(tmp_path: Path) -> None:
    async with ionos_lab.running(tmp_path) as lab:
        emu, p = lab.emulator, lab.provider
        emu.clusters[lab.ref.cluster].pools.append(NodePool(id=str(uuid.uuid4()), name="second"))
        emu.set_raw_nodepool_state(lab.ref.cluster, "FAILED", index=1)
        status = await p.cluster_status(lab.ref)
        assert (status.state, status.raw_state) == (S.DEGRADED, "ACTIVE")
        assert "node pool second FAILED" in status.reason
        emu.set_raw_nodepool_state(lab.ref.cluster, "FAILED", index=0)
        assert (await p.cluster_status(lab.ref)).state is S.DOWN
        emu.set_raw_nodepool_state(lab.ref.cluster, "RESIZING", index=0)  # a new pool state
        status = await p.cluster_status(lab.ref)
        assert status.state is S.DEGRADED and status.node_pools[0].raw_state == "RESIZING"


async def test_lab_health_round_trips_through_the_vendor_vocabulary(tmp_path: Path,
                                                                   cloudapi_spec: Path) -> None:
    async with ionos_lab.running(tmp_path) as lab:
        for health in S:
            lab.emulator.set_cluster_health(lab.ref.cluster, health)
            assert (await lab.provider.cluster_status(lab.ref)).state is health
        validate_all(list(lab.emulator.exchanges), cloudapi_spec)


def writes(lab: ionos_lab.IonosLab) -> int:
    return sum(ex.method in ("PUT", "DELETE") for ex in lab.emulator.exchanges)


async def test_dns_set_is_idempotent_and_waits_for_the_applied_state(tmp_path: Path,
                                                                     cloudapi_spec: Path) -> None:
    async with ionos_lab.running(tmp_path, settle_delay=0.3) as lab:
        started = time.monotonic()
        result = await lab.provider.dns_set(ZONE, WWW, "A", ("192.0.2.8", "192.0.2.7"), 60)
        waited = time.monotonic() - started
        # returned only once applied: the backend has it and every record is AVAILABLE
        assert waited >= 0.3
        assert result.values == ("192.0.2.7", "192.0.2.8")
        assert (await lab.dns.get(ZONE, WWW, "A")) == result
        assert [r.state for r in lab.emulator.records.values()] == ["AVAILABLE", "AVAILABLE"]
        assert writes(lab) == 2  # one PUT per value: IONOS keeps records, not record sets
        before = len(lab.emulator.exchanges)
        again = await lab.provider.dns_set(ZONE, WWW, "A", ("192.0.2.7", "192.0.2.8"), 60)
        assert again == result and writes(lab) == 2
        assert len(lab.emulator.exchanges) == before + 1  # one listing, nothing to write or await
        switched = await lab.provider.dns_set(ZONE, WWW, "A", ("192.0.2.9",), 60)
        assert (await lab.dns.get(ZONE, WWW, "A")) == switched
        # the surplus record was deleted and awaited until gone
        assert [(r.content, r.state) for r in lab.emulator.records.values()] == [("192.0.2.9", "AVAILABLE")]
        assert writes(lab) == 4
        validate_all(list(lab.emulator.exchanges), cloudapi_spec)


async def test_dns_change_in_flight_is_awaited_not_repeated(tmp_path: Path) -> None:
    async with ionos_lab.running(tmp_path, settle_delay=0.3) as lab:
        await lab.provider.dns_set(ZONE, WWW, "A", ("192.0.2.7",), 60)
        record = next(iter(lab.emulator.records.values()))
        record.content = "192.0.2.9"
        lab.emulator._change(record, "PROVISIONING")  # someone else's identical change, still in flight
        before = writes(lab)
        started = time.monotonic()
        await lab.provider.dns_set(ZONE, WWW, "A", ("192.0.2.9",), 60)
        assert writes(lab) == before and record.state == "AVAILABLE"
        assert time.monotonic() - started >= 0.2
        applied = await lab.dns.get(ZONE, WWW, "A")
        assert applied is not None and applied.values == ("192.0.2.9",)


async def test_dns_apex_and_names_outside_the_zone(tmp_path: Path) -> None:
    async with ionos_lab.running(tmp_path) as lab:
        await lab.provider.dns_set(ZONE, ZONE, "A", ("192.0.2.1",), 60)
        assert [r.name for r in lab.emulator.records.values()] == [""]  # the apex is the empty name
        assert (await lab.provider.dns_get(ZONE, ZONE, "A")) is not None
        assert await lab.provider.dns_get(ZONE, WWW, "A") is None  # filter.name "" must not match www
        with pytest.raises(errors.PermanentError, match="not inside zone"):
            await lab.provider.dns_set(ZONE, "www.other.example.", "A", ("192.0.2.1",), 60)


async def test_dns_failed_state_is_permanent_and_slow_change_is_temporary(tmp_path: Path) -> None:
    async with ionos_lab.running(tmp_path, dns_timeout="0.3") as lab:
        lab.emulator.fail_dns_changes = 1
        with pytest.raises(errors.PermanentError, match="FAILED"):
            await lab.provider.dns_set(ZONE, WWW, "A", ("192.0.2.7",), 60)
        assert [r.state for r in lab.emulator.records.values()] == ["FAILED"]
        await lab.provider.dns_set(ZONE, WWW, "A", ("192.0.2.7",), 60)  # the failed record is PUT again
        assert [r.state for r in lab.emulator.records.values()] == ["AVAILABLE"]
        assert sum(ex.method == "PUT" for ex in lab.emulator.exchanges) == 2
        lab.emulator.settle_delay = 5.0
        started = time.monotonic()
        with pytest.raises(errors.TemporaryError, match="not applied within"):
            await lab.provider.dns_set(ZONE, WWW, "A", ("192.0.2.8",), 60)
        assert time.monotonic() - started < 2.0
        lab.emulator.zones = {lab.emulator.add_zone(ZONE): ZONE.rstrip(".")}  # the zone was recreated
        with pytest.raises(http.NotFoundError):
            await lab.provider.dns_get(ZONE, WWW, "A")  # the cached zone id is gone ...
        assert await lab.provider.dns_get(ZONE, WWW, "A") is None  # ... and resolved again


async def test_kubeconfig_is_the_registered_one_and_a_secret(tmp_path: Path) -> None:
    async with ionos_lab.running(tmp_path) as lab:
        text = await lab.provider.kubeconfig(lab.ref)
        asked = [ex for ex in lab.emulator.exchanges if ex.path.endswith("/kubeconfig")]
    assert text == ionos_lab.KUBECONFIG
    assert asked[0].response_headers["Content-Type"].startswith("application/yaml")
    assert {text, "ionos-k8s-admin-token-9c1e44"} <= secrets.known()


async def test_status_page_filters_by_location(tmp_path: Path) -> None:
    async with ionos_lab.running(tmp_path) as lab:
        emu, p = lab.emulator, lab.provider
        assert await p.status("de/fra") == ()
        fra = emu.add_incident(region="de/fra", title="Frankfurt: API latency")
        emu.add_incident(region="us/las", title="Las Vegas network maintenance")
        glob = emu.add_incident(region="global", title="Cloud API: elevated error rates")
        assert {i.id for i in await p.status("de/fra")} == {fra, glob}
        assert fra not in {i.id for i in await p.status("us/las")}
        emu.resolve_incident(fra)
        emu.resolve_incident(glob)
        assert await p.status("de/fra") == ()
        emu.set_component_status("Cloud DNS", "degraded_performance")  # impaired, no incident, global
        found = await p.status("de/fra")
        assert [(i.title, i.status) for i in found] == [
            ("Cloud DNS: degraded_performance", "degraded_performance")]


async def test_s3_endpoint_table_and_override(tmp_path: Path) -> None:
    async with ionos_lab.running(tmp_path, s3_endpoint="http://127.0.0.1:9000/") as lab:
        assert await lab.provider.s3_endpoint("de/fra") == "http://127.0.0.1:9000"
    options = {k: v for k, v in lab.settings.options.items() if k != "s3_endpoint"}
    legacy = IonosProvider(lab.settings.model_copy(update={"options": options}))
    contract_options = {**options, "s3_naming": "contract"}
    contract_owned = IonosProvider(lab.settings.model_copy(update={"options": contract_options}))
    try:
        assert await legacy.s3_endpoint("de/txl") == "https://s3.eu-central-2.ionoscloud.com"
        assert await contract_owned.s3_endpoint("de/fra") == "https://s3.eu-central-4.ionoscloud.com"
        with pytest.raises(errors.PermanentError, match=r"options\.s3_endpoint"):
            await legacy.s3_endpoint("us/mci")
    finally:
        await legacy.close()
        await contract_owned.close()


@pytest.mark.parametrize(("field", "key"), [
    ("endpoints", "cloudapi"), ("endpoints", "auth"), ("endpoints", "dns"), ("endpoints", "status"),
    ("credentials", "username"), ("credentials", "password")])
def test_missing_settings_are_named_at_construction(field: str, key: str) -> None:
    settings = base.ProviderSettings(
        kind="ionos", endpoints={k: "http://x" for k in ("cloudapi", "auth", "dns", "status")},
        credentials={k: base.Credential(env="NOPE") for k in ("username", "password")})
    kept = {k: v for k, v in getattr(settings, field).items() if k != key}
    broken = settings.model_copy(update={field: kept})
    with pytest.raises(errors.PermanentError, match=rf"{field}\.{key}"):
        IonosProvider(broken)


async def test_a_configured_token_needs_no_auth_endpoint_nor_password() -> None:
    settings = base.ProviderSettings(
        kind="ionos", endpoints={k: "http://x" for k in ("cloudapi", "dns", "status")},
        credentials={"token": base.Credential(env="NOPE")})
    provider = IonosProvider(settings)
    await provider.close()
    with pytest.raises(errors.PermanentError, match="s3_naming"):
        IonosProvider(settings.model_copy(update={"options": {"s3_naming": "new"}}))


async def test_error_answers_follow_the_vendor_error_contract(tmp_path: Path, cloudapi_spec: Path) -> None:
    """401, 404, 429 and 503 in the vendor's ``{httpStatus, messages[]}`` shape, rate-limit headers
    included, validated like every other exchange (the Cloud API and DNS declare them as ``default``)."""
    async with ionos_lab.running(tmp_path) as lab:
        emu, p = lab.emulator, lab.provider
        emu.inject("rate-limited", retry_after=0, path_prefix="/cloudapi/v6/k8s")
        emu.inject("unavailable", path_prefix="/dns")
        await p.kubeconfig(lab.ref)
        await p.dns_get(ZONE, WWW, "A")
        emu.expire_tokens()
        await p.kubeconfig(lab.ref)
        with pytest.raises(errors.PermanentError):
            await p.kubeconfig(lab.ref.model_copy(update={"cluster": str(uuid.uuid4())}))
        emu.password = "not-the-password-any-more"
        emu.expire_tokens()
        with pytest.raises(errors.AuthError):
            await p.kubeconfig(lab.ref)
        exchanges = list(emu.exchanges)
    validate_all(exchanges, cloudapi_spec)
    errors_seen = {ex.status: json.loads(ex.response_body) for ex in exchanges if ex.status >= 400}
    assert set(errors_seen) == {401, 404, 429, 503}
    for status, body in errors_seen.items():
        assert body["httpStatus"] == status and body["messages"][0]["message"]


async def test_a_switch_lands_in_a_real_powerdns(tmp_path: Path) -> None:
    """The lab's path: per-record changes through the emulator become one rrset in a real
    pdns_server (via the PowerDNS DnsBackend), answered by a real resolver."""
    import dns.asyncresolver

    from failover.lab import pdns
    from providers.ionos.emulator import IonosEmulator
    from providers.powerdns.backend import PowerDnsBackend

    server = await pdns.start_powerdns()
    backend = PowerDnsBackend(api_url=server.api_url, api_key=server.api_key)
    emu = IonosEmulator(dns=backend, settle_delay=0.05)
    provider: IonosProvider | None = None
    try:
        await backend.api.ensure_zone(ZONE)
        await emu.start()
        emu.add_zone(ZONE)
        provider = IonosProvider(ionos_lab.settings_for(emu, tmp_path))
        resolver = dns.asyncresolver.Resolver(configure=False)
        resolver.nameservers, resolver.port = [server.host], server.dns_port

        async def answer() -> list[str]:
            found = await resolver.resolve(WWW, "A", lifetime=2.0)
            return sorted(r.to_text() for r in found)

        await provider.dns_set(ZONE, WWW, "A", ("192.0.2.1", "192.0.2.2"), 60)
        assert await answer() == ["192.0.2.1", "192.0.2.2"]
        await provider.dns_set(ZONE, WWW, "A", ("192.0.2.3",), 60)
        assert await answer() == ["192.0.2.3"]
        assert await provider.dns_get(ZONE, WWW, "A") == await backend.get(ZONE, WWW, "A")
    finally:
        if provider is not None:
            await provider.close()
        await emu.close()
        await backend.close()
        await server.stop()
