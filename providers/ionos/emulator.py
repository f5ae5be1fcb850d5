"""An emulator of the IONOS Cloud APIs the adapter uses, following the vendor's contract.

Why: nothing in tests or the lab reaches IONOS, so the adapter is proven against this model of it,
and contract tests validate both sides of every exchange against ``cloudapi-v6.yaml`` (its state
enum patched with the values the live API added), ``auth-v1.yaml`` and the hand-written
``dns.openapi.yaml``/``statuspage.openapi.yaml`` beside this file. One loopback port serves:

* ``/auth/v1/tokens/generate``: HTTP Basic in, ``{"token": JWT}`` out (HS256, ``exp`` set);
* ``/cloudapi/v6/k8s/…``: cluster, node pools and kubeconfig; every request needs a live token
  (or Basic credentials, which the v6 spec also allows);
* ``/dns/zones…``: zones and single records; ``PUT`` (upsert) and ``DELETE`` answer 202 and the
  record stays PROVISIONING/DESTROYING for ``settle_delay`` seconds before the change is written
  to the :class:`~providers.emulator.DnsBackend` and the record is AVAILABLE (or gone);
* ``/status/api/v2/summary.json``: an Atlassian Statuspage v2 summary (no auth).

Every IONOS API answer carries the ``X-RateLimit-*`` headers; errors use the vendor's
``{"httpStatus", "messages": [{"errorCode", "message"}]}``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import secrets as pysecrets
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import jwt
from aiohttp import web

from failover.core import tasks
from providers import base
from providers.emulator import DnsBackend, EmulatorBase, MemoryDns, read_json

#: how the lab's normalised health is rendered in the Cloud API's vocabulary (None: no state)
HEALTH_STATE: dict[base.ClusterState, str | None] = {
    base.ClusterState.READY: "ACTIVE",
    base.ClusterState.DEGRADED: "UPDATING",
    base.ClusterState.DOWN: "FAILED",
    base.ClusterState.UNKNOWN: None,
}
RECORD_TYPES = frozenset({"A", "AAAA", "CNAME", "ALIAS", "MX", "NS", "SRV", "TXT", "CAA", "SSHFP", "TLSA",
                          "SMIMEA", "DS", "HTTPS", "SVCB", "OPENPGPKEY", "CERT", "URI", "RP", "LOC"})
RATE_LIMIT, RATE_BURST = 120, 50  #: requests per minute, concurrent requests
_RATED = ("/auth/", "/cloudapi/", "/dns/")
#: error codes in the Cloud API's style; the numbers are the emulator's own, not vendor-verified
_ERROR_CODES = {400: "100", 401: "315", 403: "344", 404: "309", 409: "102", 422: "100", 429: "429",
                500: "000", 503: "000"}


def _iso(when: datetime | None = None) -> str:
    return (when or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.") + "000Z"


@dataclass
class NodePool:
    id: str
    name: str
    state: str | None = "ACTIVE"
    node_count: int = 3


@dataclass
class Cluster:
    id: str
    name: str
    location: str
    kubeconfig: str
    state: str | None = "ACTIVE"
    pools: list[NodePool] = field(default_factory=list)
    created: str = field(default_factory=_iso)


@dataclass
class Record:
    id: str
    zone_id: str
    name: str
    type: str
    content: str
    ttl: int
    enabled: bool = True
    state: str = "PROVISIONING"
    applied: str | None = None  #: the content the DNS backend serves for this record
    applied_ttl: int = 3600
    generation: int = 0
    created: str = field(default_factory=_iso)
    modified: str = field(default_factory=_iso)


class IonosEmulator(EmulatorBase):
    """IONOS Auth API, Cloud API v6 (k8s), Cloud DNS and status page on one loopback port."""

    def __init__(self, *, dns: DnsBackend | None = None, settle_delay: float = 0.2,
                 token_lifetime: int = 3600) -> None:
        super().__init__()
        self.dns: DnsBackend = dns or MemoryDns()
        self.settle_delay = settle_delay
        self.token_lifetime = token_lifetime
        self.username = f"failover-{pysecrets.token_hex(4)}@lab.example"
        self.password = pysecrets.token_urlsafe(18)
        self.contract_number = 31000000 + pysecrets.randbelow(999999)
        self._signing_key = pysecrets.token_bytes(32)
        self.tokens: dict[str, float] = {}  #: live token → expiry (epoch seconds)
        self.issued_tokens: list[str] = []  #: every token issued (tests grep for leaks)
        self.token_requests = 0
        self.clusters: dict[str, Cluster] = {}
        self.zones: dict[str, str] = {}  #: zone id → zone name (no trailing dot, as IONOS keeps it)
        self.records: dict[str, Record] = {}
        self.fail_dns_changes = 0  #: the next N DNS changes end FAILED
        self.incidents: list[dict[str, Any]] = []
        self.components: dict[str, dict[str, Any]] = {}
        for name in ("Cloud API", "Cloud DNS"):
            self._component(name)
        self._recent: deque[float] = deque()
        self._backend_lock = asyncio.Lock()
        self._timers: set[asyncio.Task[Any]] = set()

    # --- lab-facing API ------------------------------------------------------------------------
    def add_cluster(self, *, ref: base.ClusterRef, name: str, kubeconfig: str) -> None:
        """Register a managed cluster (id ``ref.cluster``, location ``ref.region``) with one pool."""
        pool = NodePool(id=str(uuid.uuid4()), name=f"{name}-pool1")
        self.clusters[ref.cluster] = Cluster(id=ref.cluster, name=name, location=ref.region,
                                             kubeconfig=kubeconfig, pools=[pool])

    def add_zone(self, zone: str) -> str:
        zone_id = str(uuid.uuid4())
        self.zones[zone_id] = zone.rstrip(".")
        return zone_id

    def set_cluster_health(self, cluster: str, health: base.ClusterState) -> None:
        target = self.clusters[cluster]
        target.state = HEALTH_STATE[health]
        for pool in target.pools:
            pool.state = "FAILED" if health is base.ClusterState.DOWN else "ACTIVE"

    def set_raw_cluster_state(self, cluster: str, raw: str) -> None:
        self.clusters[cluster].state = raw

    def set_raw_nodepool_state(self, cluster: str, raw: str | None, *, index: int = 0) -> None:
        self.clusters[cluster].pools[index].state = raw

    def add_incident(self, *, region: str, title: str) -> str:
        """Open an incident on the status page, with a ``Managed Kubernetes <region>`` component."""
        component = self._component(f"Managed Kubernetes {region}", status="major_outage")
        now, incident_id = _iso(), pysecrets.token_hex(6)
        self.incidents.append({
            "id": incident_id, "name": title, "status": "investigating", "impact": "major",
            "created_at": now, "updated_at": now, "started_at": now, "monitoring_at": None,
            "resolved_at": None,
            "shortlink": f"https://stspg.io/{incident_id}", "page_id": "xdhr50sc5fkm",
            "incident_updates": [{"id": f"u{incident_id}", "status": "investigating", "body": title,
                                  "incident_id": incident_id, "created_at": now, "updated_at": now,
                                  "display_at": now}],
            "components": [component],
        })
        return incident_id

    def resolve_incident(self, incident_id: str) -> None:
        for incident in self.incidents:
            if incident["id"] == incident_id:
                incident.update(status="resolved", resolved_at=_iso())
                for component in incident["components"]:
                    self.components[component["name"]]["status"] = "operational"

    def set_component_status(self, name: str, status: str) -> None:
        self._component(name)["status"] = status

    def issue_token(self) -> str:
        """A token as ``/tokens/generate`` would issue it (for a configured ``credentials.token``)."""
        token, expires = self._new_token()
        self.tokens[token] = expires
        return token

    def expire_tokens(self) -> None:
        """Invalidate every issued token: the next API call answers 401 and must re-authenticate."""
        self.tokens.clear()

    def settings(self) -> base.ProviderSettings:
        return base.ProviderSettings(
            kind="ionos",
            endpoints={"cloudapi": f"{self.url}/cloudapi/v6", "auth": f"{self.url}/auth/v1",
                       "dns": f"{self.url}/dns", "status": f"{self.url}/status"},
            options={"poll_interval": "0.05", "s3_naming": "legacy"})

    def lab_credentials(self) -> dict[str, str]:
        return {"username": self.username, "password": self.password}

    async def close(self) -> None:
        await tasks.cancel_and_wait(*self._timers)
        await super().close()

    # --- serving -------------------------------------------------------------------------------
    def error_body(self, status: int, message: str) -> dict[str, Any]:
        return {"httpStatus": status, "messages": [{"errorCode": _ERROR_CODES.get(status, str(status)),
                                                    "message": message}]}

    def app(self) -> web.Application:
        app = super().app()
        app.middlewares.insert(1, self._rate_headers)  # inside the recorder, around injected faults
        return app

    def routes(self, app: web.Application) -> None:
        k8s, records = "/cloudapi/v6/k8s/{k8sClusterId}", "/dns/zones/{zoneId}/records"
        app.router.add_get("/auth/v1/tokens/generate", self._generate)
        app.router.add_get(k8s, self._authorized(self._get_cluster))
        app.router.add_get(f"{k8s}/nodepools", self._authorized(self._get_nodepools))
        app.router.add_get(f"{k8s}/kubeconfig", self._authorized(self._get_kubeconfig))
        app.router.add_get("/dns/zones", self._authorized(self._list_zones))
        app.router.add_get(records, self._authorized(self._list_records))
        app.router.add_get(records + "/{recordId}", self._authorized(self._get_record))
        app.router.add_put(records + "/{recordId}", self._authorized(self._put_record))
        app.router.add_delete(records + "/{recordId}", self._authorized(self._delete_record))
        app.router.add_get("/status/api/v2/summary.json", self._summary)

    @web.middleware
    async def _rate_headers(self, request: web.Request, handler: Any) -> web.StreamResponse:
        response: web.StreamResponse = await handler(request)
        if request.path.startswith(_RATED):
            now = time.monotonic()
            self._recent.append(now)
            while self._recent and self._recent[0] < now - 60:
                self._recent.popleft()
            response.headers.update({
                "X-RateLimit-Limit": str(RATE_LIMIT), "X-RateLimit-Burst": str(RATE_BURST),
                "X-RateLimit-Remaining": str(max(0, RATE_LIMIT - len(self._recent)))})
        return response

    def _basic_ok(self, header: str) -> bool:
        try:
            user, _, password = base64.b64decode(header[6:], validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return (pysecrets.compare_digest(user, self.username)
                and pysecrets.compare_digest(password, self.password))

    def _authorized(self, handler: Any) -> Any:
        async def check(request: web.Request) -> web.StreamResponse:
            header = request.headers.get("Authorization", "")
            if header.startswith("Bearer "):
                ok = self.tokens.get(header[7:], 0.0) > time.time()
            else:
                ok = header.startswith("Basic ") and self._basic_ok(header)
            if not ok:
                return self.json_error(401, "Unauthorized: missing, unknown or expired credentials")
            result: web.StreamResponse = await handler(request)
            return result
        return check

    # --- Auth API ------------------------------------------------------------------------------
    async def _generate(self, request: web.Request) -> web.Response:
        self.token_requests += 1
        header = request.headers.get("Authorization", "")
        if not (header.startswith("Basic ") and self._basic_ok(header)):
            return self.json_error(401, "Unauthorized: invalid username or password")
        token, expires = self._new_token()
        self.tokens[token] = expires
        self.issued_tokens.append(token)
        return web.json_response({"token": token})

    def _new_token(self) -> tuple[str, float]:
        now = int(time.time())
        claims = {"iss": "ionoscloud", "iat": now, "exp": now + self.token_lifetime, "jti": str(uuid.uuid4()),
                  "identity": {"contractNumber": self.contract_number, "role": "owner",
                               "uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, self.username)), "privileges": []}}
        token = jwt.encode(claims, self._signing_key, algorithm="HS256", headers={"kid": "lab"})
        return token, float(now + self.token_lifetime)

    # --- Cloud API v6: managed Kubernetes ------------------------------------------------------
    def _metadata(self, created: str, state: str | None) -> dict[str, Any]:
        user_id = str(uuid.uuid5(uuid.NAMESPACE_URL, self.username))
        meta = {"etag": pysecrets.token_hex(16), "createdDate": created, "createdBy": self.username,
                "createdByUserId": user_id, "lastModifiedDate": _iso(), "lastModifiedBy": self.username,
                "lastModifiedByUserId": user_id}
        return meta if state is None else {**meta, "state": state}

    def _cluster_of(self, request: web.Request) -> Cluster | None:
        return self.clusters.get(request.match_info["k8sClusterId"])

    def _not_found(self, what: str) -> web.Response:
        return self.json_error(404, f"Resource does not exist: {what}")

    async def _get_cluster(self, request: web.Request) -> web.Response:
        cluster = self._cluster_of(request)
        if cluster is None:
            return self._not_found(f"k8s cluster {request.match_info['k8sClusterId']}")
        return web.json_response({
            "id": cluster.id, "type": "k8s", "href": f"{self.url}/cloudapi/v6/k8s/{cluster.id}",
            "metadata": self._metadata(cluster.created, cluster.state),
            "properties": {"name": cluster.name, "k8sVersion": "1.31.4",
                           "maintenanceWindow": {"dayOfTheWeek": "Sunday", "time": "02:00:00Z"},
                           "availableUpgradeVersions": [], "viableNodePoolVersions": ["1.31.4"],
                           "public": True, "location": cluster.location, "apiSubnetAllowList": [],
                           "s3Buckets": []},
        })

    def _nodepool_doc(self, cluster: Cluster, pool: NodePool) -> dict[str, Any]:
        return {
            "id": pool.id, "type": "nodepool",
            "href": f"{self.url}/cloudapi/v6/k8s/{cluster.id}/nodepools/{pool.id}",
            "metadata": self._metadata(cluster.created, pool.state),
            "properties": {"name": pool.name, "datacenterId": str(uuid.uuid5(uuid.NAMESPACE_URL, cluster.id)),
                           "nodeCount": pool.node_count, "cpuFamily": "INTEL_SKYLAKE",
                           "serverType": "DedicatedCore",
                           "coresCount": 4, "ramSize": 8192, "availabilityZone": "AUTO", "storageType": "SSD",
                           "storageSize": 100, "k8sVersion": "1.31.4",
                           "maintenanceWindow": {"dayOfTheWeek": "Sunday", "time": "03:00:00Z"},
                           "autoScaling": {"minNodeCount": 0, "maxNodeCount": 0}, "lans": [], "labels": {},
                           "annotations": {}, "taints": [], "publicIps": [], "availableUpgradeVersions": []},
        }

    async def _get_nodepools(self, request: web.Request) -> web.Response:
        cluster = self._cluster_of(request)
        if cluster is None:
            return self._not_found(f"k8s cluster {request.match_info['k8sClusterId']}")
        try:
            depth = int(request.query.get("depth", "0"))
        except ValueError:
            return self.json_error(400, "depth must be an integer")
        items = [self._nodepool_doc(cluster, p) for p in cluster.pools]
        if depth < 1:
            items = [{k: i[k] for k in ("id", "type", "href")} for i in items]
        href = f"{self.url}/cloudapi/v6/k8s/{cluster.id}/nodepools"
        return web.json_response({"id": f"{cluster.id}/nodepools", "type": "collection", "href": href,
                                  "items": items})

    async def _get_kubeconfig(self, request: web.Request) -> web.Response:
        cluster = self._cluster_of(request)
        if cluster is None:
            return self._not_found(f"k8s cluster {request.match_info['k8sClusterId']}")
        accept = request.headers.get("Accept", "")
        if "application/json" in accept and "yaml" not in accept:
            return web.Response(text=json.dumps(cluster.kubeconfig), content_type="application/json")
        return web.Response(text=cluster.kubeconfig, content_type="application/yaml")

    # --- Cloud DNS -------------------------------------------------------------------------------
    @staticmethod
    def _window(request: web.Request) -> tuple[int, int] | None:
        try:
            offset, limit = int(request.query.get("offset", "0")), int(request.query.get("limit", "100"))
        except ValueError:
            return None
        return (offset, limit) if offset >= 0 and 1 <= limit <= 1000 else None

    def _list(self, request: web.Request, items: list[dict[str, Any]]) -> web.Response:
        window = self._window(request)
        if window is None:
            return self.json_error(400, "offset must be >= 0 and limit between 1 and 1000")
        offset, limit = window
        href = f"{self.url}{request.path}"
        links = {"self": f"{href}?offset={offset}&limit={limit}"}
        if offset + limit < len(items):
            links["next"] = f"{href}?offset={offset + limit}&limit={limit}"
        if offset > 0:
            links["prev"] = f"{href}?offset={max(0, offset - limit)}&limit={limit}"
        return web.json_response({"id": str(uuid.uuid5(uuid.NAMESPACE_URL, href)), "type": "collection",
                                  "href": href, "items": items[offset:offset + limit], "offset": offset,
                                  "limit": limit, "_links": links})

    def _zone_doc(self, zone_id: str) -> dict[str, Any]:
        now = _iso()
        return {"id": zone_id, "type": "zone", "href": f"{self.url}/dns/zones/{zone_id}",
                "metadata": {"createdDate": now, "lastModifiedDate": now, "state": "AVAILABLE",
                             "nameservers": ["ns-ic.ui-dns.com", "ns-ic.ui-dns.de", "ns-ic.ui-dns.org",
                                             "ns-ic.ui-dns.biz"]},
                "properties": {"zoneName": self.zones[zone_id], "description": "failover lab zone",
                               "enabled": True}}

    def _record_doc(self, record: Record) -> dict[str, Any]:
        zone = self.zones[record.zone_id]
        return {"id": record.id, "type": "record",
                "href": f"{self.url}/dns/zones/{record.zone_id}/records/{record.id}",
                "metadata": {"createdDate": record.created, "lastModifiedDate": record.modified,
                             "state": record.state, "zoneId": record.zone_id,
                             "fqdn": f"{record.name}.{zone}" if record.name else zone},
                "properties": {"name": record.name, "type": record.type, "content": record.content,
                               "ttl": record.ttl, "priority": 0, "enabled": record.enabled}}

    async def _list_zones(self, request: web.Request) -> web.Response:
        wanted = request.query.get("filter.zoneName")
        ids = [z for z, name in self.zones.items() if wanted is None or name == wanted.rstrip(".")]
        return self._list(request, [self._zone_doc(z) for z in ids])

    async def _list_records(self, request: web.Request) -> web.Response:
        zone_id = request.match_info["zoneId"]
        if zone_id not in self.zones:
            return self._not_found(f"zone {zone_id}")
        name, rtype = request.query.get("filter.name"), request.query.get("filter.type")
        found = [self._record_doc(r) for r in self.records.values() if r.zone_id == zone_id
                 and (name is None or name.lower() in r.name.lower()) and (rtype is None or r.type == rtype)]
        return self._list(request, found)

    def _record_of(self, request: web.Request) -> Record | None:
        record = self.records.get(request.match_info["recordId"])
        return record if record is not None and record.zone_id == request.match_info["zoneId"] else None

    async def _get_record(self, request: web.Request) -> web.Response:
        record = self._record_of(request)
        if record is None:
            return self._not_found(f"record {request.match_info['recordId']}")
        return web.json_response(self._record_doc(record))

    async def _put_record(self, request: web.Request) -> web.Response:
        zone_id, record_id = request.match_info["zoneId"], request.match_info["recordId"]
        if zone_id not in self.zones:
            return self._not_found(f"zone {zone_id}")
        try:
            props = read_json(await request.read())["properties"]
            name, rtype, content = (str(props[k]) for k in ("name", "type", "content"))
            ttl, enabled = int(props.get("ttl", 3600)), bool(props.get("enabled", True))
            uuid.UUID(record_id)
        except (ValueError, TypeError, KeyError):
            return self.json_error(400, "properties.name, type and content are required; "
                                        "recordId must be a UUID")
        if rtype not in RECORD_TYPES or ttl < 1 or name.endswith("."):
            return self.json_error(422, f"invalid record {name!r} {rtype} ttl {ttl}")
        record = self.records.get(record_id)
        if record is not None and (record.zone_id != zone_id or record.state == "DESTROYING"):
            return self.json_error(409, f"record {record_id} belongs to another zone or is being destroyed")
        if record is None:
            record = self.records[record_id] = Record(id=record_id, zone_id=zone_id, name=name, type=rtype,
                                                      content=content, ttl=ttl, enabled=enabled)
        record.name, record.type, record.content = name, rtype, content
        record.ttl, record.enabled = ttl, enabled
        self._change(record, "PROVISIONING")
        return web.json_response(self._record_doc(record), status=202)

    async def _delete_record(self, request: web.Request) -> web.Response:
        record = self._record_of(request)
        if record is None:
            return self._not_found(f"record {request.match_info['recordId']}")
        self._change(record, "DESTROYING")
        return web.Response(status=202)

    def _change(self, record: Record, state: str) -> None:
        """Start an asynchronous change: pending now, applied to the backend after the delay."""
        record.generation += 1
        record.state, record.modified = state, _iso()
        task = tasks.create_guarded_task(self._settle(record, record.generation),
                                         name=f"ionos-emulator dns {record.name} {record.type}")
        self._timers.add(task)
        task.add_done_callback(self._timers.discard)

    async def _settle(self, record: Record, generation: int) -> None:
        await asyncio.sleep(self.settle_delay)
        if record.generation != generation:
            return  # a newer change supersedes this one
        if self.fail_dns_changes > 0:
            self.fail_dns_changes -= 1
            record.state = "FAILED"
            return
        async with self._backend_lock:
            destroy = record.state == "DESTROYING"
            before = (record.applied, record.applied_ttl)
            record.applied, record.applied_ttl = (None, 0) if destroy else (record.content, record.ttl)
            try:
                await self._push(record)
            except Exception:  # a backend failure (PowerDNS down) is the vendor's FAILED
                record.applied, record.applied_ttl = before
                record.state = "FAILED"
                return
        if record.generation == generation:
            if destroy:
                self.records.pop(record.id, None)
            else:
                record.state, record.modified = "AVAILABLE", _iso()

    async def _push(self, record: Record) -> None:
        """Write the record's whole name/type set, as the backend keeps sets."""
        group = [r for r in self.records.values() if r.zone_id == record.zone_id and r.name == record.name
                 and r.type == record.type and r.applied is not None]
        zone = self.zones[record.zone_id] + "."
        fqdn = f"{record.name}.{zone}" if record.name else zone
        if not group:
            await self.dns.delete(zone, fqdn, record.type)
            return
        values = tuple(sorted({str(r.applied) for r in group}))
        await self.dns.set(zone, fqdn, record.type, values, min(r.applied_ttl for r in group))

    # --- status page -----------------------------------------------------------------------------
    def _component(self, name: str, *, status: str | None = None) -> dict[str, Any]:
        if name not in self.components:
            now = _iso()
            self.components[name] = {
                "id": pysecrets.token_hex(6), "name": name, "status": "operational", "created_at": now,
                "updated_at": now, "position": len(self.components) + 1, "description": None,
                "showcase": False, "group_id": None, "page_id": "xdhr50sc5fkm", "group": False,
                "only_show_if_degraded": False}
        if status is not None:
            self.components[name]["status"] = status
        return self.components[name]

    async def _summary(self, request: web.Request) -> web.Response:
        open_incidents = [i for i in self.incidents if i["status"] not in ("resolved", "postmortem")]
        impaired = any(c["status"] != "operational" for c in self.components.values())
        indicator = "major" if open_incidents else "minor" if impaired else "none"
        description = "All Systems Operational" if indicator == "none" else "Service disruption"
        return web.json_response({
            "page": {"id": "xdhr50sc5fkm", "name": "IONOS Cloud", "url": "https://status.ionos.cloud",
                     "time_zone": "Europe/Berlin", "updated_at": _iso()},
            "status": {"indicator": indicator, "description": description},
            "components": list(self.components.values()), "incidents": open_incidents,
            "scheduled_maintenances": [],
        })
