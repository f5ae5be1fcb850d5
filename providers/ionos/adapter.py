"""IONOS Cloud as a failover provider: Cloud API v6 clusters, Cloud DNS records, Auth API tokens.

Why it looks like this: IONOS's machine credential is a user's name and password, traded once for
a JWT at the Auth API (``GET /tokens/generate`` with HTTP Basic) so the password does not travel
with every request; the JWT is cached until its ``exp``. Cloud DNS keeps single *records*, not
record sets, and applies every change asynchronously (``metadata.state`` PROVISIONING →
AVAILABLE), so a DNS switch is a set of per-record ``PUT``/``DELETE`` calls followed by polling
each record until IONOS reports it applied. Managed Kubernetes reports a cluster state and one
state per node pool; both use the Cloud API's ``DatacenterElementMetadata.state`` enum, which the
live API has grown beyond the 2023 spec (HIBERNATING, FAILED_HIBERNATING, MAINTENANCE).
Every HTTP call goes through :class:`failover.core.http.ApiClient` (retries, error mapping).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx
import jwt
import yaml

from failover.core import errors, http, secrets
from providers import base

logger = logging.getLogger(__name__)

_S = base.ClusterState
#: Cloud API ``metadata.state`` (clusters and node pools) → normalised state. Every value of the
#: 2023 spec's enum plus the three the live API added. Creating, failed, suspended, hibernated and
#: deleted clusters do not serve the workplace (down, as base.ClusterState defines "failed");
#: updating, busy and maintenance keep serving (degraded).
STATE_MAP: dict[str, base.ClusterState] = {
    "AVAILABLE": _S.READY,
    "ACTIVE": _S.READY,
    "BUSY": _S.DEGRADED,
    "UPDATING": _S.DEGRADED,
    "MAINTENANCE": _S.DEGRADED,
    "DEPLOYING": _S.DOWN,
    "INACTIVE": _S.DOWN,
    "FAILED": _S.DOWN,
    "SUSPENDED": _S.DOWN,
    "FAILED_SUSPENDED": _S.DOWN,
    "FAILED_UPDATING": _S.DOWN,
    "DESTROYING": _S.DOWN,
    "FAILED_DESTROYING": _S.DOWN,
    "TERMINATED": _S.DOWN,
    "HIBERNATING": _S.DOWN,
    "FAILED_HIBERNATING": _S.DOWN,
}

#: S3 endpoints per Cloud API location. Default ``legacy``: the user-owned-bucket regions in the
#: dotted host form (de/fra = eu-central-1, de/txl = eu-central-2, es/vit = eu-south-2);
#: ``options.s3_naming: contract`` selects contract-owned buckets (de/fra = eu-central-4, which
#: providers.md marks unverified; de/txl = eu-central-3). ``options.s3_endpoint`` overrides both.
S3_ENDPOINTS: dict[str, dict[str, str]] = {
    "legacy": {"de/fra": "https://s3.eu-central-1.ionoscloud.com",
               "de/txl": "https://s3.eu-central-2.ionoscloud.com",
               "es/vit": "https://s3.eu-south-2.ionoscloud.com"},
    "contract": {"de/fra": "https://s3.eu-central-4.ionoscloud.com",
                 "de/txl": "https://s3.eu-central-3.ionoscloud.com"},
}

_DNS_GONE = frozenset({"DESTROYING"})
_PAGE = 100


def map_state(raw: str) -> base.ClusterState:
    """The normalised state of a Cloud API ``metadata.state`` value (unknown → UNKNOWN)."""
    return STATE_MAP.get(raw, _S.UNKNOWN)


def overall_state(cluster: base.ClusterState, pools: tuple[base.NodePoolStatus, ...]) -> base.ClusterState:
    """A ready cluster whose node pools all are down serves nothing; one pool not ready degrades it."""
    if cluster is not _S.READY or not pools:
        return cluster
    if all(p.state is _S.DOWN for p in pools):
        return _S.DOWN
    return _S.READY if all(p.state is _S.READY for p in pools) else _S.DEGRADED


def dotted(name: str) -> str:
    return name if name.endswith(".") else f"{name}."


def relative(zone: str, name: str) -> str:
    """The record name as IONOS keeps it: relative to the zone, ``""`` for the apex."""
    zone, name = dotted(zone).lower(), dotted(name).lower()
    if name == zone:
        return ""
    if not name.endswith(f".{zone}"):
        raise errors.PermanentError(f"ionos dns: {name} is not inside zone {zone}")
    return name[: -len(zone) - 1]


def _seg(value: str) -> str:
    return quote(value, safe="")


def _option(settings: base.ProviderSettings, name: str, default: float, *, low: float) -> float:
    raw = settings.options.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise errors.PermanentError(f"provider ionos: options.{name} is not a number: {raw!r}") from None
    if value < low:
        raise errors.PermanentError(f"provider ionos: options.{name} must be at least {low}")
    return value


class TokenAuth:
    """:class:`failover.core.http.Authenticator` for IONOS: a JWT from ``GET /tokens/generate`` (HTTP
    Basic), cached until its ``exp``; or a configured token, for which a 401 is final."""

    def __init__(self, *, load: Callable[[str], str], auth_url: str | None, static: bool, timeout: float,
                 headers: dict[str, str], clock: Callable[[], float] = time.time) -> None:
        self._load = load
        self._static = static
        self._headers = headers
        self._clock = clock
        self._api = None if static or auth_url is None else http.ApiClient(
            base_url=auth_url, service="ionos auth", timeout=timeout, attempts=1)
        self._token: str | None = None
        self._expires_at = float("inf")
        self._lock = asyncio.Lock()
        self.token_requests = 0  #: how many tokens this authenticator generated

    def __repr__(self) -> str:
        return f"TokenAuth(static={self._static}, cached={self._token is not None})"

    async def headers(self, client: httpx.AsyncClient, *, refresh: bool = False) -> dict[str, str]:
        async with self._lock:
            if self._static:
                if refresh:
                    raise errors.AuthError(
                        "provider ionos: the configured credentials.token was rejected (401)")
                if self._token is None:
                    self._token = self._load("token")
            elif refresh or self._token is None or self._clock() >= self._expires_at:
                await self._generate()
            assert self._token is not None
            return {"Authorization": f"Bearer {self._token}"}

    async def _generate(self) -> None:
        assert self._api is not None
        user = self._load("username")
        basic = base64.b64encode(f"{user}:{self._load('password')}".encode()).decode("ascii")
        secrets.register(basic)
        self.token_requests += 1
        try:
            doc = await self._api.json("GET", "/tokens/generate", ok=(200,),
                                       headers={**self._headers, "Authorization": f"Basic {basic}"})
        except http.ApiError as exc:  # 403: the user or contract may not use the API
            raise errors.AuthError(
                f"provider ionos: credentials.username may not generate tokens: {exc}") from exc
        token = doc.get("token") if isinstance(doc, dict) else None
        if not isinstance(token, str) or not token:
            raise errors.ProtocolError("ionos auth: /tokens/generate answer has no token")
        secrets.register(token)
        self._token = token
        self._expires_at = _expiry(token)
        logger.debug("ionos: new API token, cached for %.0f s", self._expires_at - self._clock())

    async def aclose(self) -> None:
        if self._api is not None:
            await self._api.aclose()


def _expiry(token: str) -> float:
    """When to stop using ``token``: its ``exp`` less a minute, or never (until a 401) without one."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return float("inf")
    exp = claims.get("exp")
    return float(exp) - 60.0 if isinstance(exp, int | float) else float("inf")


class IonosProvider(base.Provider):
    """IONOS Cloud through Cloud API v6, Cloud DNS and the Auth API.

    ``settings.endpoints`` (required): ``cloudapi`` (``…/cloudapi/v6``), ``dns``
    (``https://dns.de-fra.ionos.com``), ``status`` (``https://status.ionos.cloud``), and ``auth``
    (``…/auth/v1``) unless a token is configured. ``settings.credentials``: ``username`` and
    ``password`` (a token is generated and cached until expiry), or ``token`` (used as is; a 401 is
    final). ``settings.options``: ``poll_interval`` (seconds between DNS state polls, default 2),
    ``dns_timeout`` (bound of a DNS switch, default 60 s), ``attempts`` (tries per request, default
    4), ``contract_number`` (sent as ``X-Contract-Number``), ``s3_naming`` (``legacy``/``contract``,
    see :data:`S3_ENDPOINTS`), ``s3_endpoint`` (overrides the S3 URL).
    """

    kind = "ionos"

    def __init__(self, settings: base.ProviderSettings) -> None:
        static = "token" in settings.credentials
        required = ("cloudapi", "dns", "status") if static else ("cloudapi", "auth", "dns", "status")
        for service in required:
            settings.endpoint(service)
        if not static:
            for name in ("username", "password"):
                if name not in settings.credentials:
                    raise errors.PermanentError(
                        f"provider ionos: credentials.{name} is not configured (or give credentials.token)")
        self.settings = settings
        self._poll = _option(settings, "poll_interval", 2.0, low=0.0)
        self._dns_timeout = _option(settings, "dns_timeout", 60.0, low=0.0)
        attempts = int(_option(settings, "attempts", 4, low=1))
        self._s3_naming = settings.options.get("s3_naming", "legacy")
        if self._s3_naming not in S3_ENDPOINTS:
            raise errors.PermanentError(
                f"provider ionos: options.s3_naming must be one of {sorted(S3_ENDPOINTS)}")
        contract = settings.options.get("contract_number")
        self._headers = {"X-Contract-Number": contract} if contract else {}
        self.auth = TokenAuth(load=lambda name: settings.secret(name),
                              auth_url=None if static else settings.endpoint("auth"), static=static,
                              timeout=settings.timeout, headers=self._headers)

        def client(service: str, *, auth: http.Authenticator | None) -> http.ApiClient:
            return http.ApiClient(base_url=settings.endpoint(service), service=f"ionos {service}",
                                  auth=auth, timeout=settings.timeout, attempts=attempts)

        self._cloud = client("cloudapi", auth=self.auth)
        self._dns = client("dns", auth=self.auth)
        self._status = client("status", auth=None)
        self._zones: dict[str, str] = {}
        self._closed = False

    def __repr__(self) -> str:
        return f"IonosProvider(cloudapi={self.settings.endpoint('cloudapi')!r})"

    # --- managed Kubernetes --------------------------------------------------------------------
    async def _k8s(self, ref: base.ClusterRef, suffix: str, **params: str) -> Any:
        path = f"/k8s/{_seg(ref.cluster)}{suffix}"
        doc = await self._cloud.json("GET", path, params=params or None, headers=self._headers)
        if not isinstance(doc, dict):
            raise errors.ProtocolError(f"ionos cloudapi: GET {path} answer is not an object")
        return doc

    async def cluster_status(self, ref: base.ClusterRef) -> base.ClusterStatus:
        """``metadata.state`` of the cluster and of each node pool (``GET /k8s/{id}`` and
        ``…/nodepools?depth=1``, read concurrently) mapped by :data:`STATE_MAP`; see
        :func:`overall_state` for how pools affect the cluster's state."""
        try:
            async with asyncio.TaskGroup() as group:
                cluster_task = group.create_task(self._k8s(ref, ""))
                pools_task = group.create_task(self._k8s(ref, "/nodepools", depth="1"))
        except ExceptionGroup as failed:
            raise failed.exceptions[0] from failed.exceptions[0].__cause__
        raw = _state_of(cluster_task.result())
        items = pools_task.result().get("items")
        pools = tuple(_nodepool(p) for p in items if isinstance(p, dict)) if isinstance(items, list) else ()
        state = overall_state(map_state(raw), pools)
        if raw not in STATE_MAP:
            logger.warning("ionos: cluster %s reports unknown state %r; treated as unknown", ref.cluster, raw)
        troubled = [f"node pool {p.name} {p.raw_state or 'without state'}"
                    for p in pools if p.state is not _S.READY]
        return base.ClusterStatus(provider=self.kind, cluster=ref.cluster, state=state, raw_state=raw,
                                  reason="; ".join(troubled), node_pools=pools)

    async def kubeconfig(self, ref: base.ClusterRef) -> str:
        """``GET /k8s/{id}/kubeconfig``: a YAML string (asked for as ``application/yaml``; a JSON
        string body is accepted too). The text and the credentials in it are registered secrets."""
        path = f"/k8s/{_seg(ref.cluster)}/kubeconfig"
        headers = {**self._headers, "Accept": "application/yaml"}
        response = await self._cloud.request("GET", path, headers=headers, ok=(200,))
        text: Any = response.text
        if text.startswith('"'):  # served as a JSON string (the spec allows application/json too)
            try:
                text = response.json()
            except ValueError:
                text = None
        if not isinstance(text, str) or "apiVersion" not in text:
            raise errors.ProtocolError(f"ionos cloudapi: {path} answer is not a kubeconfig")
        _register_kubeconfig(text)
        return text

    # --- Cloud DNS -----------------------------------------------------------------------------
    async def _items(self, path: str, params: dict[str, str | int]) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        offset = 0
        while True:
            doc = await self._dns.json("GET", path, params={**params, "offset": offset, "limit": _PAGE})
            page = doc.get("items") if isinstance(doc, dict) else None
            if not isinstance(page, list):
                raise errors.ProtocolError(f"ionos dns: GET {path} answer has no items list")
            items.extend(i for i in page if isinstance(i, dict))
            if len(page) < _PAGE:
                return items
            offset += _PAGE

    async def _zone_id(self, zone: str) -> str:
        name = dotted(zone).rstrip(".").lower()
        if name not in self._zones:
            found = [z for z in await self._items("/zones", {"filter.zoneName": name})
                     if str(z.get("properties", {}).get("zoneName", "")).rstrip(".").lower() == name
                     and isinstance(z.get("id"), str)]
            if not found:
                raise http.NotFoundError(f"ionos dns: zone {name} not found", status=404)
            self._zones[name] = found[0]["id"]
        return self._zones[name]

    async def _records(self, zone_id: str, name: str, rtype: str) -> list[dict[str, Any]]:
        """The zone's records named exactly ``name`` (relative) of ``rtype``, not being destroyed
        (``filter.name`` matches substrings, so the exact match is made here)."""
        params: dict[str, str | int] = {"filter.type": rtype}
        if name:
            params["filter.name"] = name
        try:
            found = await self._items(f"/zones/{_seg(zone_id)}/records", params)
        except http.NotFoundError:
            self._zones = {k: v for k, v in self._zones.items() if v != zone_id}  # re-resolved next time
            raise
        return [r for r in found if _prop(r, "name").lower() == name and _prop(r, "type") == rtype
                and str(r.get("metadata", {}).get("state", "")) not in _DNS_GONE
                and isinstance(r.get("id"), str)]

    async def dns_get(self, zone: str, name: str, rtype: str) -> base.DnsRecordSet | None:
        """The records ``name``/``rtype`` as one set, or None. A missing zone is a NotFoundError."""
        zone, name, rtype = dotted(zone), dotted(name), rtype.upper()
        zone_id = await self._zone_id(zone)
        found = await self._records(zone_id, relative(zone, name), rtype)
        if not found:
            return None
        return base.DnsRecordSet(zone=zone, name=name, type=rtype, values=tuple(sorted({_prop(r, "content")
                                                                                      for r in found})),
                                 ttl=min(_ttl(r) for r in found))

    async def dns_set(
        self, zone: str, name: str, rtype: str, values: tuple[str, ...], ttl: int
    ) -> base.DnsRecordSet:
        """Make the records exactly ``values``: a matching record is kept (``PUT`` only when its TTL
        or enabled flag differs), a missing value reuses a surplus record or a new id (``PUT`` is an
        upsert, so a retried create cannot duplicate), the rest is ``DELETE`` d. Then every record
        is polled until ``AVAILABLE`` and every deleted one until gone. No write when it already is
        so. ``FAILED`` → PermanentError; not applied within ``dns_timeout`` → TemporaryError."""
        zone, name, rtype = dotted(zone), dotted(name), rtype.upper()
        want = base.DnsRecordSet(zone=zone, name=name, type=rtype, values=tuple(sorted(set(values))), ttl=ttl)
        if not want.values:
            raise errors.PermanentError("ionos dns: a record set needs at least one value")
        rel = relative(zone, name)
        zone_id = await self._zone_id(zone)
        current = await self._records(zone_id, rel, rtype)
        keep, spare = _plan(current, want.values)
        wait: list[str] = []
        for value in want.values:
            found = keep.get(value)
            if found is not None and _ttl(found) == ttl and found.get("properties", {}).get("enabled", True) \
                    and found.get("metadata", {}).get("state") != "FAILED":  # a failed change is retried
                if found.get("metadata", {}).get("state") != "AVAILABLE":
                    wait.append(str(found["id"]))  # someone's identical change in flight: await it
                continue
            record_id = str(found["id"]) if found is not None else (
                str(spare.pop(0)["id"]) if spare else str(uuid.uuid4()))
            body = {"properties": {"name": rel, "type": rtype, "content": value, "ttl": ttl, "enabled": True}}
            await self._dns.json("PUT", f"/zones/{_seg(zone_id)}/records/{_seg(record_id)}", json=body)
            wait.append(record_id)
        for record in spare:
            await self._dns.request("DELETE", f"/zones/{_seg(zone_id)}/records/{_seg(str(record['id']))}")
        await self._wait_applied(zone_id, want, wait, gone=[str(r["id"]) for r in spare])
        return want

    async def _wait_applied(self, zone_id: str, want: base.DnsRecordSet, ids: list[str], *,
                            gone: list[str]) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._dns_timeout
        pending, vanishing = set(ids), set(gone)
        while True:
            for record_id in sorted(pending | vanishing):
                state = await self._record_state(zone_id, record_id, want)
                if state == "FAILED":
                    raise errors.PermanentError(f"ionos dns: change of {want.name} {want.type} ended FAILED")
                done = state == "AVAILABLE" if record_id in pending else state is None
                if done:
                    pending.discard(record_id)
                    vanishing.discard(record_id)
            if not pending and not vanishing:
                return
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise errors.TemporaryError(
                    f"ionos dns: {want.name} {want.type} not applied within {self._dns_timeout:g}s "
                    f"({len(pending) + len(vanishing)} records pending)")
            await asyncio.sleep(min(self._poll, remaining))

    async def _record_state(self, zone_id: str, record_id: str, want: base.DnsRecordSet) -> str | None:
        """The record's ``metadata.state`` (None once it is gone); AVAILABLE only with wanted content."""
        try:
            doc = await self._dns.json("GET", f"/zones/{_seg(zone_id)}/records/{_seg(record_id)}")
        except http.NotFoundError:
            return None
        if not isinstance(doc, dict) or not isinstance(doc.get("metadata"), dict):
            raise errors.ProtocolError(f"ionos dns: record {record_id} answer has no metadata")
        state = str(doc["metadata"].get("state", ""))
        if state == "AVAILABLE" and (_prop(doc, "content") not in want.values or _ttl(doc) != want.ttl):
            return "PROVISIONING"  # someone else's change; ours has not landed yet
        return state

    # --- object storage and status page ------------------------------------------------------------
    async def s3_endpoint(self, region: str) -> str:
        """``options.s3_endpoint`` if set, else :data:`S3_ENDPOINTS` (PermanentError for a location
        without object storage)."""
        if override := self.settings.options.get("s3_endpoint"):
            return override.rstrip("/")
        try:
            return S3_ENDPOINTS[self._s3_naming][region]
        except KeyError:
            raise errors.PermanentError(
                f"provider ionos: no {self._s3_naming} S3 endpoint known for location {region!r}; "
                "set options.s3_endpoint") from None

    async def status(self, region: str) -> tuple[base.Incident, ...]:
        """Open incidents, in-progress maintenances and impaired components on status.ionos.cloud
        (Statuspage ``/api/v2/summary.json``) that name ``region``'s location or no location."""
        doc = await self._status.json("GET", "/api/v2/summary.json")
        if not isinstance(doc, dict):
            raise errors.ProtocolError("ionos status: summary.json is not an object")
        return _incidents(doc, region)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for client in (self._cloud, self._dns, self._status):
            await client.aclose()
        await self.auth.aclose()


def _plan(current: list[dict[str, Any]], values: tuple[str, ...]
          ) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """Split the current records into one to keep per wanted value and the spare rest."""
    keep: dict[str, dict[str, Any]] = {}
    spare: list[dict[str, Any]] = []
    for record in current:
        content = _prop(record, "content")
        if content in values and content not in keep:
            keep[content] = record
        else:
            spare.append(record)
    return keep, spare


def _state_of(doc: dict[str, Any]) -> str:
    metadata = doc.get("metadata")
    state = metadata.get("state") if isinstance(metadata, dict) else None
    return state if isinstance(state, str) else ""


def _nodepool(doc: dict[str, Any]) -> base.NodePoolStatus:
    props = doc.get("properties") if isinstance(doc.get("properties"), dict) else {}
    assert isinstance(props, dict)
    raw = _state_of(doc)
    count = props.get("nodeCount")
    return base.NodePoolStatus(name=str(props.get("name") or doc.get("id") or "?"), state=map_state(raw),
                               raw_state=raw, nodes=count if isinstance(count, int) else None)


def _prop(doc: dict[str, Any], key: str) -> str:
    props = doc.get("properties")
    value = props.get(key) if isinstance(props, dict) else None
    return value if isinstance(value, str) else ""


def _ttl(doc: dict[str, Any]) -> int:
    props = doc.get("properties")
    value = props.get("ttl") if isinstance(props, dict) else None
    return value if isinstance(value, int) else 3600  # the API's default TTL


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
        for key in ("token", "client-key-data", "password"):
            if isinstance(user, dict) and isinstance(user.get(key), str):
                secrets.register(user[key])


# --- status.ionos.cloud (Atlassian Statuspage v2) ------------------------------------------------
#: Cloud API locations and the city names the status page uses for them
LOCATIONS: dict[str, tuple[str, ...]] = {
    "de/fra": ("frankfurt",), "de/fkb": ("karlsruhe",), "de/txl": ("berlin",),
    "es/vit": ("logroño", "logrono"), "fr/par": ("paris",), "gb/lhr": ("london",),
    "gb/bhx": ("birmingham",), "us/las": ("las vegas",), "us/ewr": ("newark",), "us/mci": ("kansas city",),
}
_OPEN_MAINTENANCE = frozenset({"in_progress", "verifying"})
_CLOSED = frozenset({"resolved", "postmortem", "completed"})


def _terms(location: str) -> tuple[str, ...]:
    return (location, location.replace("/", "-"), *LOCATIONS.get(location, ()))


def _affects(texts: list[str], region: str) -> bool:
    """True when the texts name ``region``'s location, or no known location (a global service)."""
    text = " ".join(texts).lower()
    named = {loc for loc in {*LOCATIONS, region} if any(term in text for term in _terms(loc))}
    return not named or region in named


def _incidents(doc: dict[str, Any], region: str) -> tuple[base.Incident, ...]:
    items = [i for i in doc.get("incidents") or () if isinstance(i, dict) and i.get("status") not in _CLOSED]
    items += [m for m in doc.get("scheduled_maintenances") or ()
              if isinstance(m, dict) and m.get("status") in _OPEN_MAINTENANCE]
    out = [i for i in (_incident(d) for d in items) if i is not None]
    named = {c for i in out for c in i.components}
    for comp in doc.get("components") or ():  # impaired components no open incident explains
        if (isinstance(comp, dict) and isinstance(comp.get("name"), str) and not comp.get("group")
                and comp.get("status") != "operational" and comp["name"] not in named):
            status = str(comp.get("status"))
            out.append(base.Incident(id=f"component/{comp.get('id', comp['name'])}", status=status,
                                     title=f"{comp['name']}: {status}", components=(comp["name"],)))
    return tuple(i for i in out if _affects([i.title, *i.components], region))


def _incident(doc: dict[str, Any]) -> base.Incident | None:
    if not isinstance(doc.get("id"), str | int) or not isinstance(doc.get("name"), str):
        return None
    comps = tuple(str(c["name"]) for c in doc.get("components") or ()
                  if isinstance(c, dict) and c.get("name"))
    started: datetime | None = None
    when = doc.get("started_at") or doc.get("scheduled_for") or doc.get("created_at")
    if isinstance(when, str):
        try:
            started = datetime.fromisoformat(when.replace("Z", "+00:00"))
        except ValueError:
            started = None
    return base.Incident(id=str(doc["id"]), title=doc["name"], status=str(doc.get("status", "")),
                         impact=str(doc.get("impact") or ""), components=comps, started_at=started)
