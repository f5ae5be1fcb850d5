"""The Sovereign Cloud Stack adapter: Cluster API health, kubeconfig, Designate DNS, status page.

SCS is OpenStack plus Cluster API, so the provider's view of a site is split over two control
planes: **Keystone** (application credential → token + service catalog) finds Designate and the
S3 endpoint, while the managed cluster is a Cluster API ``Cluster`` on a *management cluster*
(a Kubernetes API with its own bearer token). Every call goes through the shared
:class:`~failover.core.http.ApiClient`; every SDK here (openstacksdk, designateclient) is sync.

Cluster API says ``status.phase`` must not drive decisions, so the state comes from the summary
condition (``Available`` in v1beta2, ``Ready`` in v1beta1) and the MachineDeployments; the phase
is only a hint (Deleting/Failed are down, a phase we do not know makes the answer unknown).

Designate is optional under scs-0123: when the catalog has no ``dns`` service, the DNS methods
say so and point at ``dns.provider: powerdns``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import ssl
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import yaml

from failover.core import errors, http, secrets
from providers import base, keystone, wire

logger = logging.getLogger(__name__)
S = base.ClusterState

CAPI_GROUP = "cluster.x-k8s.io"
CLUSTER_NAME_LABEL = "cluster.x-k8s.io/cluster-name"
#: summary condition per Cluster API version (v1beta2 first; v1beta1 is the fallback on 404)
SUMMARY_CONDITION = {"v1beta2": "Available", "v1beta1": "Ready"}

#: summary condition ``status`` -> state (every Kubernetes condition status)
CONDITION_STATES: dict[str, base.ClusterState] = {"True": S.READY, "False": S.DOWN, "Unknown": S.UNKNOWN}
#: Cluster ``status.phase`` -> state; used alone only when the summary condition is missing
CLUSTER_PHASES: dict[str, base.ClusterState] = {
    "Pending": S.DOWN, "Provisioning": S.DOWN, "Provisioned": S.READY,
    "Deleting": S.DOWN, "Failed": S.DOWN, "Unknown": S.UNKNOWN,
}
#: phases that mean "down" whatever the condition says (going away, or failed for good)
OVERRIDING_PHASES = frozenset({"Deleting", "Failed"})
#: MachineDeployment ``status.phase`` -> state; used alone only when ``Available`` is missing
POOL_PHASES: dict[str, base.ClusterState] = {
    "Running": S.READY, "ScalingUp": S.DEGRADED, "ScalingDown": S.DEGRADED, "Failed": S.DOWN,
    "Unknown": S.UNKNOWN,
}
#: Designate record-set status: ACTIVE | PENDING | ERROR (the worst of its records)
DNS_FAILED = frozenset({"ERROR"})
DEFAULT_DNS_TIMEOUT = 60.0


def cluster_state(condition: str | None, phase: str) -> base.ClusterState:
    """The normalised state of a Cluster from its summary condition status and its phase."""
    if phase and phase not in CLUSTER_PHASES:
        return S.UNKNOWN  # a phase a newer CAPI added: we cannot vouch for the object
    if phase in OVERRIDING_PHASES:
        return S.DOWN
    if condition is not None:
        return CONDITION_STATES.get(condition, S.UNKNOWN)
    return CLUSTER_PHASES.get(phase, S.UNKNOWN)


def pool_state(condition: str | None, phase: str, *, replicas: int, available: int) -> base.ClusterState:
    """The state of one MachineDeployment: its ``Available`` condition, refined by the counts."""
    if phase and phase not in POOL_PHASES:
        return S.UNKNOWN
    if phase == "Failed":
        return S.DOWN
    if condition == "True":
        return S.READY if available >= replicas else S.DEGRADED
    if condition == "False":
        return S.DEGRADED if available > 0 else S.DOWN
    if condition is not None:
        return S.UNKNOWN
    if phase:
        return POOL_PHASES[phase]
    return S.READY if available >= replicas else (S.DEGRADED if available else S.DOWN)


def overall_state(cluster: base.ClusterState, pools: tuple[base.NodePoolStatus, ...]) -> base.ClusterState:
    """A ready cluster is only as ready as its pools: all down -> DOWN, any not ready -> DEGRADED."""
    if cluster is not S.READY or not pools:
        return cluster
    if all(p.state is S.DOWN for p in pools):
        return S.DOWN
    if any(p.state is not S.READY for p in pools):
        return S.DEGRADED
    return cluster


class ScsProvider(base.Provider):
    """Sovereign Cloud Stack (Keystone v3, Cluster API, Designate v2, SCS status page).

    ``settings.endpoints``: ``keystone`` (auth URL, with or without ``/v3``), ``management`` (the
    Kubernetes API base URL of the Cluster API management cluster), ``status`` (SCS Status Page
    API). Designate and S3 are discovered from the Keystone catalog.

    ``settings.credentials``: ``application_credential_id``, ``application_credential_secret``,
    ``management_token`` (bearer token for the management cluster).

    ``settings.options``: ``namespace`` (namespace of the Cluster objects when the
    ``ClusterRef.project`` is empty, default ``default``), ``interface`` (catalog interface,
    default ``public``), ``dns_region`` (catalog region of Designate; default: the first),
    ``s3_endpoint`` (override for :meth:`s3_endpoint`), ``dns_poll_interval`` (s, default 2),
    ``dns_timeout`` (s, default 60), ``status_lookback_days`` (incident query window, default
    30), ``attempts`` (tries per request, default 4), ``max_retry_delay`` (s, default 10),
    ``management_verify_tls`` (``true``/``false``, default true), ``management_ca_file`` (the
    management cluster's CA bundle, PEM; default: the system CAs).
    """

    kind = "scs"
    REQUIRED_ENDPOINTS = ("keystone", "management", "status")
    REQUIRED_CREDENTIALS = ("application_credential_id", "application_credential_secret", "management_token")

    def __init__(self, settings: base.ProviderSettings) -> None:
        for key in self.REQUIRED_ENDPOINTS:
            if not settings.endpoint(key):  # PermanentError naming the missing key, or empty
                raise errors.PermanentError(f"provider scs: endpoints.{key} is empty")
        for key in self.REQUIRED_CREDENTIALS:
            if key not in settings.credentials:
                raise errors.PermanentError(f"provider scs: credentials.{key} is not configured")
        self._settings = settings
        options = settings.options
        try:
            self._poll = float(options.get("dns_poll_interval", "2"))
            self._dns_timeout = float(options.get("dns_timeout", str(DEFAULT_DNS_TIMEOUT)))
            self._lookback = timedelta(days=float(options.get("status_lookback_days", "30")))
            self._attempts = int(options.get("attempts", "4"))
            self._max_delay = float(options.get("max_retry_delay", "10"))
        except ValueError as exc:
            raise errors.PermanentError(f"provider scs: invalid option value ({exc})") from None
        self._namespace = options.get("namespace", "default")
        self._verify: bool | ssl.SSLContext = options.get("management_verify_tls", "true").lower() not in (
            "false", "0", "no")
        if self._verify and options.get("management_ca_file"):  # the management cluster's own CA
            self._verify = ssl.create_default_context(cafile=options["management_ca_file"])
        kw: dict[str, Any] = {"timeout": settings.timeout, "attempts": self._attempts, "max_delay": self._max_delay}
        self._keystone = http.ApiClient(base_url=settings.endpoint("keystone"), service="scs keystone", **kw)
        def identity() -> dict[str, Any]:
            credential = {"id": settings.secret("application_credential_id"),
                          "secret": settings.secret("application_credential_secret")}
            return {"methods": ["application_credential"], "application_credential": credential}

        self.auth = keystone.KeystoneAuth(client=self._keystone, identity=identity, service="scs keystone",
                                          interface=options.get("interface", "public"))
        self._management = http.ApiClient(
            base_url=settings.endpoint("management"), service="scs management cluster",
            auth=BearerToken(settings), verify=self._verify, **kw)
        self._status = http.ApiClient(base_url=settings.endpoint("status"), service="scs status page", **kw)
        self._designate: http.ApiClient | None = None
        self._zone_ids: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"ScsProvider(endpoints={sorted(self._settings.endpoints)})"

    # --- Cluster API -------------------------------------------------------------------------
    async def _capi(self, ref: base.ClusterRef) -> tuple[str, dict[str, Any]]:
        """The Cluster object and the API version that served it (v1beta2, else v1beta1)."""
        ns = ref.project or self._namespace
        for version in ("v1beta2", "v1beta1"):
            path = f"/apis/{CAPI_GROUP}/{version}/namespaces/{ns}/clusters/{quote(ref.cluster)}"
            try:
                return version, _obj(await self._management.json("GET", path), "Cluster")
            except http.NotFoundError:
                if version == "v1beta1":
                    raise
                logger.debug("scs: %s not served as %s, trying v1beta1", ref.cluster, version)
        raise AssertionError("unreachable")

    async def _pools(self, ref: base.ClusterRef, version: str) -> tuple[base.NodePoolStatus, ...]:
        ns = ref.project or self._namespace
        doc = _obj(await self._management.json(
            "GET", f"/apis/{CAPI_GROUP}/{version}/namespaces/{ns}/machinedeployments",
            params={"labelSelector": f"{CLUSTER_NAME_LABEL}={ref.cluster}"}), "MachineDeploymentList")
        return tuple(_pool(item) for item in _list(doc.get("items", []), "MachineDeploymentList items"))

    async def cluster_status(self, ref: base.ClusterRef) -> base.ClusterStatus:
        version, cluster = await self._capi(ref)
        pools = await self._pools(ref, version)
        status = _obj(cluster.get("status") or {}, "Cluster status")
        kind = SUMMARY_CONDITION[version]
        cond = _condition(status, kind)
        phase = str(status.get("phase") or "")
        condition = None if cond is None else str(cond.get("status", ""))
        state = overall_state(cluster_state(condition, phase), pools)
        raw = _raw(kind, condition, phase)
        reason = "" if cond is None or condition == "True" else "; ".join(
            dict.fromkeys(str(cond[k]) for k in ("reason", "message") if cond.get(k)))
        if not reason and state is not S.READY:  # the Cluster is fine; say which pools are not
            reason = "; ".join(f"MachineDeployment {p.name}: {p.raw_state}, {p.nodes} ready"
                               for p in pools if p.state is not S.READY)
        if state is S.UNKNOWN:
            logger.warning("scs: cluster %s reports %s; treated as unknown", ref.cluster, raw or "nothing")
        logger.debug("scs: cluster %s %s -> %s (%d pools)", ref.cluster, raw, state, len(pools))
        return base.ClusterStatus(provider=self.kind, cluster=ref.cluster, state=state, raw_state=raw,
                                  reason=reason, node_pools=pools)

    async def kubeconfig(self, ref: base.ClusterRef) -> str:
        ns = ref.project or self._namespace
        name = f"{ref.cluster}-kubeconfig"
        secret = _obj(await self._management.json("GET", f"/api/v1/namespaces/{ns}/secrets/{quote(name)}"),
                      "Secret")
        encoded = _obj(secret.get("data") or {}, "Secret data").get("value")
        if not isinstance(encoded, str):
            raise errors.ProtocolError(f"scs: Secret {ns}/{name} has no data.value")
        try:
            text = base64.b64decode(encoded, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise errors.ProtocolError(f"scs: Secret {ns}/{name} data.value is not base64 text") from exc
        _register_kubeconfig(text)
        return text

    # --- Designate ---------------------------------------------------------------------------
    async def _dns(self) -> http.ApiClient:
        if self._designate is None:
            url = await self.auth.endpoint("dns", region=self._settings.options.get("dns_region"))
            if url is None:
                raise errors.PermanentError(
                    "scs: this cloud offers no Designate (no 'dns' service in the Keystone catalog); "
                    "use dns.provider: powerdns for the workplace")
            url = url.rstrip("/").removesuffix("/v2")  # some catalogs list the versioned URL
            self._designate = http.ApiClient(base_url=url, service="scs designate", auth=self.auth,
                                             timeout=self._settings.timeout, attempts=self._attempts,
                                             max_delay=self._max_delay)
        return self._designate

    async def _zone_id(self, zone: str) -> str:
        zone = _fqdn(zone).lower()
        if zone not in self._zone_ids:
            doc = _obj(await (await self._dns()).json("GET", "/v2/zones", params={"name": zone}), "zones")
            for item in _list(doc.get("zones", []), "zones"):
                item = _obj(item, "zone")
                if _fqdn(str(item.get("name", ""))).lower() == zone:
                    self._zone_ids[zone] = str(item["id"])
                    break
            else:
                raise errors.PermanentError(f"scs: Designate zone {zone} not found in this project")
        return self._zone_ids[zone]

    async def _find(self, zone: str, name: str, rtype: str) -> dict[str, Any] | None:
        zone_id, name = await self._zone_id(zone), _fqdn(name).lower()
        doc = _obj(await (await self._dns()).json(
            "GET", f"/v2/zones/{zone_id}/recordsets", params={"name": name, "type": rtype}), "recordsets")
        for item in _list(doc.get("recordsets", []), "recordsets"):
            item = _obj(item, "recordset")
            if _fqdn(str(item.get("name", ""))).lower() == name and item.get("type") == rtype:
                return item
        return None

    async def dns_get(self, zone: str, name: str, rtype: str) -> base.DnsRecordSet | None:
        found = await self._find(zone, name, rtype)
        return None if found is None else _recordset(zone, found)

    async def dns_set(self, zone: str, name: str, rtype: str, values: tuple[str, ...], ttl: int) -> base.DnsRecordSet:
        zone, name = _fqdn(zone), _fqdn(name)
        current = await self._find(zone, name, rtype)
        wanted = sorted(values)
        if current is not None and sorted(current.get("records") or []) == wanted and current.get("ttl") == ttl:
            if current.get("status") == "ACTIVE":
                logger.debug("scs: %s %s already as wanted", name, rtype)
                return _recordset(zone, current)
            return await self._wait_active(zone, str(current["id"]), wanted, ttl)
        client, zone_id = await self._dns(), await self._zone_id(zone)
        if current is None:
            body: dict[str, Any] = {"name": name, "type": rtype, "ttl": ttl, "records": list(values),
                                    "description": "managed by failover"}
            answer = await client.json("POST", f"/v2/zones/{zone_id}/recordsets", json=body)
        else:
            body = {"records": list(values), "ttl": ttl, "description": "managed by failover"}
            answer = await client.json("PUT", f"/v2/zones/{zone_id}/recordsets/{current['id']}", json=body)
        rs_id = str(_obj(answer, "recordset").get("id", ""))
        if not rs_id:
            raise errors.ProtocolError("scs: Designate write answer has no record set id")
        logger.debug("scs: %s %s accepted, waiting for ACTIVE", name, rtype)
        return await self._wait_active(zone, rs_id, wanted, ttl)

    async def _wait_active(self, zone: str, rs_id: str, wanted: list[str], ttl: int) -> base.DnsRecordSet:
        client, zone_id = await self._dns(), await self._zone_id(zone)
        deadline = time.monotonic() + self._dns_timeout
        while True:
            item = _obj(await client.json("GET", f"/v2/zones/{zone_id}/recordsets/{rs_id}"), "recordset")
            state = str(item.get("status", ""))
            if state == "ACTIVE" and sorted(item.get("records") or []) == wanted and item.get("ttl") == ttl:
                return _recordset(zone, item)
            if state in DNS_FAILED:
                raise errors.PermanentError(f"scs: Designate record set {item.get('name')} is {state}")
            if time.monotonic() + self._poll > deadline:
                raise errors.TemporaryError(
                    f"scs: Designate record set {item.get('name')} still {state} after {self._dns_timeout:g}s")
            await asyncio.sleep(self._poll)

    # --- S3, status page ---------------------------------------------------------------------
    async def s3_endpoint(self, region: str) -> str:
        override = self._settings.options.get("s3_endpoint")
        if override:
            return override.rstrip("/")
        url = await self.auth.endpoint("s3", region=region)
        if url is not None:
            return url.rstrip("/")
        url = await self.auth.endpoint("object-store", region=region)
        if url is None:
            raise errors.PermanentError(f"scs: the Keystone catalog lists no s3 or object-store endpoint "
                                        f"in region {region}")
        parts = urlsplit(url)  # Swift/RGW: the S3 API is served at the root of the same host
        return f"{parts.scheme}://{parts.netloc}"

    async def status(self, region: str) -> tuple[base.Incident, ...]:
        now = datetime.now(UTC)
        # the end lies ahead so an incident opened this instant (or on a skewed clock) is inside
        params = {"start": _rfc3339(now - self._lookback), "end": _rfc3339(now + timedelta(minutes=5))}
        doc = _obj(await self._status.json("GET", "/incidents", params=params), "incidents")
        incidents = [_obj(i, "incident") for i in _list(doc.get("data", []), "incidents data")]
        incidents = [i for i in incidents if not i.get("endedAt")]
        regions: dict[str, str] = {}
        if any(i.get("affects") for i in incidents):
            comps = _obj(await self._status.json("GET", "/components"), "components")
            for comp in _list(comps.get("data", []), "components data"):
                comp = _obj(comp, "component")
                labels = comp.get("labels") or {}
                if isinstance(labels, dict) and labels.get("region"):
                    regions[str(comp.get("id"))] = str(labels["region"]).lower()
        out = []
        for incident in incidents:
            affects = [_obj(a, "impact") for a in incident.get("affects") or []]
            comp_ids = [str(a.get("reference", "")) for a in affects]
            known = {regions[c] for c in comp_ids if c in regions}
            if known and region.lower() not in known:
                continue
            out.append(_incident(incident, comp_ids, affects))
        return tuple(out)

    async def close(self) -> None:
        for client in (self._keystone, self._management, self._status, self._designate):
            if client is not None:
                await client.aclose()
        self._designate = None


class BearerToken:
    """The management cluster's bearer token, read from its credential (again on a 401, so a
    rotated token file is picked up)."""

    def __init__(self, settings: base.ProviderSettings) -> None:
        self._settings = settings
        self._token: str | None = None

    def __repr__(self) -> str:
        return "BearerToken(management)"

    async def headers(self, client: httpx.AsyncClient, *, refresh: bool = False) -> dict[str, str]:
        if refresh or self._token is None:
            self._token = self._settings.secret("management_token")  # registered by Credential.read
        return {"Authorization": f"Bearer {self._token}"}


_fqdn = wire.fqdn


def _rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _obj(value: Any, what: str) -> dict[str, Any]:
    return wire.obj(value, what, service="scs")


def _list(value: Any, what: str) -> list[Any]:
    return wire.array(value, what, service="scs")


def _condition(status: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for cond in _list(status.get("conditions") or [], "conditions"):
        if isinstance(cond, dict) and cond.get("type") == kind:
            return cond
    return None


def _raw(kind: str, condition: str | None, phase: str) -> str:
    parts = ([] if condition is None else [f"{kind}={condition}"]) + ([f"phase={phase}"] if phase else [])
    return ", ".join(parts)


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _pool(item: Any) -> base.NodePoolStatus:
    item = _obj(item, "MachineDeployment")
    spec, status = _obj(item.get("spec") or {}, "spec"), _obj(item.get("status") or {}, "status")
    cond = _condition(status, "Available")
    condition = None if cond is None else str(cond.get("status", ""))
    phase = str(status.get("phase") or "")
    replicas = _int(spec.get("replicas", status.get("replicas", 0)))
    available = _int(status.get("availableReplicas"))
    return base.NodePoolStatus(
        name=str(_obj(item.get("metadata") or {}, "metadata").get("name", "")),
        state=pool_state(condition, phase, replicas=replicas, available=available),
        raw_state=_raw("Available", condition, phase), nodes=_int(status.get("readyReplicas")))


def _register_kubeconfig(text: str) -> None:
    """Register the kubeconfig's credentials (keys, tokens, passwords) for redaction."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        doc = None
    users = doc.get("users") if isinstance(doc, dict) else None
    if not isinstance(users, list):
        secrets.register(text)
        return
    for user in users:
        fields = user.get("user") if isinstance(user, dict) else None
        for value in (fields or {}).values() if isinstance(fields, dict) else ():
            if isinstance(value, str):
                secrets.register(value)


def _recordset(zone: str, item: dict[str, Any]) -> base.DnsRecordSet:
    return wire.designate_recordset(zone, item, service="scs designate")


def _incident(item: dict[str, Any], components: list[str], affects: list[dict[str, Any]]) -> base.Incident:
    started: datetime | None = None
    if isinstance(item.get("beganAt"), str):
        try:
            started = datetime.fromisoformat(item["beganAt"].replace("Z", "+00:00"))
        except ValueError:
            started = None
    severities = [a["severity"] for a in affects if isinstance(a.get("severity"), int)]
    return base.Incident(id=str(item.get("id", "")), title=str(item.get("displayName", "")), status="open",
                         impact=f"severity {max(severities)}" if severities else "",
                         components=tuple(components), started_at=started)
