"""An emulator of the STACKIT APIs the adapter uses, following the vendor's contract.

Why: nothing in tests or the lab reaches STACKIT, so the adapter is proven against this model of
it, and contract tests validate both sides of every exchange against ``ske-v2.json``,
``dns-v1.json`` and the hand-written ``token.openapi.yaml``/``status.openapi.yaml``. It serves,
on one loopback port, under a prefix per service:

* ``/sa/token`` (legacy token endpoint) and ``/accounts/oauth/v2/token`` (a key's
  ``tokenEndpoint``): the key flow, verifying the RS512 assertion with the key's public key;
* ``/ske/v2/…``: cluster GET and admin kubeconfig POST, bearer token checked on every request;
* ``/dns/v1/…``: zones and record sets; a create or patch answers 202 and the record set stays
  ``CREATING``/``UPDATING`` for ``settle_delay`` seconds before it is written to the
  :class:`~providers.emulator.DnsBackend` and becomes ``*_SUCCEEDED``;
* ``/status/api/v2/summary.json``: an Atlassian Statuspage v2 summary (no auth).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets as pysecrets
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from failover.core import tasks
from providers import base
from providers.emulator import DnsBackend, EmulatorBase, MemoryDns, read_json

logger = logging.getLogger(__name__)

LEGACY_AUD = "https://service-account.api.stackit.cloud"
ACCOUNTS_AUD = "https://accounts.stackit.cloud"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
#: how the lab's normalised health is rendered in SKE's vocabulary (None: no ``aggregated``)
HEALTH_STATE: dict[base.ClusterState, str | None] = {
    base.ClusterState.READY: "STATE_HEALTHY",
    base.ClusterState.DEGRADED: "STATE_RECONCILING",
    base.ClusterState.DOWN: "STATE_UNHEALTHY",
    base.ClusterState.UNKNOWN: None,
}
_CLUSTER_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,9}[a-z0-9])?$")
_RRSET_TYPES = frozenset({"A", "AAAA", "SOA", "CNAME", "NS", "MX", "TXT", "SRV", "PTR", "ALIAS", "DNAME",
                          "CAA", "DNSKEY", "DS", "LOC", "NAPTR", "SSHFP", "TLSA", "URI", "CERT", "SVCB",
                          "TYPE", "CSYNC", "HINFO", "HTTPS"})


def _ts(when: datetime | None = None) -> str:
    """DNS API timestamps, as in its examples: ``2022-01-31 10:00:00+00:00``."""
    return (when or datetime.now(UTC)).isoformat(sep=" ", timespec="seconds")


def _iso(when: datetime | None = None) -> str:
    return (when or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Cluster:
    project: str
    region: str
    name: str
    display_name: str
    kubeconfig: str
    aggregated: str | None = "STATE_HEALTHY"
    errors: list[dict[str, str]] = field(default_factory=list)
    created: str = field(default_factory=_iso)


@dataclass
class RecordSet:
    id: str
    zone_id: str
    name: str
    type: str
    ttl: int
    records: list[str]
    state: str = "CREATING"
    error: str = ""
    generation: int = 0
    created: str = field(default_factory=_ts)
    updated: str = field(default_factory=_ts)


class StackitEmulator(EmulatorBase):
    """STACKIT token, SKE v2, DNS v1 and status page on one loopback port."""

    def __init__(self, *, dns: DnsBackend | None = None, settle_delay: float = 0.2,
                 token_lifetime: int = 3600) -> None:
        super().__init__()
        self.dns: DnsBackend = dns or MemoryDns()
        self.settle_delay = settle_delay
        self.token_lifetime = token_lifetime
        self.project_id = str(uuid.uuid4())
        self.account_id = str(uuid.uuid4())
        self.account_email = f"failover-{self.account_id[:8]}@sa.stackit.cloud"
        self.key_id = str(uuid.uuid4())
        self._private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.key_revoked = False
        self.tokens: dict[str, float] = {}  #: valid access token → expiry (monotonic)
        self.issued_tokens: list[str] = []  #: every access token issued (tests grep for leaks)
        self.token_requests = 0
        self.clusters: dict[str, Cluster] = {}
        self.zones: dict[str, str] = {}  #: zone id → dnsName (without trailing dot)
        self.rrsets: dict[str, RecordSet] = {}
        self.fail_dns_changes = 0  #: the next N DNS changes end ``*_FAILED``
        self.status_page_html = False  #: serve an HTML page instead of Statuspage JSON
        self.incidents: list[dict[str, Any]] = []
        self._timers: set[asyncio.Task[Any]] = set()

    # --- lab-facing API ------------------------------------------------------------------------
    def add_cluster(self, *, ref: base.ClusterRef, name: str, kubeconfig: str) -> None:
        """Register an SKE cluster; ``ref.cluster`` is its SKE name (STACKIT allows 1–11 chars of
        ``[a-z0-9-]``; a longer name is served anyway, with a warning, but breaks the contract)."""
        if not _CLUSTER_NAME.match(ref.cluster):
            logger.warning("stackit emulator: %r is not a valid SKE cluster name", ref.cluster)
        self.clusters[ref.cluster] = Cluster(project=ref.project or self.project_id, region=ref.region,
                                             name=ref.cluster, display_name=name, kubeconfig=kubeconfig)

    def add_zone(self, zone: str) -> str:
        zone_id = str(uuid.uuid4())
        self.zones[zone_id] = zone.rstrip(".")
        return zone_id

    def set_cluster_health(self, cluster: str, health: base.ClusterState) -> None:
        target = self.clusters[cluster]
        target.aggregated = HEALTH_STATE[health]
        target.errors = [] if health in (base.ClusterState.READY, base.ClusterState.UNKNOWN) else [
            {"code": "SKE_NODE_NO_VALID_HOST_FOUND", "message": f"lab: cluster set {health.value}"}]

    def set_raw_cluster_state(self, cluster: str, raw: str) -> None:
        self.clusters[cluster].aggregated = raw

    def add_incident(self, *, region: str, title: str) -> str:
        now = _iso()
        component = {"id": f"ske-{region}", "name": f"Kubernetes Engine (SKE) {region}",
                     "status": "major_outage", "created_at": now, "updated_at": now, "position": 1,
                     "description": None, "showcase": False, "group_id": None, "page_id": "stackit",
                     "group": False, "only_show_if_degraded": False}
        incident_id = pysecrets.token_hex(6)
        self.incidents.append({
            "id": incident_id, "name": title, "status": "investigating", "impact": "major",
            "created_at": now, "updated_at": now, "started_at": now, "monitoring_at": None,
            "resolved_at": None, "shortlink": f"https://stspg.io/{incident_id}", "page_id": "stackit",
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

    def expire_tokens(self) -> None:
        """Invalidate every issued token: the next API call answers 401 and must re-authenticate."""
        self.tokens.clear()

    def revoke_key(self) -> None:
        """Deactivate the service-account key: the token endpoint answers 400 invalid_grant."""
        self.key_revoked = True
        self.tokens.clear()

    def settings(self) -> base.ProviderSettings:
        return base.ProviderSettings(
            kind="stackit",
            endpoints={"ske": f"{self.url}/ske", "dns": f"{self.url}/dns", "token": f"{self.url}/sa/token",
                       "status": f"{self.url}/status"},
            options={"project_id": self.project_id, "poll_interval": "0.05"})

    def service_account_key(self, *, token_endpoint: bool = False) -> str:
        """A key file (JSON text) as the service-account API issues it; with ``token_endpoint``
        it is a newer key carrying ``aud`` accounts.stackit.cloud and its ``tokenEndpoint``."""
        pem = self._private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()).decode("ascii")
        public = self._private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")
        now = datetime.now(UTC)
        credentials = {"kid": self.key_id, "iss": self.account_email, "sub": self.account_id,
                       "aud": ACCOUNTS_AUD if token_endpoint else LEGACY_AUD, "privateKey": pem}
        if token_endpoint:
            credentials["tokenEndpoint"] = f"{self.url}/accounts/oauth/v2/token"
        return json.dumps({
            "id": self.key_id, "publicKey": public, "createdAt": _iso(now),
            "validUntil": _iso(now + timedelta(days=365)), "keyType": "USER_MANAGED", "keyOrigin": "GENERATED",
            "keyAlgorithm": "RSA_2048", "active": True, "credentials": credentials,
        })

    def lab_credentials(self) -> dict[str, str]:
        return {"service_account_key": self.service_account_key()}

    async def close(self) -> None:
        await tasks.cancel_and_wait(*self._timers)
        await super().close()

    # --- serving ---------------------------------------------------------------------------------
    def error_body(self, status: int, message: str) -> dict[str, Any]:
        """STACKIT's ``{error, message}`` (DNS ``ErrorMessage``; SKE declares an untyped object)."""
        return {"error": _REASONS.get(status, "Error"), "message": message}

    def routes(self, app: web.Application) -> None:
        ske = "/ske/v2/projects/{projectId}/regions/{region}/clusters/{clusterName}"
        rrsets = "/dns/v1/projects/{projectId}/zones/{zoneId}/rrsets"
        app.router.add_post("/sa/token", self._token_legacy)
        app.router.add_post("/accounts/oauth/v2/token", self._token_accounts)
        app.router.add_get(ske, self._authorized(self._get_cluster))
        app.router.add_post(f"{ske}/kubeconfig", self._authorized(self._create_kubeconfig))
        app.router.add_get("/dns/v1/projects/{projectId}/zones", self._authorized(self._list_zones))
        app.router.add_get(rrsets, self._authorized(self._list_rrsets))
        app.router.add_post(rrsets, self._authorized(self._create_rrset))
        app.router.add_get(rrsets + "/{rrSetId}", self._authorized(self._get_rrset))
        app.router.add_patch(rrsets + "/{rrSetId}", self._authorized(self._patch_rrset))
        app.router.add_get("/status/api/v2/summary.json", self._summary)

    def _authorized(self, handler: Any) -> Any:
        async def check(request: web.Request) -> web.StreamResponse:
            header = request.headers.get("Authorization", "")
            token = header[7:] if header.startswith("Bearer ") else ""
            expiry = self.tokens.get(token)
            if expiry is None or time.monotonic() >= expiry:
                return self.json_error(401, "missing, unknown or expired access token")
            result: web.StreamResponse = await handler(request)
            return result
        return check

    # --- token endpoint ----------------------------------------------------------------------
    async def _token_legacy(self, request: web.Request) -> web.Response:
        return await self._token(request, audience=LEGACY_AUD)

    async def _token_accounts(self, request: web.Request) -> web.Response:
        return await self._token(request, audience=ACCOUNTS_AUD)

    async def _token(self, request: web.Request, *, audience: str) -> web.Response:
        self.token_requests += 1
        form = await request.post()
        if form.get("grant_type") != JWT_BEARER:
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        assertion = form.get("assertion")
        if not isinstance(assertion, str) or self.key_revoked or not self._valid_assertion(assertion, audience):
            return web.json_response({"error": "invalid_grant"}, status=400)
        token = pysecrets.token_urlsafe(32)
        self.tokens[token] = time.monotonic() + self.token_lifetime
        self.issued_tokens.append(token)
        return web.json_response({"access_token": token, "refresh_token": pysecrets.token_urlsafe(32),
                                  "expires_in": self.token_lifetime, "token_type": "Bearer", "scope": ""})

    def _valid_assertion(self, assertion: str, audience: str) -> bool:
        try:
            if jwt.get_unverified_header(assertion).get("kid") != self.key_id:
                return False
            claims = jwt.decode(assertion, self._private_key.public_key(), algorithms=["RS512"],
                                audience=audience, issuer=self.account_email,
                                options={"require": ["exp", "iat", "jti", "iss", "sub", "aud"]})
        except jwt.PyJWTError:
            return False
        return bool(claims.get("sub") == self.account_id)

    # --- SKE -----------------------------------------------------------------------------------
    def _cluster(self, request: web.Request) -> Cluster | None:
        found = self.clusters.get(request.match_info["clusterName"])
        if found is None or found.project != request.match_info["projectId"] \
                or found.region != request.match_info["region"]:
            return None
        return found

    async def _get_cluster(self, request: web.Request) -> web.Response:
        cluster = self._cluster(request)
        if cluster is None:
            return self.json_error(404, "project or cluster not found")
        status: dict[str, Any] = {"creationTime": cluster.created, "errors": cluster.errors,
                                  "hibernated": cluster.aggregated == "STATE_HIBERNATED",
                                  "credentialsRotation": {"phase": "NEVER"}}
        if cluster.aggregated is not None:
            status["aggregated"] = cluster.aggregated
        return web.json_response({
            "name": cluster.name, "kubernetes": {"version": "1.31.4"},
            "labels": {"failover-site": cluster.display_name},
            "nodepools": [{"name": "pool1", "machine": {"type": "c2i.4", "image": {"name": "flatcar",
                                                                                 "version": "4081.2.1"}},
                           "minimum": 2, "maximum": 4, "maxSurge": 1, "maxUnavailable": 0,
                           "availabilityZones": [f"{cluster.region}-1"],
                           "volume": {"size": 50, "type": "storage_premium_perf1"}}],
            "status": status,
        })

    async def _create_kubeconfig(self, request: web.Request) -> web.Response:
        cluster = self._cluster(request)
        if cluster is None:
            return self.json_error(404, "project or cluster not found")
        try:
            body = read_json(await request.read()) or {}
            seconds = int(body.get("expirationSeconds", "3600"))
        except (ValueError, TypeError, AttributeError):
            return self.json_error(400, "expirationSeconds must be an int64 as a string")
        if not 600 <= seconds <= 15552000:
            return self.json_error(400, "expirationSeconds must be between 600 and 15552000")
        expires = datetime.now(UTC) + timedelta(seconds=seconds)
        return web.json_response({"kubeconfig": cluster.kubeconfig, "expirationTimestamp": _iso(expires)})

    # --- DNS -------------------------------------------------------------------------------------
    def _zone_doc(self, zone_id: str) -> dict[str, Any]:
        now = _ts()
        return {"id": zone_id, "name": self.zones[zone_id][:63], "dnsName": self.zones[zone_id],
                "acl": "0.0.0.0/0,::/0", "defaultTTL": 3600, "expireTime": 1209600, "negativeCache": 60,
                "refreshTime": 3600, "retryTime": 600, "serialNumber": 1, "primaryNameServer": "ns1.stackit.cloud",
                "state": "CREATE_SUCCEEDED", "type": "primary", "visibility": "public", "active": True,
                "creationStarted": now, "creationFinished": now, "updateStarted": now, "updateFinished": now}

    def _rrset_doc(self, rrset: RecordSet) -> dict[str, Any]:
        return {"id": rrset.id, "name": rrset.name, "type": rrset.type, "ttl": rrset.ttl,
                "records": [{"id": str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{rrset.id}/{c}")), "content": c}
                            for c in rrset.records],
                "state": rrset.state, "active": True, "error": rrset.error, "comment": "",
                "creationStarted": rrset.created, "creationFinished": rrset.created,
                "updateStarted": rrset.updated, "updateFinished": rrset.updated}

    def _zone_of(self, request: web.Request) -> str | None:
        zone_id = request.match_info.get("zoneId")
        if request.match_info["projectId"] != self.project_id or (zone_id is not None and zone_id not in self.zones):
            return None
        return zone_id or ""

    @staticmethod
    def _page(request: web.Request, items: list[dict[str, Any]], key: str) -> web.Response:
        try:
            page = max(1, int(request.query.get("page", "1")))
            size = min(10000, max(1, int(request.query.get("pageSize", "100"))))
        except ValueError:
            return web.json_response({"message": "page and pageSize must be integers"}, status=400)
        pages = max(1, -(-len(items) // size))
        return web.json_response({key: items[(page - 1) * size: page * size], "itemsPerPage": size,
                                  "totalItems": len(items), "totalPages": pages, "message": "Success"})

    async def _list_zones(self, request: web.Request) -> web.Response:
        if self._zone_of(request) is None:
            return web.json_response({"message": "project not found"}, status=404)
        wanted = request.query.get("dnsName[eq]")
        ids = [z for z, name in self.zones.items() if wanted is None or name == wanted.rstrip(".")]
        return self._page(request, [self._zone_doc(z) for z in ids], "zones")

    async def _list_rrsets(self, request: web.Request) -> web.Response:
        zone_id = self._zone_of(request)
        if not zone_id:
            return web.json_response({"message": "zone not found"}, status=404)
        name, rtype = request.query.get("name[eq]"), request.query.get("type[eq]")
        found = [self._rrset_doc(r) for r in self.rrsets.values() if r.zone_id == zone_id
                 and (name is None or r.name == name) and (rtype is None or r.type == rtype)]
        return self._page(request, found, "rrSets")

    def _rrset_of(self, request: web.Request) -> RecordSet | None:
        rrset = self.rrsets.get(request.match_info["rrSetId"])
        return rrset if rrset is not None and rrset.zone_id == self._zone_of(request) else None

    async def _get_rrset(self, request: web.Request) -> web.Response:
        rrset = self._rrset_of(request)
        if rrset is None:
            return web.json_response({"message": "record set not found"}, status=404)
        return web.json_response({"rrset": self._rrset_doc(rrset), "message": "Success"})

    async def _create_rrset(self, request: web.Request) -> web.Response:
        zone_id = self._zone_of(request)
        if not zone_id:
            return web.json_response({"message": "zone not found"}, status=404)
        try:
            body = read_json(await request.read())
            name, rtype = str(body["name"]), str(body["type"])
            records, ttl = _records(body), int(body.get("ttl", 3600))
        except (ValueError, TypeError, KeyError):
            return web.json_response({"message": "name, type and records[].content are required"}, status=400)
        zone = self.zones[zone_id]
        if rtype not in _RRSET_TYPES or ttl < 60 or not (name.rstrip(".") + ".").endswith(f"{zone}."):
            return web.json_response({"message": f"invalid record set for zone {zone}"}, status=400)
        name = name.rstrip(".") + "."
        if any(r.zone_id == zone_id and r.name == name and r.type == rtype and not r.state.startswith("DELETE")
               for r in self.rrsets.values()):
            return web.json_response({"message": "record set already exists"}, status=409)
        rrset = RecordSet(id=str(uuid.uuid4()), zone_id=zone_id, name=name, type=rtype, ttl=ttl, records=records)
        self.rrsets[rrset.id] = rrset
        self._change(rrset, "CREATE")
        return web.json_response({"rrset": self._rrset_doc(rrset), "message": "Success"}, status=202)

    async def _patch_rrset(self, request: web.Request) -> web.Response:
        rrset = self._rrset_of(request)
        if rrset is None:
            return web.json_response({"message": "record set not found"}, status=404)
        try:
            body = read_json(await request.read())
            records = _records(body) if "records" in body else rrset.records
            ttl = int(body.get("ttl", rrset.ttl))
        except (ValueError, TypeError, KeyError):
            return web.json_response({"message": "records[].content must be strings"}, status=400)
        if ttl < 60:
            return web.json_response({"message": "ttl must be at least 60"}, status=400)
        rrset.records, rrset.ttl = records, ttl
        self._change(rrset, "UPDATE")
        return web.json_response({"message": "Success", "rrset": self._rrset_doc(rrset)}, status=202)

    def _change(self, rrset: RecordSet, verb: str) -> None:
        """Start an asynchronous change: pending now, applied to the backend after the delay."""
        rrset.generation += 1
        rrset.state, rrset.error, rrset.updated = f"{verb[:-1]}ING", "", _ts()
        task = tasks.create_guarded_task(self._settle(rrset, verb, rrset.generation),
                                         name=f"stackit-emulator dns {rrset.name} {rrset.type}")
        self._timers.add(task)
        task.add_done_callback(self._timers.discard)

    async def _settle(self, rrset: RecordSet, verb: str, generation: int) -> None:
        await asyncio.sleep(self.settle_delay)
        if rrset.generation != generation:
            return  # a newer change supersedes this one
        if self.fail_dns_changes > 0:
            self.fail_dns_changes -= 1
            rrset.state, rrset.error = f"{verb}_FAILED", "lab: injected DNS failure"
            return
        zone = self.zones[rrset.zone_id] + "."
        try:
            await self.dns.set(zone, rrset.name, rrset.type, tuple(rrset.records), rrset.ttl)
        except Exception as exc:  # a backend failure (PowerDNS down) is the vendor's *_FAILED
            rrset.state, rrset.error = f"{verb}_FAILED", f"backend: {type(exc).__name__}"
            return
        if rrset.generation == generation:
            rrset.state, rrset.updated = f"{verb}_SUCCEEDED", _ts()

    # --- status page -----------------------------------------------------------------------------
    async def _summary(self, request: web.Request) -> web.Response:
        if self.status_page_html:
            return web.Response(text="<html><body>STACKIT status</body></html>", content_type="text/html")
        open_incidents = [i for i in self.incidents if i["status"] not in ("resolved", "postmortem")]
        components = {c["id"]: c for i in open_incidents for c in i["components"]}
        indicator = "major" if open_incidents else "none"
        return web.json_response({
            "page": {"id": "stackit", "name": "STACKIT", "url": "https://status.stackit.cloud",
                     "time_zone": "Europe/Berlin", "updated_at": _iso()},
            "status": {"indicator": indicator,
                       "description": "Major System Outage" if open_incidents else "All Systems Operational"},
            "components": list(components.values()), "incidents": open_incidents, "scheduled_maintenances": [],
        })


_REASONS = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 409: "Conflict",
            429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}


def _records(body: Any) -> list[str]:
    records = body["records"]
    if not isinstance(records, list) or not records:
        raise ValueError("records must be a non-empty list")
    return sorted({str(r["content"]) for r in records})
