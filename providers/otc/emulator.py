"""An emulator of the Open Telekom Cloud APIs the failover adapter uses, held to the vendor contract.

Nothing in the lab reaches the real cloud, so the OTC adapter is proven against this model of
four OTC services, served from one loopback port under path prefixes (``/iam``, ``/cce``,
``/dns``, ``/status``):

* IAM (Keystone v3 password auth): issues real random tokens in ``X-Subject-Token`` (201, 24 h),
  scoped to a project named after a region; every CCE/DNS request is checked against them (401
  on a missing, unknown or expired token); :meth:`OtcEmulator.expire_tokens` forces a re-auth.
* CCE v3: clusters (``status.phase``), node pools (``status.phase``/``currentNode``) and
  ``clustercert`` returning the registered kubeconfig as JSON.
* DNS v2: zones and record sets with OTC's own status enum; a write answers 202 with
  ``PENDING_CREATE``/``PENDING_UPDATE`` and becomes ``ACTIVE`` after ``settle_delay``, at which
  point it is written to the :class:`~providers.emulator.DnsBackend` (a real PowerDNS in the lab).
  Public zones live in the eu-de project only, as on the real cloud. ``name`` filters are fuzzy.
* Status dashboard (stackmon status-dashboard-v3): ``/v2/incidents`` and ``/v2/components``.

Error bodies follow each service's shape (Keystone ``{"error":{...}}``, CCE ``errorCode``/
``errorMessage``, DNS ``code``/``message``, dashboard ``errMsg``), also for injected faults.
"""

from __future__ import annotations

import asyncio
import contextvars
import re
import secrets as pysecrets
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import yaml
from aiohttp import web

from failover.core import tasks
from providers import base
from providers.emulator import DnsBackend, EmulatorBase, MemoryDns, read_json

_service: contextvars.ContextVar[str] = contextvars.ContextVar("otc_service", default="")

#: how :meth:`OtcEmulator.set_cluster_health` renders a normalised state in CCE's vocabulary
HEALTH_PHASE = {
    base.ClusterState.READY: ("Available", ""),
    base.ClusterState.DEGRADED: ("Upgrading", ""),
    base.ClusterState.DOWN: ("Unavailable", "Error"),
    base.ClusterState.UNKNOWN: ("", ""),
}
_CLOSED = {"resolved", "completed", "cancelled"}
_REGION_RE = re.compile(r"^eu-(de|nl|ch2)(_[A-Za-z0-9_-]+)?$")
_DNS_CODES = {400: "DNS.0303", 401: "DNS.0005", 403: "DNS.0030", 404: "DNS.0101", 429: "DNS.0021"}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class _Cluster:
    project_id: str
    uid: str
    name: str
    kubeconfig: str
    phase: str = "Available"
    pool_phase: str = ""
    reason: str = ""
    nodes: int = 3


@dataclass
class _RecordSet:
    id: str
    zone_id: str
    zone_name: str
    name: str
    type: str
    ttl: int
    records: list[str]
    description: str = ""
    status: str = "ACTIVE"
    created_at: str = field(default_factory=_now)
    updated_at: str | None = None
    generation: int = 0


class OtcEmulator(EmulatorBase):
    """IAM + CCE + DNS + status dashboard of Open Telekom Cloud on one loopback port."""

    def __init__(self, *, dns: DnsBackend | None = None, settle_delay: float = 0.2) -> None:
        super().__init__()
        self.dns: DnsBackend = dns if dns is not None else MemoryDns()
        self.settle_delay = settle_delay
        self.username = "failover-lab"
        self.domain = "OTC-EU-DE-00000000001000000001"
        self.password = pysecrets.token_urlsafe(18)
        self.token_ttl = 24 * 3600.0
        self.token_requests = 0  #: POSTs to /v3/auth/tokens that issued a token
        self.tokens: dict[str, tuple[str, float]] = {}  # token -> (project id, expiry epoch)
        self.projects: dict[str, str] = {}  # project name (region) -> id
        # Keystone ids are dashed UUIDs here because the Keystone spec declares ``format: uuid``
        # (real OTC ids are 32 hex digits; the adapter treats them as opaque)
        self.domain_id = str(uuid.uuid4())
        self.user_id = str(uuid.uuid4())
        self.clusters: dict[str, _Cluster] = {}
        self.zones: dict[str, tuple[str, str]] = {}  # zone id -> (name, project id)
        self.recordsets: dict[str, _RecordSet] = {}
        self.components: dict[str, int] = {}  # region -> component id
        self.incidents: list[dict[str, Any]] = []
        self._timers: set[asyncio.Task[None]] = set()

    # --- lab-facing API --------------------------------------------------------------------
    def project_id(self, name: str) -> str:
        """The id of the project ``name`` (a region such as ``eu-de``), created on first use."""
        return self.projects.setdefault(name, str(uuid.uuid4()))

    def add_cluster(self, *, ref: base.ClusterRef, name: str, kubeconfig: str) -> None:
        if ref.project:
            self.projects[ref.region] = ref.project
        self.clusters[ref.cluster] = _Cluster(project_id=self.project_id(ref.region), uid=ref.cluster,
                                              name=name, kubeconfig=kubeconfig)

    def add_zone(self, zone: str) -> str:
        """A public zone (name with trailing dot) in the eu-de project; returns its id."""
        for zone_id, (name, _) in self.zones.items():
            if name == zone:
                return zone_id
        zone_id = uuid.uuid4().hex
        self.zones[zone_id] = (zone, self.project_id("eu-de"))
        return zone_id

    def set_cluster_health(self, cluster: str, health: base.ClusterState) -> None:
        phase, pool_phase = HEALTH_PHASE[health]
        target = self.clusters[cluster]
        target.phase, target.pool_phase = phase, pool_phase
        target.reason = "" if health is base.ClusterState.READY else f"lab: cluster set {health.value}"

    def set_raw_cluster_state(self, cluster: str, raw: str) -> None:
        self.clusters[cluster].phase = raw

    def set_raw_nodepool_state(self, cluster: str, raw: str) -> None:
        self.clusters[cluster].pool_phase = raw

    def add_incident(self, *, region: str, title: str) -> str:
        component = self.components.setdefault(region.lower(), 100 + len(self.components))
        incident_id = len(self.incidents) + 1
        self.incidents.append({
            "id": incident_id, "title": title, "description": title, "impact": 2,
            "components": [str(component)], "start_date": _now(), "system": False,
            "type": "incident", "status": "analysing", "updates": [],
        })
        return str(incident_id)

    def resolve_incident(self, incident_id: str) -> None:
        for incident in self.incidents:
            if str(incident["id"]) == incident_id:
                incident.update(status="resolved", end_date=_now())

    def expire_tokens(self) -> None:
        """Invalidate every issued token (the next API call answers 401)."""
        self.tokens.clear()

    def settings(self) -> base.ProviderSettings:
        return base.ProviderSettings(kind="otc", endpoints={
            "iam": f"{self.url}/iam/v3", "cce": f"{self.url}/cce", "dns": f"{self.url}/dns",
            "status": f"{self.url}/status"})

    def lab_credentials(self) -> dict[str, str]:
        return {"username": self.username, "password": self.password, "domain": self.domain}

    async def close(self) -> None:
        await tasks.cancel_and_wait(*self._timers)
        await super().close()

    # --- serving ---------------------------------------------------------------------------
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
        if service == "iam":
            return {"error": {"code": status, "message": message, "title": _TITLES.get(status, "Error")}}
        if service == "cce":
            return {"errorCode": f"CCE.01{status:03d}001", "errorMessage": message}
        if service == "dns":
            return {"code": _DNS_CODES.get(status, "DNS.0001" if status < 500 else "DNS.0002"),
                    "message": message}
        return {"errMsg": message}

    def routes(self, app: web.Application) -> None:
        cce = "/cce/api/v3/projects/{project_id}/clusters/{cluster_id}"
        zone = "/dns/v2/zones/{zone_id}/recordsets"
        app.router.add_post("/iam/v3/auth/tokens", self._issue_token)
        app.router.add_get(cce, self._get_cluster)
        app.router.add_get(cce + "/nodepools", self._get_nodepools)
        app.router.add_post(cce + "/clustercert", self._clustercert)
        app.router.add_get("/dns/v2/zones", self._list_zones)
        app.router.add_get(zone, self._list_recordsets)
        app.router.add_post(zone, self._create_recordset)
        app.router.add_get(zone + "/{recordset_id}", self._get_recordset)
        app.router.add_put(zone + "/{recordset_id}", self._update_recordset)
        app.router.add_get("/status/v2/incidents", self._list_incidents)
        app.router.add_get("/status/v2/components", self._list_components)

    # --- IAM -------------------------------------------------------------------------------
    async def _issue_token(self, request: web.Request) -> web.Response:
        try:
            auth = read_json(await request.read())["auth"]
            user = auth["identity"]["password"]["user"]
            methods, project = auth["identity"]["methods"], auth["scope"]["project"]["name"]
            name, password, domain = user["name"], user["password"], user["domain"]["name"]
        except (ValueError, KeyError, TypeError):
            return self.json_error(400, "Invalid input for field 'auth'.")
        if (methods != ["password"] or (name, password, domain) != (self.username, self.password, self.domain)
                or not _REGION_RE.match(str(project))):
            return self.json_error(401, "The request you have made requires authentication.")
        token = "MII" + pysecrets.token_urlsafe(48)
        project_id = self.project_id(project)
        expires = time.time() + self.token_ttl
        self.tokens[token] = (project_id, expires)
        self.token_requests += 1
        issued = datetime.now(UTC)
        domain_doc = {"id": self.domain_id, "name": self.domain}
        body = {"token": {
            "methods": ["password"], "expires_at": _iso(issued + timedelta(seconds=self.token_ttl)),
            "issued_at": _iso(issued), "audit_ids": [pysecrets.token_urlsafe(16)],
            "user": {"id": self.user_id, "name": self.username, "domain": domain_doc},
            "project": {"id": project_id, "name": project, "domain": domain_doc},
            "roles": [{"id": str(uuid.uuid4()), "name": "te_admin"}],
            "catalog": self._catalog(project),
        }}
        return web.json_response(body, status=201, headers={"X-Subject-Token": token})

    def _catalog(self, region: str) -> list[dict[str, Any]]:
        region = region.split("_")[0]
        services = [("cce", "ccev2.0", f"{self.url}/cce"), ("dns", "dns", f"{self.url}/dns")]
        return [{"id": str(uuid.uuid5(uuid.NAMESPACE_URL, url)), "type": kind, "name": name, "endpoints": [
            {"id": str(uuid.uuid5(uuid.NAMESPACE_URL, url + region)), "interface": "public",
             "region": region, "url": url}]} for kind, name, url in services]

    def _project_of(self, request: web.Request) -> str | web.Response:
        token = request.headers.get("X-Auth-Token", "")
        entry = self.tokens.get(token)
        if entry is None or entry[1] <= time.time():
            return self.json_error(401, "Authentication required: token missing, unknown or expired")
        return entry[0]

    # --- CCE -------------------------------------------------------------------------------
    def _cluster_of(self, request: web.Request) -> _Cluster | web.Response:
        project = self._project_of(request)
        if isinstance(project, web.Response):
            return project
        if request.match_info["project_id"] != project:
            return self.json_error(403, "The project in the URL does not match the token's project")
        cluster = self.clusters.get(request.match_info["cluster_id"])
        if cluster is None or cluster.project_id != project:
            return self.json_error(404, f"cluster {request.match_info['cluster_id']} not found")
        return cluster

    async def _get_cluster(self, request: web.Request) -> web.Response:
        cluster = self._cluster_of(request)
        if isinstance(cluster, web.Response):
            return cluster
        status: dict[str, Any] = {"phase": cluster.phase, "endpoints": [
            {"url": "https://192.168.0.10:5443", "type": "Internal"}]}
        if cluster.reason:
            status.update(reason=cluster.reason, message=cluster.reason)
        return web.json_response({
            "kind": "Cluster", "apiVersion": "v3",
            "metadata": {"name": cluster.name, "uid": cluster.uid, "creationTimestamp": _now()},
            "spec": {"type": "VirtualMachine", "flavor": "cce.s2.small", "version": "v1.29"},
            "status": status})

    async def _get_nodepools(self, request: web.Request) -> web.Response:
        cluster = self._cluster_of(request)
        if isinstance(cluster, web.Response):
            return cluster
        pool = {"kind": "NodePool", "apiVersion": "v3",
                "metadata": {"name": f"{cluster.name}-pool", "uid": str(uuid.uuid5(uuid.NAMESPACE_OID, cluster.uid))},
                "spec": {"initialNodeCount": cluster.nodes, "type": "vm"},
                "status": {"currentNode": 0 if cluster.pool_phase == "Error" else cluster.nodes,
                           "phase": cluster.pool_phase}}
        return web.json_response({"kind": "List", "apiVersion": "v3", "items": [pool]})

    async def _clustercert(self, request: web.Request) -> web.Response:
        cluster = self._cluster_of(request)
        if isinstance(cluster, web.Response):
            return cluster
        try:
            duration = read_json(await request.read())["duration"]
        except (ValueError, KeyError, TypeError):
            return self.json_error(400, "Invalid request body: duration is required")
        if not isinstance(duration, int) or isinstance(duration, bool) or not (
                duration == -1 or 1 <= duration <= 1825):
            return self.json_error(400, "duration must be -1 or 1..1825")
        return web.json_response(yaml.safe_load(cluster.kubeconfig))

    # --- DNS -------------------------------------------------------------------------------
    async def _list_zones(self, request: web.Request) -> web.Response:
        project = self._project_of(request)
        if isinstance(project, web.Response):
            return project
        wanted = request.query.get("name", "").lower().rstrip(".")
        if request.query.get("type", "public") != "public":
            return web.json_response({"links": {"self": str(request.url)}, "zones": [],
                                      "metadata": {"total_count": 0}})
        zones = [{"id": zid, "name": name, "description": "", "email": "hostmaster@" + name.rstrip("."),
                  "ttl": 300, "serial": 1, "status": "ACTIVE", "zone_type": "public",
                  "record_num": sum(1 for r in self.recordsets.values() if r.zone_id == zid),
                  "pool_id": "00000000570e54ee01570e9939b20019", "project_id": owner,
                  "created_at": _now(), "links": {"self": f"{self.url}/dns/v2/zones/{zid}"}}
                 for zid, (name, owner) in self.zones.items() if owner == project and wanted in name.lower()]
        return web.json_response({"links": {"self": str(request.url)}, "zones": zones,
                                  "metadata": {"total_count": len(zones)}})

    def _zone_of(self, request: web.Request) -> tuple[str, str] | web.Response:
        project = self._project_of(request)
        if isinstance(project, web.Response):
            return project
        zone_id = request.match_info["zone_id"]
        zone = self.zones.get(zone_id)
        if zone is None or zone[1] != project:
            return self.json_error(404, f"zone {zone_id} does not exist")
        return zone_id, zone[0]

    def _render(self, rs: _RecordSet) -> dict[str, Any]:
        return {"id": rs.id, "name": rs.name, "description": rs.description, "zone_id": rs.zone_id,
                "zone_name": rs.zone_name, "type": rs.type, "ttl": rs.ttl, "records": list(rs.records),
                "status": rs.status, "default": False, "project_id": self.zones[rs.zone_id][1],
                "links": {"self": f"{self.url}/dns/v2/zones/{rs.zone_id}/recordsets/{rs.id}"},
                "created_at": rs.created_at, "updated_at": rs.updated_at}

    async def _list_recordsets(self, request: web.Request) -> web.Response:
        zone = self._zone_of(request)
        if isinstance(zone, web.Response):
            return zone
        name, rtype = request.query.get("name", "").lower(), request.query.get("type", "")
        if name and rtype:
            await self._import_from_backend(zone, _fqdn(name), rtype)
        found = [self._render(r) for r in self.recordsets.values() if r.zone_id == zone[0]
                 and name.rstrip(".") in r.name.lower() and (not rtype or r.type == rtype)]
        return web.json_response({"links": {"self": str(request.url)}, "recordsets": found,
                                  "metadata": {"total_count": len(found)}})

    async def _import_from_backend(self, zone: tuple[str, str], name: str, rtype: str) -> None:
        """Show a record set that exists only in the backend (seeded by the lab) as ACTIVE."""
        if any(r.zone_id == zone[0] and r.name == name and r.type == rtype for r in self.recordsets.values()):
            return
        existing = await self.dns.get(zone[1], name, rtype)
        if existing is not None:
            rs = _RecordSet(id=uuid.uuid4().hex, zone_id=zone[0], zone_name=zone[1], name=name, type=rtype,
                            ttl=existing.ttl, records=list(existing.values))
            self.recordsets[rs.id] = rs

    async def _create_recordset(self, request: web.Request) -> web.Response:
        zone = self._zone_of(request)
        if isinstance(zone, web.Response):
            return zone
        body = _recordset_body(await request.read(), zone[1], require=("name", "type", "records"))
        if isinstance(body, str):
            return self.json_error(400, body)
        if any(r.zone_id == zone[0] and r.name == body["name"] and r.type == body["type"]
               for r in self.recordsets.values()):
            return self.json_error(400, "The record set already exists.")
        rs = _RecordSet(id=uuid.uuid4().hex, zone_id=zone[0], zone_name=zone[1], name=body["name"],
                        type=body["type"], ttl=int(body.get("ttl", 300)), records=list(body["records"]),
                        description=str(body.get("description", "")), status="PENDING_CREATE")
        self.recordsets[rs.id] = rs
        self._schedule_settle(rs)
        return web.json_response(self._render(rs), status=202)

    async def _get_recordset(self, request: web.Request) -> web.Response:
        zone = self._zone_of(request)
        if isinstance(zone, web.Response):
            return zone
        rs = self.recordsets.get(request.match_info["recordset_id"])
        if rs is None or rs.zone_id != zone[0]:
            return self.json_error(404, "The record set does not exist.")
        return web.json_response(self._render(rs))

    async def _update_recordset(self, request: web.Request) -> web.Response:
        zone = self._zone_of(request)
        if isinstance(zone, web.Response):
            return zone
        rs = self.recordsets.get(request.match_info["recordset_id"])
        if rs is None or rs.zone_id != zone[0]:
            return self.json_error(404, "The record set does not exist.")
        body = _recordset_body(await request.read(), zone[1], require=())
        if isinstance(body, str):
            return self.json_error(400, body)
        if body.get("name", rs.name) != rs.name or body.get("type", rs.type) != rs.type:
            return self.json_error(400, "The name and type of a record set cannot be changed.")
        rs.ttl = int(body.get("ttl", rs.ttl))
        rs.records = list(body.get("records", rs.records))
        rs.description = str(body.get("description", rs.description))
        rs.status, rs.updated_at = "PENDING_UPDATE", _now()
        self._schedule_settle(rs)
        return web.json_response(self._render(rs), status=202)

    def _schedule_settle(self, rs: _RecordSet) -> None:
        rs.generation += 1
        task = tasks.create_guarded_task(self._settle(rs, rs.generation), name=f"otc-emulator-dns-{rs.id}")
        self._timers.add(task)
        task.add_done_callback(self._timers.discard)

    async def _settle(self, rs: _RecordSet, generation: int) -> None:
        await asyncio.sleep(self.settle_delay)
        if rs.generation != generation:
            return  # a newer change supersedes this one
        try:
            await self.dns.set(rs.zone_name, rs.name, rs.type, tuple(rs.records), rs.ttl)
        except Exception:
            rs.status = "ERROR"
            raise
        rs.status = "ACTIVE"

    # --- status dashboard ------------------------------------------------------------------
    async def _list_incidents(self, request: web.Request) -> web.Response:
        found = list(self.incidents)
        if request.query.get("active") == "true":
            found = [i for i in found if not i.get("end_date") and i["status"] not in _CLOSED]
        if "type" in request.query:
            types = set(request.query["type"].split(","))
            found = [i for i in found if i["type"] in types]
        return web.json_response({"data": found})

    async def _list_components(self, request: web.Request) -> web.Response:
        return web.json_response([
            {"id": cid, "name": f"Cloud Container Engine ({region.upper()})",
             "attributes": {"name": "region", "value": region.upper()}}
            for region, cid in self.components.items()])


_TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
           429: "Too Many Requests", 500: "Internal Server Error", 503: "Service Unavailable"}
_TYPES = {"A", "AAAA", "MX", "CNAME", "TXT", "NS", "SRV", "CAA", "PTR"}


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _fqdn(name: str) -> str:
    return name if name.endswith(".") else name + "."


def _recordset_body(raw: bytes, zone: str, *, require: tuple[str, ...]) -> dict[str, Any] | str:
    """The validated create/update body, or the reason it is invalid (answered as 400)."""
    try:
        body = read_json(raw)
    except ValueError:
        return "The request body is not valid JSON."
    if not isinstance(body, dict):
        return "The request body must be an object."
    missing = [k for k in require if k not in body]
    if missing:
        return f"Missing parameter: {missing[0]}."
    if "name" in body:
        name = str(body["name"]).lower()
        if not name.endswith(".") or not (name == zone or name.endswith("." + zone)):
            return f"The record set name must be a FQDN within zone {zone}."
        body["name"] = name
    if "type" in body and body["type"] not in _TYPES:
        return "Invalid record set type."
    ttl = body.get("ttl", 300)
    if not isinstance(ttl, int) or isinstance(ttl, bool) or not 1 <= ttl <= 2147483647:
        return "The ttl must be an integer between 1 and 2147483647."
    records = body.get("records", ["x"])
    if not isinstance(records, list) or not records or not all(isinstance(r, str) and r for r in records):
        return "records must be a non-empty list of strings."
    return body
