"""The SCS adapter and its emulator, both held to the vendor contracts over real loopback sockets.

Every recorded exchange (the adapter's request and the emulator's response) is validated against
Keystone v3.14, the hand-written Designate spec (checked itself against the api-ref's JSON samples
as golden fixtures) and the SCS Status Page API. The Cluster API objects the adapter reads from the
management cluster are validated against the CRDs' openAPIV3Schema. One vendor spec is patched
**in memory**: Keystone's ``POST /v3/auth/tokens`` declares only ``200`` but answers ``201``.
"""

from __future__ import annotations

import base64
import functools
import json
import re
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import contract
import httpx
import pytest
import scs_lab
import yaml
from openapi_core import OpenAPI
from openapi_core.testing import MockRequest, MockResponse
from openapi_schema_validator import OAS30Validator

from failover.core import errors, secrets
from providers import base
from providers.emulator import Exchange
from providers.scs import adapter
from providers.scs.adapter import ScsProvider

HERE = Path(adapter.__file__).parent
KEYSTONE = contract.spec_path("openstack", "keystone-v3.14.yaml")
DESIGNATE = HERE / "designate.openapi.yaml"
STATUS = contract.spec_path("scs", "status-page-api.yaml")
SAMPLES = contract.spec_path("openstack", "designate-samples")
CRDS = contract.spec_path("cluster-api")
S = base.ClusterState

#: (spec, emulator prefix, the vendor server URL the prefix stands for)
SERVICES = {
    "identity": (KEYSTONE, "/identity", "https://prod1.api.pco.get-cloud.io:5000"),
    "dns": (DESIGNATE, "/dns", "https://designate.scs.example:9001"),
    "status": (STATUS, "/status", "http://localhost:3000"),
}
needs_kube = pytest.mark.skipif(not scs_lab.kube_available(), reason="failover.lab.kube.cluster not present")


@functools.cache
def _keystone() -> OpenAPI:
    """Keystone's own spec cut down to ``POST /v3/auth/tokens`` and the components it references
    (verbatim), so a 500 KB spec is not parsed and validated whole in every test run."""
    doc: dict[str, Any] = yaml.load(KEYSTONE.read_text(encoding="utf-8"), Loader=yaml.CSafeLoader)
    operation = doc["paths"]["/v3/auth/tokens"]["post"]
    operation["responses"]["201"] = operation["responses"]["200"]
    doc["paths"] = {"/v3/auth/tokens": {"post": operation}}
    components: dict[str, dict[str, Any]] = doc["components"]
    kept: dict[str, dict[str, Any]] = {kind: {} for kind in components}
    pending: list[Any] = [doc["paths"]]
    while pending:
        for kind, name in re.findall(r'"#/components/([^/"]+)/([^"]+)"', json.dumps(pending.pop())):
            if name not in kept[kind]:
                kept[kind][name] = components[kind][name]
                pending.append(kept[kind][name])
    kept["securitySchemes"] = components.get("securitySchemes", {})
    doc["components"] = kept
    return OpenAPI.from_dict(doc)


@pytest.fixture(autouse=True)
def patched_keystone(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    original = contract.load
    monkeypatch.setattr(contract, "load", lambda path: _keystone() if path == KEYSTONE else original(path))
    yield


def _operation(ex: Exchange) -> str:
    path = re.sub(r"/(zones|recordsets)/[^/]+", r"/\1/{id}", ex.path)
    return f"{ex.method} {path}"


def validate_all(exchanges: list[Exchange]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for spec, prefix, server in SERVICES.values():
        for ex in (e for e in exchanges if e.path.startswith(prefix + "/")):
            counts[_operation(ex)] += contract.validate(spec, [ex], server_url=server, strip_prefix=prefix)
    assert sum(counts.values()) == len(exchanges), "an exchange hit no known service"
    return counts


@functools.cache
def crd_schema(plural: str, version: str) -> dict[str, Any]:
    doc = yaml.safe_load((CRDS / f"cluster.x-k8s.io_{plural}.yaml").read_text(encoding="utf-8"))
    return next(v["schema"]["openAPIV3Schema"] for v in doc["spec"]["versions"] if v["name"] == version)


def validate_capi(obj: dict[str, Any], plural: str) -> None:
    version = obj["apiVersion"].split("/")[1]
    OAS30Validator(crd_schema(plural, version)).validate(obj)


async def test_keystone_designate_status_validate_against_the_vendor_specs(tmp_path: Path) -> None:
    async with scs_lab.running(tmp_path, management=False) as lab:
        p, name = lab.provider, "portal.ckki.example."
        assert await p.dns_get(scs_lab.ZONE, name, "A") is None
        await p.dns_set(scs_lab.ZONE, name, "A", ("192.0.2.10",), 60)  # create (POST)
        await p.dns_set(scs_lab.ZONE, name, "A", ("192.0.2.11", "192.0.2.12"), 60)  # update (PUT)
        got = await p.dns_get(scs_lab.ZONE, name, "A")
        s3 = await p.s3_endpoint("prod1")
        lab.emulator.add_incident(region="prod1", title="Kubernetes API degraded")
        incidents = await p.status("prod1")
        exchanges = list(lab.emulator.exchanges)
    assert got is not None and sorted(got.values) == ["192.0.2.11", "192.0.2.12"]
    assert s3 == "https://s3.prod1.scs.example"
    assert [i.title for i in incidents] == ["Kubernetes API degraded"]
    counts = validate_all(exchanges)
    used = {"POST /identity/v3/auth/tokens", "GET /dns/v2/zones", "GET /dns/v2/zones/{id}/recordsets",
            "POST /dns/v2/zones/{id}/recordsets", "PUT /dns/v2/zones/{id}/recordsets/{id}",
            "GET /dns/v2/zones/{id}/recordsets/{id}", "GET /status/incidents", "GET /status/components"}
    assert set(counts) == used and all(counts[op] > 0 for op in used)
    writes = [e for e in exchanges if e.method in ("POST", "PUT") and e.path.startswith("/dns/")]
    assert [e.status for e in writes] == [202, 202]
    assert [json.loads(e.response_body)["action"] for e in writes] == ["CREATE", "UPDATE"]
    put = json.loads(writes[1].request_body)
    assert set(put) == {"records", "ttl", "description"}  # Designate's PUT body, no name/type
    assert lab.emulator.token_requests == 1  # cached for every Designate call


@needs_kube
async def test_cluster_api_reads_and_objects_validate_against_the_crds(tmp_path: Path) -> None:
    async with scs_lab.running(tmp_path) as lab:
        status = await lab.provider.cluster_status(scs_lab.REF)
        kubeconfig = await lab.provider.kubeconfig(scs_lab.REF)
        async with httpx.AsyncClient(base_url=lab.management.api.url, timeout=5) as client:
            base_path = f"/apis/cluster.x-k8s.io/v1beta2/namespaces/{scs_lab.REF.project}"
            cluster = (await client.get(f"{base_path}/clusters/{scs_lab.REF.cluster}")).json()
            mds = (await client.get(f"{base_path}/machinedeployments")).json()["items"]
    assert (status.state, status.raw_state) == (S.READY, "Available=True, phase=Provisioned")
    assert [(p.name, p.state, p.nodes) for p in status.node_pools] == [("ckki-scs-md-0", S.READY, 3)]
    assert kubeconfig == scs_lab.KUBECONFIG
    assert "S0VZLURBVEEtc2VjcmV0LXNjcw==" in secrets.known()
    validate_capi(cluster, "clusters")
    assert len(mds) == 1
    for md in mds:
        validate_capi(md, "machinedeployments")


@pytest.mark.parametrize(("sample", "method", "path", "status"), [
    ("recordsets-create-recordset", "post", "/v2/zones/{z}/recordsets", 202),
    ("recordsets-create-mx-recordset", "post", "/v2/zones/{z}/recordsets", 202),
    ("recordsets-create-srv-recordset", "post", "/v2/zones/{z}/recordsets", 202),
    ("recordsets-create-sshfp-recordset", "post", "/v2/zones/{z}/recordsets", 201),
    ("recordsets-update-recordset", "put", "/v2/zones/{z}/recordsets/{r}", 202),
    ("recordsets-show-recordset", "get", "/v2/zones/{z}/recordsets/{r}", 200),
    ("recordsets-list-recordset-in-zone", "get", "/v2/zones/{z}/recordsets", 200),
    ("zones-list-zones", "get", "/v2/zones", 200),
])
def test_designate_spec_accepts_the_api_ref_samples(sample: str, method: str, path: str, status: int) -> None:
    """Golden fixtures: the hand-written spec must accept what the vendor documents."""
    path = path.format(z="2150b1bf-dee2-4221-9d85-11f7886fb15f", r="f7b10e9b-0cae-4a91-b162-562bc6096648")
    request_file = SAMPLES / f"{sample}-request.json"
    body = request_file.read_bytes() if request_file.exists() else None
    request = MockRequest(SERVICES["dns"][2], method, path, headers={"X-Auth-Token": "t0ken-value"},
                          data=body, content_type="application/json")
    api = contract.load(DESIGNATE)
    api.validate_request(request)
    api.validate_response(request, MockResponse((SAMPLES / f"{sample}-response.json").read_bytes(),
                                                status_code=status, content_type="application/json"))


def test_the_designate_spec_is_closed() -> None:
    """OTC's PENDING_UPDATE is not Designate's vocabulary; the validator must reject it."""
    body = json.loads((SAMPLES / "recordsets-show-recordset-response.json").read_text())
    body["status"] = "PENDING_UPDATE"
    ex = Exchange(method="GET", path="/dns/v2/zones/2150b1bf-dee2-4221-9d85-11f7886fb15f/recordsets/"
                  "f7b10e9b-0cae-4a91-b162-562bc6096648", query={}, request_headers={"X-Auth-Token": "t0ken1"},
                  request_body=b"", status=200, response_headers={"Content-Type": "application/json"},
                  response_body=json.dumps(body).encode())
    with pytest.raises(AssertionError, match="PENDING_UPDATE"):
        validate_all([ex])


CLUSTER_TABLE = [  # (summary condition status, phase) -> state; every vendor value of both enums
    ("True", "Provisioned", S.READY), ("False", "Provisioned", S.DOWN), ("Unknown", "Provisioned", S.UNKNOWN),
    ("True", "Pending", S.READY), ("True", "Provisioning", S.READY), ("True", "Unknown", S.READY),
    ("True", "Deleting", S.DOWN), ("True", "Failed", S.DOWN), ("False", "Provisioning", S.DOWN),
    (None, "Pending", S.DOWN), (None, "Provisioning", S.DOWN), (None, "Provisioned", S.READY),
    (None, "Deleting", S.DOWN), (None, "Failed", S.DOWN), (None, "Unknown", S.UNKNOWN), (None, "", S.UNKNOWN),
    ("True", "Hibernating", S.UNKNOWN), ("Maybe", "Provisioned", S.UNKNOWN),
]
POOL_TABLE = [  # (Available, phase, replicas, available) -> state
    ("True", "Running", 3, 3, S.READY), ("True", "Running", 3, 2, S.DEGRADED),
    ("False", "ScalingUp", 3, 1, S.DEGRADED), ("False", "ScalingUp", 3, 0, S.DOWN),
    ("Unknown", "Unknown", 3, 0, S.UNKNOWN), ("True", "Failed", 3, 3, S.DOWN),
    (None, "Running", 3, 3, S.READY), (None, "ScalingUp", 3, 1, S.DEGRADED), (None, "ScalingDown", 3, 3, S.DEGRADED),
    (None, "Failed", 3, 0, S.DOWN), (None, "Unknown", 3, 3, S.UNKNOWN), (None, "", 3, 0, S.DOWN),
    ("True", "Rebalancing", 3, 3, S.UNKNOWN),
]


@pytest.mark.parametrize(("condition", "phase", "expected"), CLUSTER_TABLE)
def test_cluster_state_table(condition: str | None, phase: str, expected: S) -> None:
    assert adapter.cluster_state(condition, phase) is expected


def test_every_vendor_enum_value_is_in_the_tables() -> None:
    phases = set(crd_schema("clusters", "v1beta2")["properties"]["status"]["properties"]["phase"]["enum"])
    assert phases == set(adapter.CLUSTER_PHASES) == {p for _, p, _ in CLUSTER_TABLE if p in phases}
    pool = crd_schema("machinedeployments", "v1beta2")["properties"]["status"]["properties"]["phase"]["enum"]
    assert set(pool) == set(adapter.POOL_PHASES) <= {p for _, p, *_ in POOL_TABLE}
    assert set(adapter.CONDITION_STATES) == {"True", "False", "Unknown"}


@pytest.mark.parametrize(("condition", "phase", "replicas", "available", "expected"), POOL_TABLE)
def test_pool_state_table(condition: str | None, phase: str, replicas: int, available: int, expected: S) -> None:
    assert adapter.pool_state(condition, phase, replicas=replicas, available=available) is expected


@needs_kube
async def test_lab_health_round_trips_through_the_vendor_vocabulary(tmp_path: Path) -> None:
    async with scs_lab.running(tmp_path) as lab:
        for health in S:
            lab.emulator.set_cluster_health(scs_lab.REF.cluster, health)
            got = await lab.provider.cluster_status(scs_lab.REF)
            assert got.state is health, health
            assert (got.reason == "") is (health is S.READY)
        async with httpx.AsyncClient(base_url=lab.management.api.url, timeout=5) as client:
            base_path = f"/apis/cluster.x-k8s.io/v1beta2/namespaces/{scs_lab.REF.project}"
            validate_capi((await client.get(f"{base_path}/clusters/{scs_lab.REF.cluster}")).json(), "clusters")


async def test_dns_set_waits_for_active_and_is_idempotent(tmp_path: Path) -> None:
    settle = 0.3
    async with scs_lab.running(tmp_path, settle_delay=settle, management=False) as lab:
        name = "files.ckki.example."
        started = time.monotonic()
        result = await lab.provider.dns_set(scs_lab.ZONE, name, "A", ("198.51.100.7",), 120)
        assert time.monotonic() - started >= settle  # returned only once applied
        backend = await lab.dns.get(scs_lab.ZONE, name, "A")
        assert backend is not None and backend == result
        writes = sum(e.method in ("POST", "PUT") for e in lab.emulator.exchanges)
        started = time.monotonic()
        again = await lab.provider.dns_set(scs_lab.ZONE, name, "A", ("198.51.100.7",), 120)
        assert time.monotonic() - started < settle and again == result
        assert sum(e.method in ("POST", "PUT") for e in lab.emulator.exchanges) == writes
        changed = await lab.provider.dns_set(scs_lab.ZONE, name, "A", ("198.51.100.7",), 60)  # TTL alone
        assert changed.ttl == 60 and (await lab.dns.get(scs_lab.ZONE, name, "A")) == changed


async def test_dns_sees_records_seeded_in_the_backend(tmp_path: Path) -> None:
    async with scs_lab.running(tmp_path, management=False) as lab:
        await lab.dns.set(scs_lab.ZONE, "mail.ckki.example.", "A", ("192.0.2.25",), 300)
        got = await lab.provider.dns_get(scs_lab.ZONE, "mail.ckki.example.", "A")
        assert got is not None and got.values == ("192.0.2.25",)
        assert await lab.provider.dns_get(scs_lab.ZONE, "ail.ckki.example.", "A") is None


async def test_a_cloud_without_designate_points_at_powerdns(tmp_path: Path) -> None:
    async with scs_lab.running(tmp_path, management=False) as lab:
        lab.emulator.offer_designate = False
        for call in (lab.provider.dns_get(scs_lab.ZONE, "a.ckki.example.", "A"),
                     lab.provider.dns_set(scs_lab.ZONE, "a.ckki.example.", "A", ("192.0.2.1",), 60)):
            with pytest.raises(errors.PermanentError, match=r"no Designate.*dns.provider: powerdns"):
                await call
        assert not any(e.path.startswith("/dns/") for e in lab.emulator.exchanges)


async def test_s3_endpoint_comes_from_the_catalog(tmp_path: Path) -> None:
    async with scs_lab.running(tmp_path, management=False) as lab:
        lab.emulator.s3["prod2"] = "https://s3.prod2.scs.example/"
        assert await lab.provider.s3_endpoint("prod2") == "https://s3.prod2.scs.example"
        with pytest.raises(errors.PermanentError, match="prod9"):
            await lab.provider.s3_endpoint("prod9")
    async with scs_lab.running(tmp_path, management=False, s3_endpoint="http://127.0.0.1:9000/") as lab:
        assert await lab.provider.s3_endpoint("prod1") == "http://127.0.0.1:9000"


async def test_status_lists_only_open_incidents_of_the_region(tmp_path: Path) -> None:
    async with scs_lab.running(tmp_path, management=False) as lab:
        prod1 = lab.emulator.add_incident(region="prod1", title="Kubernetes API errors")
        prod2 = lab.emulator.add_incident(region="prod2", title="Designate slow")
        closed = lab.emulator.add_incident(region="prod1", title="old one")
        lab.emulator.resolve_incident(closed)
        assert [i.id for i in await lab.provider.status("prod1")] == [prod1]
        assert [i.id for i in await lab.provider.status("PROD2")] == [prod2]
        assert await lab.provider.status("prod3") == ()
        incident = (await lab.provider.status("prod2"))[0]
        assert incident.impact == "severity 75" and incident.started_at is not None
        query = next(e.query for e in lab.emulator.exchanges if e.path == "/status/incidents")
        assert set(query) == {"start", "end"}


@pytest.mark.parametrize("missing", ["keystone", "management", "status", "application_credential_id",
                                     "application_credential_secret", "management_token"])
def test_construction_names_a_missing_setting(tmp_path: Path, missing: str) -> None:
    cred = base.Credential(file=tmp_path / "x")
    settings = base.ProviderSettings(
        kind="scs", endpoints={k: "http://127.0.0.1:1" for k in ScsProvider.REQUIRED_ENDPOINTS if k != missing},
        credentials={k: cred for k in ScsProvider.REQUIRED_CREDENTIALS if k != missing})
    with pytest.raises(errors.PermanentError, match=rf"\b{missing}\b"):
        ScsProvider(settings)


async def test_keystone_url_with_v3_suffix_and_wrong_secret(tmp_path: Path) -> None:
    async with scs_lab.running(tmp_path, management=False) as lab:
        v3 = lab.settings.model_copy(update={"endpoints": {**lab.settings.endpoints,
                                                           "keystone": lab.emulator.url + "/identity/v3/"}})
        provider = ScsProvider(v3)
        try:
            assert await provider.s3_endpoint("prod1") == "https://s3.prod1.scs.example"
            (tmp_path / "scs-application_credential_secret").write_text("wrong-secret-value")
            provider.auth._token = None  # force a fresh token request with the new secret
            with pytest.raises(errors.AuthError):
                await provider.s3_endpoint("prod1")
        finally:
            await provider.close()
    bad = [e for e in lab.emulator.exchanges if e.status == 401]
    assert bad and json.loads(bad[0].response_body)["error"]["code"] == 401


def test_kubeconfig_secret_is_base64_of_the_registered_text() -> None:
    from providers.scs.emulator import cluster_objects
    objects = cluster_objects("ns", "c1", site="s", kubeconfig=scs_lab.KUBECONFIG)
    secret = next(obj for _, obj in objects if obj["kind"] == "Secret")
    assert secret["metadata"]["name"] == "c1-kubeconfig" and secret["type"] == "cluster.x-k8s.io/secret"
    assert base64.b64decode(secret["data"]["value"]).decode() == scs_lab.KUBECONFIG
    for _, obj in objects:
        if obj["kind"] != "Secret":
            validate_capi(obj, {"Cluster": "clusters", "MachineDeployment": "machinedeployments"}[obj["kind"]])


@pytest.mark.parametrize("health", list(S))
def test_emulator_writes_crd_valid_objects_for_every_health(health: S) -> None:
    from failover.lab.kube import types as kt
    from failover.lab.kube.store import MemoryStore
    from providers.scs.emulator import ScsEmulator

    store = MemoryStore()
    emu = ScsEmulator(management=store)
    emu.add_cluster(ref=scs_lab.REF, name="site-a", kubeconfig=scs_lab.KUBECONFIG)
    emu.set_cluster_health(scs_lab.REF.cluster, health)
    ns = scs_lab.REF.project
    cluster = store.get(kt.CAPI_CLUSTERS, ns, scs_lab.REF.cluster)
    selector = f"cluster.x-k8s.io/cluster-name={cluster['metadata']['name']}"
    mds, _ = store.list(kt.CAPI_MACHINEDEPLOYMENTS, ns, label_selector=selector)
    validate_capi(cluster, "clusters")
    assert len(mds) == 1
    validate_capi(mds[0], "machinedeployments")
    condition = cluster["status"]["conditions"][0]
    assert condition["type"] == "Available"
    assert adapter.cluster_state(condition["status"], cluster["status"]["phase"]) in (health, S.READY)


def test_an_empty_endpoint_is_named(tmp_path: Path) -> None:
    """The emulator's settings() leave ``management`` empty when it was given no management URL."""
    cred = base.Credential(file=tmp_path / "x")
    settings = base.ProviderSettings(
        kind="scs", endpoints={"keystone": "http://127.0.0.1:1", "management": "", "status": "http://127.0.0.1:1"},
        credentials={k: cred for k in ScsProvider.REQUIRED_CREDENTIALS})
    with pytest.raises(errors.PermanentError, match=r"endpoints\.management is empty"):
        ScsProvider(settings)
