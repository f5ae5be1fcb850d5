"""The Open Telekom Cloud adapter: CCE cluster health, kubeconfig, public DNS and the status page.

OTC has no async SDK (``otcextensions`` is sync), so this talks HTTP through the shared
:class:`~failover.core.http.ApiClient`, authenticated the way OTC requires: a Keystone v3 password
token (``X-Subject-Token``, valid 24 h) scoped to a *project named after the region*, sent as
``X-Auth-Token``. Tokens are cached per project until shortly before ``expires_at``.

**DNS always goes through eu-de.** OTC serves public zones (and their record sets) only from
``dns.eu-de.otc.t-systems.com``, whatever region a site runs in; so the adapter always uses
``endpoints["dns"]`` with a token for the eu-de project, and public DNS failover therefore depends
on the eu-de control plane. :func:`dns_region_warning` lets ``config validate`` say so.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import yaml

from failover.core import errors, http, secrets
from providers import base, keystone, wire

logger = logging.getLogger(__name__)

#: per task: which token generation each authenticator last handed out (never the token itself)

DNS_REGION = "eu-de"  #: the only region whose DNS endpoint manages public zones

#: CCE cluster ``status.phase`` -> normalised state (every documented value; others -> UNKNOWN)
CLUSTER_PHASES: dict[str, base.ClusterState] = {
    "Available": base.ClusterState.READY,
    "ScalingUp": base.ClusterState.DEGRADED,
    "ScalingDown": base.ClusterState.DEGRADED,
    "Upgrading": base.ClusterState.DEGRADED,
    "Resizing": base.ClusterState.DEGRADED,
    "Unavailable": base.ClusterState.DOWN,
    "Creating": base.ClusterState.DOWN,  # not serving yet
    "Deleting": base.ClusterState.DOWN,
    "Empty": base.ClusterState.DOWN,  # no resources: nothing can run
    "Hibernating": base.ClusterState.DOWN,
    "Hibernated": base.ClusterState.DOWN,
    "Awaking": base.ClusterState.DOWN,  # not serving until Available
}

#: CCE node pool ``status.phase`` -> normalised state ("" is the normal state)
NODEPOOL_PHASES: dict[str, base.ClusterState] = {
    "": base.ClusterState.READY,
    "Synchronized": base.ClusterState.READY,
    "Synchronizing": base.ClusterState.DEGRADED,
    "SoldOut": base.ClusterState.DEGRADED,  # cannot scale out; existing nodes serve
    "Deleting": base.ClusterState.DOWN,
    "Error": base.ClusterState.DOWN,
}

#: DNS record-set states that will never become ACTIVE by waiting
DNS_FAILED = {"ERROR", "ILLEGAL", "POLICE", "FREEZE", "DISABLE", "PENDING_DISABLE"}
_CLOSED_INCIDENTS = {"resolved", "completed", "cancelled"}
_IMPACT = {0: "maintenance", 1: "minor", 2: "major", 3: "outage"}


def cluster_state(phase: str) -> base.ClusterState:
    return CLUSTER_PHASES.get(phase, base.ClusterState.UNKNOWN)


def nodepool_state(phase: str) -> base.ClusterState:
    return NODEPOOL_PHASES.get(phase, base.ClusterState.UNKNOWN)


def overall_state(cluster: base.ClusterState, pools: Iterable[base.NodePoolStatus]) -> base.ClusterState:
    """A ready control plane is only as ready as its node pools: all pools down -> DOWN, any
    pool not ready (or unknown) -> DEGRADED."""
    pools = tuple(pools)
    if cluster is not base.ClusterState.READY or not pools:
        return cluster
    if all(p.state is base.ClusterState.DOWN for p in pools):
        return base.ClusterState.DOWN
    if any(p.state is not base.ClusterState.READY for p in pools):
        return base.ClusterState.DEGRADED
    return cluster


def dns_region_warning(settings: base.ProviderSettings, *, site_regions: Iterable[str] = ()) -> str | None:
    """A warning for ``config validate`` when OTC public DNS is used from outside eu-de.

    ``site_regions`` are the regions of the sites that rely on this provider's DNS; without them
    the warning is given whenever the provider is OTC, since failover then depends on eu-de.
    """
    if settings.kind != "otc":
        return None
    host = urlsplit(settings.endpoints.get("dns", "")).hostname or ""
    if ".otc.t-systems.com" in host and f".{DNS_REGION}." not in host:
        return (f"OTC endpoints.dns {host} is not the eu-de endpoint: public zones are only "
                f"manageable through dns.{DNS_REGION}.otc.t-systems.com")
    regions = sorted({r.split("_")[0] for r in site_regions})
    if regions and all(r == DNS_REGION for r in regions):
        return None
    outside = ", ".join(r for r in regions if r != DNS_REGION) or "any region"
    return (f"OTC public DNS is only manageable through the {DNS_REGION} endpoint: sites in {outside} "
            f"depend on the {DNS_REGION} control plane for DNS failover")


class OtcProvider(base.Provider):
    """Open Telekom Cloud (CCE v3, DNS v2, IAM/Keystone v3, status dashboard v2).

    ``settings.endpoints``: ``iam`` (Keystone, e.g. ``https://iam.eu-de.otc.t-systems.com/v3``),
    ``cce`` (``https://cce.eu-de.otc.t-systems.com``), ``dns`` (must be the **eu-de** endpoint,
    see the module docstring), ``status`` (``https://api.status.otc-service.com``). Optional
    per-region overrides ``iam.<region>`` and ``cce.<region>`` (e.g. ``cce.eu-nl``).

    ``settings.credentials``: ``username``, ``password``, ``domain`` (the IAM user's domain name,
    ``OTC-EU-DE-000…``). CCE tokens are scoped to the project named by the site's region (a
    ``ClusterRef.region`` may name a sub-project such as ``eu-de_failover``; endpoints, S3 and
    the status page then use its region part).

    ``settings.options``: ``s3_endpoint`` (override for :meth:`s3_endpoint`),
    ``dns_poll_interval`` (s, default 2), ``dns_timeout`` (s, default 60), ``kubeconfig_days``
    (clustercert validity, default 1), ``dns_project`` (the eu-de project or sub-project that
    holds the public zones, default ``eu-de``), ``attempts`` (tries per request, default 4),
    ``max_retry_delay`` (s, default 10).
    """

    kind = "otc"
    REQUIRED_ENDPOINTS = ("iam", "cce", "dns", "status")
    REQUIRED_CREDENTIALS = ("username", "password", "domain")

    def __init__(self, settings: base.ProviderSettings) -> None:
        for key in self.REQUIRED_ENDPOINTS:
            settings.endpoint(key)  # PermanentError naming the missing key
        for key in self.REQUIRED_CREDENTIALS:
            if key not in settings.credentials:
                raise errors.PermanentError(f"provider otc: credentials.{key} is not configured")
        self._settings = settings
        options = settings.options
        try:
            self._poll = float(options.get("dns_poll_interval", "2"))
            self._dns_timeout = float(options.get("dns_timeout", "60"))
            self._cert_days = int(options.get("kubeconfig_days", "1"))
            self._attempts = int(options.get("attempts", "4"))
            self._max_delay = float(options.get("max_retry_delay", "10"))
        except ValueError as exc:
            raise errors.PermanentError(f"provider otc: invalid option value ({exc})") from None
        self._dns_project = options.get("dns_project", DNS_REGION)
        if self._dns_project.split("_")[0] != DNS_REGION:
            raise errors.PermanentError(
                f"provider otc: options.dns_project {self._dns_project!r} is not an {DNS_REGION} project; "
                f"public zones are only manageable in {DNS_REGION}")
        self._auth: dict[str, keystone.KeystoneAuth] = {}
        self._clients: dict[tuple[str, str], http.ApiClient] = {}
        self._zone_ids: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"OtcProvider(endpoints={sorted(self._settings.endpoints)})"

    # --- plumbing ------------------------------------------------------------------------------
    def _endpoint(self, service: str, region: str) -> str:
        override = self._settings.endpoints.get(f"{service}.{region.split('_')[0]}")
        return override.rstrip("/") if override else self._settings.endpoint(service)

    def _authenticator(self, project: str) -> keystone.KeystoneAuth:
        if project not in self._auth:
            settings = self._settings

            def identity() -> dict[str, Any]:
                user = {"name": settings.secret("username"), "password": settings.secret("password"),
                        "domain": {"name": settings.secret("domain")}}
                return {"methods": ["password"], "password": {"user": user}}

            self._auth[project] = keystone.KeystoneAuth(
                client=self._client("iam", project, authenticated=False), identity=identity,
                scope={"project": {"name": project}}, service=f"otc iam ({project})")
        return self._auth[project]

    def _client(self, service: str, region: str, *, authenticated: bool = True) -> http.ApiClient:
        key = (service, region)
        if key not in self._clients:
            authenticator = self._authenticator(region) if authenticated else None
            self._clients[key] = http.ApiClient(
                base_url=self._endpoint(service, region), service=f"otc {service} ({region})",
                auth=authenticator, timeout=self._settings.timeout, attempts=self._attempts,
                max_delay=self._max_delay)
        return self._clients[key]

    def _dns(self) -> http.ApiClient:
        return self._client("dns", self._dns_project)

    async def _project_id(self, ref: base.ClusterRef) -> str:
        if ref.project:
            return ref.project
        return await self._authenticator(ref.region).project_id()

    async def _cce(self, ref: base.ClusterRef, method: str, suffix: str, **kwargs: Any) -> dict[str, Any]:
        project = await self._project_id(ref)
        path = f"/api/v3/projects/{project}/clusters/{ref.cluster}{suffix}"
        body = await self._client("cce", ref.region).json(
            method, path, headers={"Content-Type": "application/json"}, **kwargs)
        return _obj(body, f"CCE {method} {suffix or 'cluster'}")

    # --- Provider ------------------------------------------------------------------------------
    async def cluster_status(self, ref: base.ClusterRef) -> base.ClusterStatus:
        try:  # both reads in parallel; one failing cancels the other
            async with asyncio.TaskGroup() as group:
                cluster_task = group.create_task(self._cce(ref, "GET", ""))
                pools_task = group.create_task(self._cce(ref, "GET", "/nodepools"))
        except ExceptionGroup as failed:
            raise failed.exceptions[0] from failed.exceptions[0].__cause__
        cluster, pools_doc = cluster_task.result(), pools_task.result()
        status = _obj(cluster.get("status", {}), "CCE cluster status")
        raw = str(status.get("phase") or "")
        reason = "; ".join(dict.fromkeys(str(status[k]) for k in ("reason", "message") if status.get(k)))
        pools = tuple(_nodepool(p) for p in _list(pools_doc.get("items", []), "CCE nodepools items"))
        state = overall_state(cluster_state(raw), pools)
        if raw not in CLUSTER_PHASES:
            logger.warning("otc: cluster %s reports unknown phase %r; treated as unknown", ref.cluster, raw)
        logger.debug("otc: cluster %s phase %r -> %s (%d node pools)", ref.cluster, raw, state, len(pools))
        return base.ClusterStatus(provider=self.kind, cluster=ref.cluster, state=state, raw_state=raw,
                                  reason=reason, node_pools=pools)

    async def kubeconfig(self, ref: base.ClusterRef) -> str:
        doc = await self._cce(ref, "POST", "/clustercert", json={"duration": self._cert_days})
        if doc.get("kind") != "Config":
            raise errors.ProtocolError("otc: clustercert did not return a kubeconfig (kind != Config)")
        for user in _list(doc.get("users", []), "kubeconfig users"):
            for value in _obj(_obj(user, "kubeconfig user").get("user", {}), "kubeconfig user").values():
                if isinstance(value, str):
                    secrets.register(value)
        return yaml.safe_dump(doc, sort_keys=False)

    async def dns_get(self, zone: str, name: str, rtype: str) -> base.DnsRecordSet | None:
        found = await self._find_recordset(zone, name, rtype)
        return None if found is None else _recordset(zone, found)

    async def dns_set(self, zone: str, name: str, rtype: str, values: tuple[str, ...], ttl: int) -> base.DnsRecordSet:
        zone, name = _fqdn(zone), _fqdn(name)
        current = await self._find_recordset(zone, name, rtype)
        wanted = sorted(values)
        if current is not None and sorted(current.get("records", [])) == wanted and current.get("ttl") == ttl:
            if current.get("status") == "ACTIVE":
                logger.debug("otc: %s %s already as wanted", name, rtype)
                return _recordset(zone, current)
            return await self._wait_active(zone, str(current["id"]), wanted, ttl)
        body = {"name": name, "type": rtype, "ttl": ttl, "records": list(values),
                "description": "managed by failover"}
        client, zone_id = self._dns(), await self._zone_id(zone)
        if current is None:
            answer = await client.json("POST", f"/v2/zones/{zone_id}/recordsets", json=body)
        else:
            answer = await client.json("PUT", f"/v2/zones/{zone_id}/recordsets/{current['id']}", json=body)
        rs_id = str(_obj(answer, "DNS record set").get("id", ""))
        if not rs_id:
            raise errors.ProtocolError("otc: DNS write answer has no record set id")
        logger.debug("otc: %s %s %s accepted, waiting for ACTIVE", name, rtype,
                     "create" if current is None else "update")
        return await self._wait_active(zone, rs_id, wanted, ttl)

    async def s3_endpoint(self, region: str) -> str:
        if self._settings.options.get("s3_endpoint"):
            return self._settings.options["s3_endpoint"].rstrip("/")
        region = region.split("_")[0]  # a sub-project eu-de_xxx lives in region eu-de
        if region == "eu-ch2":
            return "https://obs.eu-ch2.sc.otc.t-systems.com"
        return f"https://obs.{region}.otc.t-systems.com"

    async def status(self, region: str) -> tuple[base.Incident, ...]:
        client = self._client("status", "public", authenticated=False)
        data = _list(_obj(await client.json("GET", "/v2/incidents", params={"active": "true"}),
                          "status incidents").get("data", []), "status incidents data")
        incidents = [_obj(i, "incident") for i in data]
        incidents = [i for i in incidents if not i.get("end_date") and i.get("status") not in _CLOSED_INCIDENTS]
        regions: dict[str, set[str]] = {}
        if any(i.get("components") for i in incidents):
            regions = _component_regions(await client.json("GET", "/v2/components"))
        out = []
        for incident in incidents:
            comps = [str(c) for c in incident.get("components") or []]
            known = set().union(*(regions.get(c, set()) for c in comps)) if comps else set()
            if known and region.split("_")[0].lower() not in known:
                continue
            out.append(_incident(incident, comps))
        return tuple(out)

    async def close(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()
        self._auth.clear()

    # --- DNS helpers ---------------------------------------------------------------------------
    async def _zone_id(self, zone: str) -> str:
        zone = _fqdn(zone).lower()
        if zone not in self._zone_ids:
            doc = await self._dns().json(
                "GET", "/v2/zones", params={"name": zone, "type": "public"})
            for item in _list(_obj(doc, "DNS zones").get("zones", []), "DNS zones"):
                item = _obj(item, "DNS zone")
                if _fqdn(str(item.get("name", ""))).lower() == zone:  # the name filter is fuzzy
                    self._zone_ids[zone] = str(item["id"])
                    break
            else:
                raise errors.PermanentError(f"otc: public zone {zone} not found via the {DNS_REGION} endpoint")
        return self._zone_ids[zone]

    async def _find_recordset(self, zone: str, name: str, rtype: str) -> dict[str, Any] | None:
        zone_id, name = await self._zone_id(zone), _fqdn(name).lower()
        doc = await self._dns().json(
            "GET", f"/v2/zones/{zone_id}/recordsets", params={"name": name, "type": rtype})
        for item in _list(_obj(doc, "DNS recordsets").get("recordsets", []), "DNS recordsets"):
            item = _obj(item, "DNS record set")
            if _fqdn(str(item.get("name", ""))).lower() == name and item.get("type") == rtype:
                return item
        return None

    async def _wait_active(self, zone: str, rs_id: str, wanted: list[str], ttl: int) -> base.DnsRecordSet:
        client, zone_id = self._dns(), await self._zone_id(zone)
        deadline = time.monotonic() + self._dns_timeout
        while True:
            item = _obj(await client.json("GET", f"/v2/zones/{zone_id}/recordsets/{rs_id}"), "DNS record set")
            state = str(item.get("status", ""))
            if state == "ACTIVE" and sorted(item.get("records", [])) == wanted and item.get("ttl") == ttl:
                return _recordset(zone, item)
            if state in DNS_FAILED:
                raise errors.PermanentError(f"otc: DNS record set {item.get('name')} is {state}")
            if time.monotonic() + self._poll > deadline:
                raise errors.TemporaryError(
                    f"otc: DNS record set {item.get('name')} still {state} after {self._dns_timeout:g}s")
            await asyncio.sleep(self._poll)


_fqdn = wire.fqdn


def _obj(value: Any, what: str) -> dict[str, Any]:
    return wire.obj(value, what, service="otc")


def _list(value: Any, what: str) -> list[Any]:
    return wire.array(value, what, service="otc")


def _nodepool(item: Any) -> base.NodePoolStatus:
    item = _obj(item, "CCE node pool")
    status = _obj(item.get("status", {}), "CCE node pool status")
    raw = str(status.get("phase") or "")
    nodes = status.get("currentNode")
    return base.NodePoolStatus(name=str(_obj(item.get("metadata", {}), "metadata").get("name", "")),
                               state=nodepool_state(raw), raw_state=raw,
                               nodes=nodes if isinstance(nodes, int) else None)


def _recordset(zone: str, item: dict[str, Any]) -> base.DnsRecordSet:
    return wire.designate_recordset(zone, item, service="otc")


def _component_regions(doc: Any) -> dict[str, set[str]]:
    """component id -> region names (lower case); the spec's ``attributes`` is one object, the
    dashboard's own code serves a list: both are read."""
    out: dict[str, set[str]] = {}
    for comp in _list(doc, "status components"):
        comp = _obj(comp, "status component")
        attrs = comp.get("attributes") or []
        attrs = [attrs] if isinstance(attrs, dict) else attrs
        out[str(comp.get("id"))] = {str(a.get("value", "")).lower() for a in attrs
                                    if isinstance(a, dict) and a.get("name") == "region"}
    return out


def _incident(item: dict[str, Any], components: list[str]) -> base.Incident:
    started: datetime | None = None
    if isinstance(item.get("start_date"), str):
        try:
            started = datetime.fromisoformat(item["start_date"].replace("Z", "+00:00"))
        except ValueError:
            started = None
    impact = item.get("impact")
    return base.Incident(id=str(item.get("id", "")), title=str(item.get("title", "")),
                         status=str(item.get("status", "")),
                         impact=_IMPACT.get(impact, str(impact)) if isinstance(impact, int) else "",
                         components=tuple(components), started_at=started)
