"""An emulator of the Sovereign Cloud Stack APIs the failover adapter uses, held to the contract.

Nothing in the lab reaches a real SCS cloud, so the SCS adapter is proven against this model,
served from one loopback port under path prefixes:

* ``/identity`` — Keystone v3 application-credential auth: issues random tokens in
  ``X-Subject-Token`` (201) with a service catalog (``dns`` → ``/dns``, ``s3`` per region); every
  Designate request is checked against them (401 on a missing or unknown token);
  :meth:`ScsEmulator.expire_tokens` forces a real re-auth. Catalog URLs are built from the
  request's ``Host``, so a client that came through the lab's fault proxy stays behind it.
* ``/dns`` — Designate v2 zones and record sets: a write answers 202 ``PENDING`` (``action``
  CREATE/UPDATE) and becomes ``ACTIVE``/``NONE`` after ``settle_delay``, when it is written to the
  :class:`~providers.emulator.DnsBackend` (a real PowerDNS in the lab). ``offer_designate=False``
  drops ``dns`` from the catalog, as on clouds without Designate (scs-0123: optional).
* ``/status`` — the SCS Status Page API: ``/incidents`` (between ``start`` and ``end``),
  ``/components`` (with a ``region`` label), ``/phases``. Public, no token.

The managed clusters are Cluster API objects in the **management cluster's store** (the project's
Kubernetes API emulator): :meth:`add_cluster` writes the ``Cluster``, one ``MachineDeployment`` and
the ``<name>-kubeconfig`` Secret, and :meth:`set_cluster_health` flips the ``Available`` conditions
and replica counts. The management API's bearer token is *not* checked by the Kubernetes emulator.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import contextvars
import secrets as pysecrets
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from failover.core import tasks
from failover.lab.kube import types as kt
from providers import base
from providers.emulator import DnsBackend, EmulatorBase, MemoryDns, read_json

_service: contextvars.ContextVar[str] = contextvars.ContextVar("scs_service", default="")

CAPI = "cluster.x-k8s.io"
#: normalised state -> (Cluster Available status, reason, ready workers of 3, MD Available status)
HEALTH = {
    base.ClusterState.READY: ("True", "Available", 3, "True"),
    base.ClusterState.DEGRADED: ("True", "Available", 2, "True"),
    base.ClusterState.DOWN: ("False", "NotAvailable", 0, "False"),
    base.ClusterState.UNKNOWN: ("Unknown", "InternalError", 0, "Unknown"),
}
_DESIGNATE_TYPES = {400: "invalid_object", 401: "authentication_required", 403: "forbidden",
                    404: "not_found", 409: "duplicate_recordset", 429: "over_quota"}
_TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
           429: "Too Many Requests", 500: "Internal Server Error", 503: "Service Unavailable"}
_TYPES = {"A", "AAAA", "CNAME", "MX", "SRV", "TXT", "SPF", "NS", "PTR", "SSHFP", "SOA", "CAA", "NAPTR"}
PHASES = ["investigation ongoing", "working on it", "potential fix deployed", "done"]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class _RecordSet:
    id: str
    zone_id: str
    zone_name: str
    name: str
    type: str
    ttl: int | None
    records: list[str]
    description: str | None = None
    status: str = "ACTIVE"
    action: str = "NONE"
    version: int = 1
    created_at: str = field(default_factory=_now)
    updated_at: str | None = None


class ScsEmulator(EmulatorBase):
    """Keystone + Designate + status page of an SCS cloud on one port; clusters in a kube store."""

    def __init__(self, *, dns: DnsBackend | None = None, settle_delay: float = 0.2,
                 management: kt.Store | None = None, management_url: str = "") -> None:
        super().__init__()
        self.dns: DnsBackend = dns if dns is not None else MemoryDns()
        self.settle_delay = settle_delay
        self.management = management
        self.management_url = management_url
        self.namespace = "default"  #: namespace of Cluster objects whose ref has no project
        self.offer_designate = True
        self.app_cred_id = uuid.uuid4().hex
        self.app_cred_secret = pysecrets.token_urlsafe(24)
        self.management_token = pysecrets.token_urlsafe(24)
        self.token_ttl = 8 * 3600.0
        self.token_requests = 0  #: POSTs to /v3/auth/tokens that issued a token
        self.tokens: dict[str, float] = {}  # token -> expiry epoch
        self.project_id, self.user_id, self.domain_id = (str(uuid.uuid4()) for _ in range(3))
        self.s3: dict[str, str] = {}  #: catalog region -> S3 endpoint URL
        self.clusters: dict[str, str] = {}  # Cluster name -> namespace
        self.zones: dict[str, str] = {}  # zone id -> name
        self.recordsets: dict[str, _RecordSet] = {}
        self.components: dict[str, str] = {}  # region -> component id
        self.incidents: list[dict[str, Any]] = []
        self._timers: set[asyncio.Task[Any]] = set()

    # --- lab-facing API ----------------------------------------------------------------------
    def add_cluster(self, *, ref: base.ClusterRef, name: str, kubeconfig: str) -> None:
        """Write Cluster ``ref.cluster``, its MachineDeployment and kubeconfig Secret into the
        management store; ``ref.project`` is the namespace. ``name`` is the site's display name."""
        store = self._store()
        ns = ref.project or self.namespace
        with contextlib.suppress(kt.AlreadyExists):
            store.create(kt.NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        self.s3.setdefault(ref.region, f"https://s3.{ref.region}.scs.example")
        for rt, obj in cluster_objects(ns, ref.cluster, site=name, kubeconfig=kubeconfig):
            store.create(rt, obj)
        self.clusters[ref.cluster] = ns
        self.set_cluster_health(ref.cluster, base.ClusterState.READY)

    def add_zone(self, zone: str) -> str:
        """A Designate zone (name with trailing dot) in the project; returns its id."""
        for zone_id, name in self.zones.items():
            if name == zone:
                return zone_id
        zone_id = str(uuid.uuid4())
        self.zones[zone_id] = zone
        return zone_id

    def set_cluster_health(self, cluster: str, health: base.ClusterState) -> None:
        status, reason, workers, md_status = HEALTH[health]
        store, ns = self._store(), self.clusters[cluster]
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        message = "" if health is base.ClusterState.READY else f"lab: cluster set {health.value}"
        phase = "Unknown" if health is base.ClusterState.UNKNOWN else "Provisioned"
        cond = {"type": "Available", "status": status, "reason": reason, "message": message,
                "lastTransitionTime": stamp}
        store.patch(kt.CAPI_CLUSTERS, ns, cluster, {"status": {"phase": phase, "conditions": [cond]}},
                    subresource="status")
        md_cond = {**cond, "status": md_status,
                   "reason": {"True": "Available", "False": "NotAvailable"}.get(md_status, "InternalError")}
        store.patch(kt.CAPI_MACHINEDEPLOYMENTS, ns, f"{cluster}-md-0", {"status": {
            "replicas": 3, "readyReplicas": workers, "availableReplicas": workers, "upToDateReplicas": 3,
            "phase": "Running" if workers else "ScalingUp", "conditions": [md_cond]}}, subresource="status")

    def set_raw_cluster_state(self, cluster: str, raw: str) -> None:
        """Set the Cluster's ``status.phase`` to any value (a phase a newer Cluster API adds)."""
        self._store().patch(kt.CAPI_CLUSTERS, self.clusters[cluster], cluster, {"status": {"phase": raw}},
                            subresource="status")

    def add_incident(self, *, region: str, title: str) -> str:
        component = self.components.setdefault(region.lower(), str(uuid.uuid4()))
        incident_id = str(uuid.uuid4())
        self.incidents.append({
            "id": incident_id, "displayName": title, "description": title,
            "beganAt": _iso(datetime.now(UTC)), "endedAt": None, "updates": [],
            "phase": {"generation": 1, "order": 0},
            "affects": [{"reference": component, "type": IMPACT_TYPE, "severity": 75}],
        })
        return incident_id

    def resolve_incident(self, incident_id: str) -> None:
        for incident in self.incidents:
            if incident["id"] == incident_id:
                incident.update(endedAt=_iso(datetime.now(UTC)), phase={"generation": 1, "order": 3})

    def expire_tokens(self) -> None:
        """Invalidate every issued token (the next Designate call answers 401)."""
        self.tokens.clear()

    def settings(self) -> base.ProviderSettings:
        return base.ProviderSettings(kind="scs", endpoints={
            "keystone": f"{self.url}/identity", "management": self.management_url,
            "status": f"{self.url}/status"}, options={"namespace": self.namespace})

    def lab_credentials(self) -> dict[str, str]:
        return {"application_credential_id": self.app_cred_id,
                "application_credential_secret": self.app_cred_secret,
                "management_token": self.management_token}

    async def close(self) -> None:
        await tasks.cancel_and_wait(*self._timers)
        await super().close()

    def _store(self) -> kt.Store:
        if self.management is None:
            raise RuntimeError("ScsEmulator: no management cluster store was given")
        return self.management

    # --- serving -----------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = super().app()
        app.middlewares.insert(0, self._service_of)
        return app

    @web.middleware
    async def _service_of(self, request: web.Request, handler: Any) -> web.StreamResponse:
        _service.set(request.path.split("/", 2)[1] if request.path.count("/") >= 2 else "")
        result: web.StreamResponse = await handler(request)
        return result

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        service = _service.get()
        if service == "identity":
            return {"error": {"code": status, "message": message, "title": _TITLES.get(status, "Error")}}
        if service == "dns":
            return {"code": status, "type": _DESIGNATE_TYPES.get(status, "service_unavailable"),
                    "message": message, "request_id": f"req-{uuid.uuid4()}"}
        return {"message": message}

    def routes(self, app: web.Application) -> None:
        rs = "/dns/v2/zones/{zone_id}/recordsets"
        app.router.add_post("/identity/v3/auth/tokens", self._issue_token)
        app.router.add_get("/dns/v2/zones", self._list_zones)
        app.router.add_get(rs, self._list_recordsets)
        app.router.add_post(rs, self._create_recordset)
        app.router.add_get(rs + "/{recordset_id}", self._get_recordset)
        app.router.add_put(rs + "/{recordset_id}", self._update_recordset)
        app.router.add_get("/status/incidents", self._list_incidents)
        app.router.add_get("/status/components", self._list_components)
        app.router.add_get("/status/phases", self._list_phases)

    # --- Keystone ----------------------------------------------------------------------------
    async def _issue_token(self, request: web.Request) -> web.Response:
        try:
            identity = read_json(await request.read())["auth"]["identity"]
            methods, cred = identity["methods"], identity["application_credential"]
            given = (cred["id"], cred["secret"])
        except (ValueError, KeyError, TypeError):
            return self.json_error(400, "Invalid input for field 'identity'.")
        if methods != ["application_credential"] or given != (self.app_cred_id, self.app_cred_secret):
            return self.json_error(401, "The request you have made requires authentication.")
        token = "gAAAAA" + pysecrets.token_urlsafe(48)
        self.tokens[token] = time.time() + self.token_ttl
        self.token_requests += 1
        issued = datetime.now(UTC)
        domain = {"id": self.domain_id, "name": "Default"}
        body = {"token": {
            "methods": ["application_credential"], "audit_ids": [pysecrets.token_urlsafe(16)],
            "expires_at": _iso(issued + timedelta(seconds=self.token_ttl)), "issued_at": _iso(issued),
            "user": {"id": self.user_id, "name": "failover-lab", "domain": domain},
            "project": {"id": self.project_id, "name": "failover-lab", "domain": domain},
            "is_domain": False, "roles": [{"id": str(uuid.uuid5(uuid.NAMESPACE_DNS, "member")), "name": "member"}],
            "application_credential": {"id": self.app_cred_id, "name": "failover", "restricted": True},
            "catalog": self._catalog(f"{request.scheme}://{request.host}"),
        }}
        return web.json_response(body, status=201, headers={"X-Subject-Token": token})

    def _catalog(self, origin: str) -> list[dict[str, Any]]:
        regions = sorted(self.s3) or ["RegionOne"]
        services: list[tuple[str, str, dict[str, str]]] = [
            ("s3", "s3", dict(self.s3)),
            ("identity", "keystone", {r: f"{origin}/identity" for r in regions})]
        if self.offer_designate:
            services.append(("dns", "designate", {r: f"{origin}/dns" for r in regions}))
        return [{"id": str(uuid.uuid5(uuid.NAMESPACE_URL, kind)), "type": kind, "name": name, "endpoints": [
            {"id": str(uuid.uuid5(uuid.NAMESPACE_URL, kind + region)), "interface": "public",
             "region": region, "region_id": region, "url": url} for region, url in sorted(urls.items())]}
            for kind, name, urls in services]

    def _authorised(self, request: web.Request) -> web.Response | None:
        expiry = self.tokens.get(request.headers.get("X-Auth-Token", ""))
        if expiry is None or expiry <= time.time():
            return self.json_error(401, "Authentication required")
        return None

    # --- Designate ---------------------------------------------------------------------------
    async def _list_zones(self, request: web.Request) -> web.Response:
        if (denied := self._authorised(request)) is not None:
            return denied
        wanted = request.query.get("name", "").lower()
        zones: list[dict[str, Any]] = [{"id": zid, "name": name, "email": "hostmaster@" + name.rstrip("."), "ttl": 3600,
                  "serial": 1404757531, "status": "ACTIVE", "action": "NONE", "description": None,
                  "masters": [], "type": "PRIMARY", "transferred_at": None, "version": 1,
                  "pool_id": str(uuid.uuid5(uuid.NAMESPACE_DNS, "pool")), "project_id": self.project_id,
                  "created_at": _now(), "updated_at": None, "attributes": {},
                  "links": {"self": f"{request.scheme}://{request.host}/dns/v2/zones/{zid}"}}
                 for zid, name in self.zones.items() if not wanted or name.lower() == wanted]
        return web.json_response({"zones": zones, "links": {"self": str(request.url)},
                                  "metadata": {"total_count": len(zones)}})

    def _zone_of(self, request: web.Request) -> tuple[str, str] | web.Response:
        if (denied := self._authorised(request)) is not None:
            return denied
        zone_id = request.match_info["zone_id"]
        if zone_id not in self.zones:
            return self.json_error(404, "Could not find Zone")
        return zone_id, self.zones[zone_id]

    def _render(self, request: web.Request, rs: _RecordSet) -> dict[str, Any]:
        return {"id": rs.id, "name": rs.name, "description": rs.description, "zone_id": rs.zone_id,
                "zone_name": rs.zone_name, "project_id": self.project_id, "type": rs.type, "ttl": rs.ttl,
                "records": list(rs.records), "status": rs.status, "action": rs.action, "version": rs.version,
                "created_at": rs.created_at, "updated_at": rs.updated_at, "links": {
                    "self": f"{request.scheme}://{request.host}/dns/v2/zones/{rs.zone_id}/recordsets/{rs.id}"}}

    async def _list_recordsets(self, request: web.Request) -> web.Response:
        zone = self._zone_of(request)
        if isinstance(zone, web.Response):
            return zone
        name, rtype = request.query.get("name", "").lower(), request.query.get("type", "")
        if name and rtype:
            await self._import_from_backend(zone, name if name.endswith(".") else name + ".", rtype)
        found = [self._render(request, r) for r in self.recordsets.values() if r.zone_id == zone[0]
                 and (not name or r.name == name) and (not rtype or r.type == rtype)]
        return web.json_response({"recordsets": found, "links": {"self": str(request.url)},
                                  "metadata": {"total_count": len(found)}})

    async def _import_from_backend(self, zone: tuple[str, str], name: str, rtype: str) -> None:
        """Show a record set that exists only in the backend (seeded by the lab) as ACTIVE."""
        if any(r.zone_id == zone[0] and r.name == name and r.type == rtype for r in self.recordsets.values()):
            return
        existing = await self.dns.get(zone[1], name, rtype)
        if existing is not None:
            rs = _RecordSet(id=str(uuid.uuid4()), zone_id=zone[0], zone_name=zone[1], name=name, type=rtype,
                            ttl=existing.ttl, records=list(existing.values))
            self.recordsets[rs.id] = rs

    async def _create_recordset(self, request: web.Request) -> web.Response:
        zone = self._zone_of(request)
        if isinstance(zone, web.Response):
            return zone
        body = _recordset_body(await request.read(), zone[1], create=True)
        if isinstance(body, str):
            return self.json_error(400, body)
        if any(r.zone_id == zone[0] and r.name == body["name"] and r.type == body["type"]
               for r in self.recordsets.values()):
            return self.json_error(409, "Duplicate RecordSet")
        rs = _RecordSet(id=str(uuid.uuid4()), zone_id=zone[0], zone_name=zone[1], name=body["name"],
                        type=body["type"], ttl=body.get("ttl"), records=list(body["records"]),
                        description=body.get("description"), status="PENDING", action="CREATE")
        self.recordsets[rs.id] = rs
        self._schedule_settle(rs)
        return web.json_response(self._render(request, rs), status=202)

    def _recordset_of(self, request: web.Request) -> _RecordSet | web.Response:
        zone = self._zone_of(request)
        if isinstance(zone, web.Response):
            return zone
        rs = self.recordsets.get(request.match_info["recordset_id"])
        if rs is None or rs.zone_id != zone[0]:
            return self.json_error(404, "Could not find RecordSet")
        return rs

    async def _get_recordset(self, request: web.Request) -> web.Response:
        rs = self._recordset_of(request)
        return rs if isinstance(rs, web.Response) else web.json_response(self._render(request, rs))

    async def _update_recordset(self, request: web.Request) -> web.Response:
        rs = self._recordset_of(request)
        if isinstance(rs, web.Response):
            return rs
        body = _recordset_body(await request.read(), rs.zone_name, create=False)
        if isinstance(body, str):
            return self.json_error(400, body)
        rs.ttl = body.get("ttl", rs.ttl)
        rs.records = list(body.get("records", rs.records))
        rs.description = body.get("description", rs.description)
        rs.status, rs.action, rs.updated_at = "PENDING", "UPDATE", _now()
        rs.version += 1
        self._schedule_settle(rs)
        return web.json_response(self._render(request, rs), status=202)

    def _schedule_settle(self, rs: _RecordSet) -> None:
        task = tasks.create_guarded_task(self._settle(rs, rs.version), name=f"scs-emulator-dns-{rs.id}")
        self._timers.add(task)
        task.add_done_callback(self._timers.discard)

    async def _settle(self, rs: _RecordSet, version: int) -> None:
        await asyncio.sleep(self.settle_delay)
        if rs.version != version:
            return  # a newer change supersedes this one
        try:
            await self.dns.set(rs.zone_name, rs.name, rs.type, tuple(rs.records), rs.ttl or 3600)
        except Exception:
            rs.status = "ERROR"
            raise
        rs.status, rs.action = "ACTIVE", "NONE"

    # --- status page -------------------------------------------------------------------------
    async def _list_incidents(self, request: web.Request) -> web.Response:
        try:
            start = datetime.fromisoformat(request.query["start"].replace("Z", "+00:00"))
            end = datetime.fromisoformat(request.query["end"].replace("Z", "+00:00"))
        except (KeyError, ValueError):
            return self.json_error(400, "start and end (RFC3339) are required")
        found = [i for i in self.incidents if _overlaps(i, start, end)]
        return web.json_response({"data": found})

    async def _list_components(self, request: web.Request) -> web.Response:
        data = []
        for region, cid in self.components.items():
            affected = [{"reference": i["id"], "type": IMPACT_TYPE, "severity": a["severity"]}
                        for i in self.incidents if not i["endedAt"] for a in i["affects"] if a["reference"] == cid]
            data.append({"id": cid, "displayName": f"Kubernetes ({region})", "labels": {"region": region},
                         "activelyAffectedBy": affected})
        return web.json_response({"data": data})

    async def _list_phases(self, request: web.Request) -> web.Response:
        return web.json_response({"data": {"generation": 1, "phases": PHASES}})


IMPACT_TYPE = str(uuid.uuid5(uuid.NAMESPACE_URL, "scs-status-page/impacttype/performance-degration"))


def _overlaps(incident: dict[str, Any], start: datetime, end: datetime) -> bool:
    began = datetime.fromisoformat(incident["beganAt"].replace("Z", "+00:00"))
    ended = incident["endedAt"]
    return began <= end and (ended is None or datetime.fromisoformat(ended.replace("Z", "+00:00")) >= start)


def cluster_objects(ns: str, name: str, *, site: str, kubeconfig: str) -> list[tuple[kt.ResourceType, kt.KubeObject]]:
    """The Cluster API objects of one workload cluster, as a ClusterClass-based SCS cluster has them."""
    labels = {f"{CAPI}/cluster-name": name}
    cluster = {"apiVersion": f"{CAPI}/v1beta2", "kind": "Cluster",
               "metadata": {"name": name, "namespace": ns, "annotations": {"failover.lab/site": site}},
               "spec": {"topology": {"classRef": {"name": "openstack-scs-1-33-v1"}, "version": "v1.33.4",
                                     "workers": {"machineDeployments": [{"class": "default-worker",
                                                                         "name": "md-0", "replicas": 3}]}}}}
    md = {"apiVersion": f"{CAPI}/v1beta2", "kind": "MachineDeployment",
          "metadata": {"name": f"{name}-md-0", "namespace": ns, "labels": labels},
          "spec": {"clusterName": name, "replicas": 3, "selector": {"matchLabels": labels},
                   "template": {"metadata": {"labels": labels}, "spec": {
                       "clusterName": name, "version": "v1.33.4",
                       "bootstrap": {"configRef": {"apiGroup": "bootstrap.cluster.x-k8s.io",
                                                   "kind": "KubeadmConfigTemplate", "name": f"{name}-md-0"}},
                       "infrastructureRef": {"apiGroup": "infrastructure.cluster.x-k8s.io",
                                             "kind": "OpenStackMachineTemplate", "name": f"{name}-md-0"}}}}}
    secret = {"apiVersion": "v1", "kind": "Secret", "type": f"{CAPI}/secret",
              "metadata": {"name": f"{name}-kubeconfig", "namespace": ns, "labels": labels},
              "data": {"value": base64.b64encode(kubeconfig.encode("utf-8")).decode("ascii")}}
    return [(kt.CAPI_CLUSTERS, cluster), (kt.CAPI_MACHINEDEPLOYMENTS, md), (kt.SECRETS, secret)]


def _recordset_body(raw: bytes, zone: str, *, create: bool) -> dict[str, Any] | str:
    """The validated create/update body, or the reason it is invalid (answered as 400)."""
    try:
        body = read_json(raw)
    except ValueError:
        return "Request body is not valid JSON"
    if not isinstance(body, dict):
        return "Request body must be an object"
    allowed = {"name", "type", "ttl", "records", "description"} if create else {"ttl", "records", "description"}
    if extra := sorted(set(body) - allowed):
        return f"Provided object does not match schema: '{extra[0]}' is not allowed"
    if create:
        for key in ("name", "type", "records"):
            if key not in body:
                return f"Provided object does not match schema: '{key}' is a required property"
        name = str(body["name"]).lower()
        if not name.endswith(".") or not (name == zone or name.endswith("." + zone)):
            return f"RecordSet name {name} is not within zone {zone}"
        body["name"] = name
        if body["type"] not in _TYPES:
            return "Provided object does not match schema: invalid type"
    ttl = body.get("ttl")
    if ttl is not None and (not isinstance(ttl, int) or isinstance(ttl, bool) or not 1 <= ttl <= 2147483647):
        return "Provided object does not match schema: invalid ttl"
    records = body.get("records", ["x"])
    if not isinstance(records, list) or not records or not all(isinstance(r, str) and r for r in records):
        return "Provided object does not match schema: records must be a non-empty list of strings"
    return body
