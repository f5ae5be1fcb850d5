"""STACKIT as a failover provider: SKE v2 clusters, DNS v1 switches, service-account key flow.

Why it looks like this: STACKIT's only machine credential for automation is a service-account
*key* (a JSON file with an RSA private key), exchanged for a short-lived bearer token with a
self-signed RS512 JWT (``stackit-sdk-go`` core ``KeyFlow``). Its DNS API is asynchronous (a
``PATCH`` answers 202 and the record set moves ``UPDATING`` → ``UPDATE_SUCCEEDED``), so a DNS
switch is only done when a poll says so. SKE has no per-node-pool status, so pools are reported
from the cluster spec with the aggregate state. The key flow lives in :mod:`.keyflow`.
Every HTTP call goes through :class:`failover.core.http.ApiClient`, which owns retries and the error
mapping.
"""

from __future__ import annotations

import asyncio
import logging
import re
from datetime import datetime
from typing import Any
from urllib.parse import quote

import yaml

from failover.core import errors, http, secrets
from providers import base
from providers.stackit.keyflow import LEGACY_TOKEN_ENDPOINT, KeyFlowAuth

logger = logging.getLogger(__name__)

_S = base.ClusterState
#: SKE v2 ``ClusterStatusState`` → normalised state; every value of the spec's enum is here.
#: Creating, waking up, hibernating and unhealthy clusters do not serve the workplace, so they
#: count as down; a reconcile (update, maintenance) keeps serving and is degraded.
STATE_MAP: dict[str, base.ClusterState] = {
    "STATE_HEALTHY": _S.READY,
    "STATE_RECONCILING": _S.DEGRADED,
    "STATE_CREATING": _S.DOWN,
    "STATE_DELETING": _S.DOWN,
    "STATE_UNHEALTHY": _S.DOWN,
    "STATE_HIBERNATED": _S.DOWN,
    "STATE_HIBERNATING": _S.DOWN,
    "STATE_WAKINGUP": _S.DOWN,
}

_DNS_PENDING = frozenset({"CREATING", "UPDATING"})
_DNS_GONE = frozenset({"DELETING", "DELETE_SUCCEEDED"})
_OPEN_MAINTENANCE = frozenset({"in_progress", "verifying"})
_CLOSED = frozenset({"resolved", "postmortem", "completed"})
_REGION_TAG = re.compile(r"\b[a-z]{2}\d{2}\b")
_REGION = re.compile(r"^[a-z0-9-]{1,32}$")


def map_state(raw: str) -> base.ClusterState:
    """The normalised state of an SKE ``status.aggregated`` value (unknown → UNKNOWN)."""
    return STATE_MAP.get(raw, _S.UNKNOWN)


def dotted(name: str) -> str:
    return name if name.endswith(".") else f"{name}."


def _option(settings: base.ProviderSettings, name: str, default: float, *, low: float) -> float:
    raw = settings.options.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise errors.PermanentError(f"provider stackit: options.{name} is not a number: {raw!r}") from None
    if value < low:
        raise errors.PermanentError(f"provider stackit: options.{name} must be at least {low}")
    return value


def _seg(value: str) -> str:
    return quote(value, safe="")


class StackitProvider(base.Provider):
    """STACKIT through SKE v2, DNS v1 and the service-account key flow.

    ``settings.endpoints`` (required: ``ske``, ``dns``, ``status``; optional ``token``, default
    the legacy ``https://service-account.api.stackit.cloud/token``, used only when the key file
    has no ``credentials.tokenEndpoint``). ``settings.credentials``: ``service_account_key`` (the
    key JSON file's content). ``settings.options``: ``project_id`` (required: the DNS project, and
    the SKE project when a :class:`~providers.base.ClusterRef` has none), ``poll_interval``
    (seconds between DNS state polls, default 2), ``dns_timeout`` (bound of a DNS switch, default
    60 s), ``kubeconfig_expiration`` (seconds, 600–15552000, default 3600), ``attempts`` (tries
    per request, default 4), ``s3_endpoint`` (overrides the regional object-storage URL).
    """

    kind = "stackit"

    def __init__(self, settings: base.ProviderSettings) -> None:
        for service in ("ske", "dns", "status"):
            settings.endpoint(service)
        if "service_account_key" not in settings.credentials:
            raise errors.PermanentError("provider stackit: credentials.service_account_key is not configured")
        project = settings.options.get("project_id", "")
        if not project:
            raise errors.PermanentError("provider stackit: options.project_id is not configured")
        self.settings = settings
        self._project = project
        self._poll = _option(settings, "poll_interval", 2.0, low=0.0)
        self._dns_timeout = _option(settings, "dns_timeout", 60.0, low=0.0)
        self._kube_ttl = int(_option(settings, "kubeconfig_expiration", 3600, low=1))
        attempts = int(_option(settings, "attempts", 4, low=1))
        token_endpoint = settings.endpoints.get("token", LEGACY_TOKEN_ENDPOINT)
        self.auth = KeyFlowAuth(load_key=lambda: settings.secret("service_account_key"),
                                token_endpoint=token_endpoint, timeout=settings.timeout)

        def client(service: str, *, auth: http.Authenticator | None) -> http.ApiClient:
            return http.ApiClient(base_url=settings.endpoint(service), service=f"stackit {service}",
                                  auth=auth, timeout=settings.timeout, attempts=attempts)

        self._ske = client("ske", auth=self.auth)
        self._dns = client("dns", auth=self.auth)
        self._status = client("status", auth=None)
        self._zones: dict[str, str] = {}
        self._closed = False

    def __repr__(self) -> str:
        return f"StackitProvider(project={self._project!r})"

    # --- SKE -----------------------------------------------------------------------------------
    def _cluster_path(self, ref: base.ClusterRef) -> str:
        project = ref.project or self._project
        return (f"/v2/projects/{_seg(project)}/regions/{_seg(ref.region)}"
                f"/clusters/{_seg(ref.cluster)}")

    async def cluster_status(self, ref: base.ClusterRef) -> base.ClusterStatus:
        """``status.aggregated`` mapped by :data:`STATE_MAP`; the reason joins ``status.error`` and
        ``status.errors[]`` as ``CODE: message``.

        SKE has **no per-node-pool status**: the node pools are the cluster spec's ``nodepools``,
        each given the aggregate state (and ``nodes`` left unknown).
        """
        doc = await self._ske.json("GET", self._cluster_path(ref))
        if not isinstance(doc, dict):
            raise errors.ProtocolError(f"stackit ske: cluster {ref.cluster} answer is not an object")
        found = doc.get("status")
        status: dict[str, Any] = found if isinstance(found, dict) else {}
        raw = status.get("aggregated")
        raw = raw if isinstance(raw, str) else ""
        state = map_state(raw)
        if state is _S.UNKNOWN:
            logger.debug("stackit: cluster %s reports unrecognised state %r", ref.cluster, raw)
        pools = tuple(
            base.NodePoolStatus(name=pool["name"], state=state, raw_state=raw)
            for pool in doc.get("nodepools") or ()
            if isinstance(pool, dict) and isinstance(pool.get("name"), str)
        )
        return base.ClusterStatus(provider=self.kind, cluster=ref.cluster, state=state, raw_state=raw,
                                  reason=_reason(status), node_pools=pools)

    async def kubeconfig(self, ref: base.ClusterRef) -> str:
        """A fresh admin kubeconfig (``POST …/kubeconfig``), valid ``kubeconfig_expiration`` s."""
        body = {"expirationSeconds": str(self._kube_ttl)}
        doc = await self._ske.json("POST", f"{self._cluster_path(ref)}/kubeconfig", json=body)
        text = doc.get("kubeconfig") if isinstance(doc, dict) else None
        if not isinstance(text, str) or not text:
            raise errors.ProtocolError(f"stackit ske: kubeconfig answer for {ref.cluster} has no kubeconfig")
        _register_kubeconfig(text)
        return text

    # --- DNS -----------------------------------------------------------------------------------
    async def _pages(self, path: str, key: str, params: dict[str, str | int]) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        page = 1
        while True:
            doc = await self._dns.json("GET", path, params={**params, "page": page, "pageSize": 100})
            if not isinstance(doc, dict) or not isinstance(doc.get(key), list):
                raise errors.ProtocolError(f"stackit dns: GET {path} answer has no {key} list")
            items.extend(i for i in doc[key] if isinstance(i, dict))
            total = doc.get("totalPages")
            if not isinstance(total, int) or page >= total:
                return items
            page += 1

    async def _zone_id(self, zone: str) -> str:
        zone = dotted(zone)
        if zone not in self._zones:
            path = f"/v1/projects/{_seg(self._project)}/zones"
            zones = await self._pages(path, "zones", {"dnsName[eq]": zone.rstrip(".")})
            found = [z for z in zones if dotted(str(z.get("dnsName", ""))) == zone
                     and z.get("state") not in _DNS_GONE and isinstance(z.get("id"), str)]
            if not found:
                raise http.NotFoundError(f"stackit dns: zone {zone} not found in project {self._project}",
                                         status=404)
            self._zones[zone] = found[0]["id"]
        return self._zones[zone]

    def _rrsets(self, zone_id: str) -> str:
        return f"/v1/projects/{_seg(self._project)}/zones/{_seg(zone_id)}/rrsets"

    async def _find(self, zone_id: str, name: str, rtype: str) -> dict[str, Any] | None:
        params: dict[str, str | int] = {"name[eq]": name, "type[eq]": rtype}
        for rrset in await self._pages(self._rrsets(zone_id), "rrSets", params):
            if (str(rrset.get("name", "")).lower() == name.lower() and rrset.get("type") == rtype
                    and rrset.get("state") not in _DNS_GONE):
                return rrset
        return None

    async def dns_get(self, zone: str, name: str, rtype: str) -> base.DnsRecordSet | None:
        """The record set, or None. A zone missing from the project is a NotFoundError."""
        zone_id = await self._zone_id(zone)
        rrset = await self._find(zone_id, dotted(name), rtype.upper())
        return None if rrset is None else _record_set(dotted(zone), rrset)

    async def dns_set(
        self, zone: str, name: str, rtype: str, values: tuple[str, ...], ttl: int
    ) -> base.DnsRecordSet:
        """Replace the record set (``PATCH`` → 202, or ``POST`` when missing) and poll ``GET`` until
        ``*_SUCCEEDED`` with the wanted records. No write when it already is so; an identical
        change still in flight is only awaited. ``*_FAILED`` → PermanentError; no success within
        ``dns_timeout`` → TemporaryError. STACKIT's minimum TTL is 60 s."""
        zone, name, rtype = dotted(zone), dotted(name), rtype.upper()
        want = base.DnsRecordSet(zone=zone, name=name, type=rtype, values=tuple(sorted(set(values))), ttl=ttl)
        if not want.values:
            raise errors.PermanentError("stackit dns: a record set needs at least one value")
        if ttl < 60:
            raise errors.PermanentError(f"stackit dns: ttl {ttl} is below STACKIT's minimum of 60 s")
        zone_id = await self._zone_id(zone)
        current = await self._find(zone_id, name, rtype)
        body: dict[str, Any] = {"records": [{"content": v} for v in want.values], "ttl": ttl}
        if current is None:
            rrset_id = await self._create(zone_id, want, body)
        else:
            rrset_id = str(current["id"])
            same = _record_set(zone, current) == want
            if same and str(current.get("state", "")).endswith("_SUCCEEDED"):
                logger.debug("stackit dns: %s %s already as wanted", name, rtype)
                return want
            if not (same and current.get("state") in _DNS_PENDING):
                await self._dns.json("PATCH", f"{self._rrsets(zone_id)}/{_seg(rrset_id)}", json=body)
        return await self._wait_applied(zone_id, rrset_id, want)

    async def _create(self, zone_id: str, want: base.DnsRecordSet, body: dict[str, Any]) -> str:
        payload = {"name": want.name, "type": want.type, **body}
        try:
            doc = await self._dns.json("POST", self._rrsets(zone_id), json=payload)
        except http.ApiError as exc:
            if exc.status != 409:  # 409: a retried POST already created it
                raise
            found = await self._find(zone_id, want.name, want.type)
            if found is None:
                raise
            return str(found["id"])
        rrset = doc.get("rrset") if isinstance(doc, dict) else None
        if not isinstance(rrset, dict) or not isinstance(rrset.get("id"), str):
            raise errors.ProtocolError("stackit dns: create answer has no rrset.id")
        return str(rrset["id"])

    async def _wait_applied(self, zone_id: str, rrset_id: str, want: base.DnsRecordSet) -> base.DnsRecordSet:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._dns_timeout
        path = f"{self._rrsets(zone_id)}/{_seg(rrset_id)}"
        while True:
            doc = await self._dns.json("GET", path)
            rrset = doc.get("rrset") if isinstance(doc, dict) else None
            if not isinstance(rrset, dict):
                raise errors.ProtocolError(f"stackit dns: GET {path} answer has no rrset")
            state = str(rrset.get("state", ""))
            if state.endswith("_FAILED"):
                raise errors.PermanentError(
                    f"stackit dns: change of {want.name} {want.type} ended {state}: {rrset.get('error', '')}")
            if state.endswith("_SUCCEEDED") and _record_set(want.zone, rrset) == want:
                return want
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise errors.TemporaryError(
                    f"stackit dns: {want.name} {want.type} not applied within {self._dns_timeout:g}s "
                    f"(state {state})")
            await asyncio.sleep(min(self._poll, remaining))

    # --- object storage and status page ------------------------------------------------------------
    async def s3_endpoint(self, region: str) -> str:
        if override := self.settings.options.get("s3_endpoint"):
            return override.rstrip("/")
        if not _REGION.match(region):
            raise errors.PermanentError(f"provider stackit: {region!r} is not a region name")
        return f"https://object.storage.{region}.onstackit.cloud"

    async def status(self, region: str) -> tuple[base.Incident, ...]:
        """Open incidents and in-progress maintenances from the Statuspage v2 ``summary.json``
        that name ``region`` or no region at all. A page that is not Statuspage JSON (the format
        is unverified for STACKIT) gives an empty tuple and a debug log."""
        try:
            doc = await self._status.json("GET", "/api/v2/summary.json")
        except (errors.ProtocolError, http.NotFoundError) as exc:
            logger.debug("stackit status page is not a Statuspage summary: %s", exc)
            return ()
        if not isinstance(doc, dict) or not isinstance(doc.get("incidents"), list):
            logger.debug("stackit status page answer has no incidents list; ignored")
            return ()
        items = [i for i in doc["incidents"] if isinstance(i, dict)]
        maintenances = doc.get("scheduled_maintenances")
        if isinstance(maintenances, list):
            items += [m for m in maintenances if isinstance(m, dict) and m.get("status") in _OPEN_MAINTENANCE]
        out = [_incident(i) for i in items if str(i.get("status", "")) not in _CLOSED]
        return tuple(i for i in out if i is not None and _affects(i, region))

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for client in (self._ske, self._dns, self._status):
            await client.aclose()
        await self.auth.aclose()


def _reason(status: dict[str, Any]) -> str:
    parts: list[str] = []
    candidates = [status.get("error"), *(status.get("errors") or ())]
    for err in candidates:
        if isinstance(err, dict) and (err.get("code") or err.get("message")):
            parts.append(": ".join(str(err[k]) for k in ("code", "message") if err.get(k)))
    return secrets.redact("; ".join(parts))


def _record_set(zone: str, rrset: dict[str, Any]) -> base.DnsRecordSet:
    try:
        values = tuple(sorted({str(r["content"]) for r in rrset["records"]}))
        return base.DnsRecordSet(zone=zone, name=dotted(str(rrset["name"])), type=str(rrset["type"]),
                                 values=values, ttl=int(rrset["ttl"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise errors.ProtocolError(f"stackit dns: malformed record set ({type(exc).__name__})") from exc


def _incident(doc: dict[str, Any]) -> base.Incident | None:
    if not isinstance(doc.get("id"), str | int) or not isinstance(doc.get("name"), str):
        return None
    comps = tuple(str(c["name"]) for c in doc.get("components") or () if isinstance(c, dict) and c.get("name"))
    started: datetime | None = None
    when = doc.get("started_at") or doc.get("scheduled_for") or doc.get("created_at")
    if isinstance(when, str):
        try:
            started = datetime.fromisoformat(when.replace("Z", "+00:00"))
        except ValueError:
            started = None
    return base.Incident(id=str(doc["id"]), title=doc["name"], status=str(doc.get("status", "")),
                         impact=str(doc.get("impact") or ""), components=comps, started_at=started)


def _affects(incident: base.Incident, region: str) -> bool:
    """True when the incident names ``region`` or names no region (a global service)."""
    texts = [incident.title, *incident.components]
    tags = {t for text in texts for t in _REGION_TAG.findall(text.lower())}
    return not tags or region.lower() in tags


def _register_kubeconfig(text: str) -> None:
    """Register the kubeconfig and the credentials inside it, so no part of it is ever printed."""
    secrets.register(text)
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        return
    users = doc.get("users") if isinstance(doc, dict) else None
    for entry in users if isinstance(users, list) else ():
        user = entry.get("user") if isinstance(entry, dict) else None
        if isinstance(user, dict):
            for key in ("token", "client-key-data", "password"):
                if isinstance(user.get(key), str):
                    secrets.register(user[key])
