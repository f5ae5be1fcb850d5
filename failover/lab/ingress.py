"""A lab site's ingress: the openDesk apps as a user (and the product's probes) see them.

One aiohttp server per site routes by ``Host`` to a component and answers with that app's real
health endpoints (Nextcloud ``/status.php``, Synapse ``/health``, Keycloak's OIDC discovery, …),
but only while the component's workloads in **this site's** cluster exist and are ready — it
reads the cluster's store directly, so a failed workload, a missing restore or a scale-to-zero is
a 503, exactly like an ingress with no ready endpoints. Every answer carries ``X-Lab-Site``.

Application data is modelled as Kubernetes objects: a record written to a stateful app
(``POST /lab/records``) becomes a ConfigMap with the component's selector labels, so a Velero
backup of the component carries it and a restore brings it back. A user's *file*
(``POST /lab/files``) lands in the component's volume (:mod:`failover.lab.volumes`), which only
Velero's file-system backup carries. Counting records and files on the new site after a failover
is how the lab *measures* data loss.
"""

from __future__ import annotations

import json
import re
from typing import Any

from aiohttp import web

from failover.config import models
from failover.core import serving
from failover.drill import naming as drill_naming
from failover.lab import volumes as volumes_mod
from failover.lab.kube import types as kt
from failover.lab.postgres import RecordsDb
from failover.lab.seed import RECORD_LABEL

_ID = re.compile(r"^[a-z0-9][a-z0-9.-]{0,62}$")


def workload_ready(obj: kt.KubeObject) -> bool:
    """Ready as a Service's endpoints would be: at least one replica wanted, all of them ready."""
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    wanted = int(spec.get("replicas", 1))
    if wanted < 1:
        return False
    ready = int(status.get("readyReplicas") or 0)
    observed = status.get("observedGeneration")
    generation = (obj.get("metadata") or {}).get("generation")
    if observed is not None and generation is not None and int(observed) < int(generation):
        return False
    return ready >= wanted


def component_ready(store: kt.Store, component: models.Component) -> bool:
    for workload in component.workloads:
        rt = kt.STATEFULSETS if workload.kind == "StatefulSet" else kt.DEPLOYMENTS
        try:
            obj = store.get(rt, component.namespace, workload.name)
        except kt.NotFound:
            return False
        if not workload_ready(obj):
            return False
    return True


def record_name(component: str, record_id: str) -> str:
    return f"rec-{component}-{record_id}".lower()


def list_records(store: kt.Store, component: models.Component) -> list[str]:
    """Ids of the records the component holds in this cluster."""
    selector = ",".join([f"{k}={v}" for k, v in component.selector.items()] + [f"{RECORD_LABEL}=true"])
    items, _ = store.list(kt.CONFIGMAPS, component.namespace, label_selector=selector)
    return sorted(str((i.get("data") or {}).get("id", "")) for i in items if (i.get("data") or {}).get("id"))


def write_record(store: kt.Store, component: models.Component, record_id: str, body: str) -> None:
    labels = {**component.selector, RECORD_LABEL: "true", "lab.failover.io/component": component.name}
    obj = {"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": record_name(component.name, record_id), "namespace": component.namespace,
                        "labels": labels},
           "data": {"id": record_id, "body": body}}
    try:
        store.create(kt.CONFIGMAPS, obj)
    except kt.AlreadyExists:
        store.update(kt.CONFIGMAPS, obj)


# --- the apps' endpoints ---------------------------------------------------------------------

def _json(doc: Any) -> web.Response:
    """Compact JSON, as the real apps send it (probes match substrings like ``"installed":true``)."""
    return web.Response(text=json.dumps(doc, separators=(",", ":")), content_type="application/json")


def _app_response(component: models.Component, path: str, zone: str) -> web.Response:
    name = component.name
    if name == "nextcloud" and path == "/status.php":
        return _json({"installed": True, "maintenance": False, "needsDbUpgrade": False,
                                  "version": "29.0.0", "productname": "Nextcloud"})
    if name == "chat" and path == "/health":
        return web.Response(text="OK")
    if name == "chat" and path == "/_matrix/client/versions":
        return _json({"versions": ["v1.1", "v1.11"], "unstable_features": {}})
    if name == "openproject" and path.startswith("/health_checks"):
        return web.Response(text="PASSED")
    if name == "collabora" and path == "/hosting/discovery":
        return web.Response(text='<?xml version="1.0"?><wopi-discovery><net-zone name="external-http">'
                            '</net-zone></wopi-discovery>', content_type="text/xml")
    if name == "keycloak" and path.startswith("/realms/opendesk/.well-known/openid-configuration"):
        issuer = f"https://id.{zone.rstrip('.')}/realms/opendesk"
        return _json({"issuer": issuer, "authorization_endpoint": f"{issuer}/protocol/openid-connect/auth",
                                  "token_endpoint": f"{issuer}/protocol/openid-connect/token",
                                  "jwks_uri": f"{issuer}/protocol/openid-connect/certs"})
    if name == "ox" and path.startswith("/appsuite"):
        return web.Response(text="<html><title>OX App Suite</title></html>", content_type="text/html")
    if name == "xwiki" and path.startswith("/xwiki/rest"):
        return web.Response(text='<xwiki xmlns="http://www.xwiki.org"><version>16.10</version></xwiki>',
                            content_type="application/xml")
    if name == "jitsi" and path == "/about/health":
        return _json({})
    if path in ("/", ""):
        return web.Response(text=f"<html><title>{component.title}</title></html>", content_type="text/html")
    return web.Response(status=404, text="not found")


class Ingress:
    """The site's ingress server; ``store`` is the site's cluster store (read on every request)."""

    def __init__(self, *, site: str, store: kt.Store, profile: models.WorkplaceProfile, zone: str,
                 volumes: volumes_mod.VolumeStore | None = None) -> None:
        self.site = site
        self.store = store
        self.volumes = volumes  #: the site's volumes: users' files (``/lab/files``) land in them
        self.database: RecordsDb | None = None  #: ``lab.postgres``: records are committed here first
        self.zone = zone.rstrip(".")
        self.by_host: dict[str, models.Component] = {
            f"{h}.{self.zone}": c for c in profile.components for h in c.hostnames}
        self._runner: web.AppRunner | None = None
        self.host = ""
        self.port = 0

    async def start(self, *, host: str, port: int = 0) -> None:
        app = web.Application(middlewares=[self._site_header])
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner, self.port = await serving.serve(app, host=host, port=port, handler_cancellation=True)
        self.host = host

    async def close(self) -> None:
        if self.database is not None:
            await self.database.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @web.middleware
    async def _site_header(self, request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            response: web.StreamResponse = await handler(request)
        except web.HTTPException as exc:
            response = exc
        response.headers["X-Lab-Site"] = self.site
        return response

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        host = (request.host or "").split(":")[0].rstrip(".").lower()
        component = self.by_host.get(host) or self._drill_component(host)
        if component is None:
            return web.Response(status=404, text=f"no route for host {host!r}")
        if not component_ready(self.store, component):
            return web.Response(status=503, text=f"{component.title}: no ready endpoints on {self.site}")
        if request.path == "/lab/records":
            return await self._records(request, component)
        if request.path == "/lab/files":
            return await self._files(request, component)
        return _app_response(component, request.path, self.zone)

    def _drill_component(self, host: str) -> models.Component | None:
        """A test failover's hostname (``files.drill-3-ab12.<zone>``) routes to the app in the drill's
        namespace, as the drill's own Ingress objects would on a real cluster."""
        split = drill_naming.split_hostname(host, self.zone)
        base = self.by_host.get(f"{split[0]}.{self.zone}") if split else None
        if split is None or base is None:
            return None
        return base.model_copy(update={"namespace": drill_naming.namespace(split[1], base.namespace)})

    async def _records(self, request: web.Request, component: models.Component) -> web.Response:
        if not component.stateful:
            return web.Response(status=404, text=f"{component.name} keeps no records")
        if request.method == "GET":
            return web.json_response({"ids": list_records(self.store, component)})
        if request.method != "POST":
            return web.Response(status=405, text="GET or POST")
        try:
            doc = json.loads(await request.read())
            record_id, body = str(doc["id"]), str(doc.get("body", ""))
        except (ValueError, KeyError, TypeError):
            return web.Response(status=400, text='body must be JSON {"id": str, "body": str}')
        if not _ID.match(record_id):
            return web.Response(status=400, text="id: lowercase letters, digits, '.' and '-', at most 63")
        if self.database is not None:  # the app's database: acknowledged only once committed there
            try:
                await self.database.insert(component.name, record_id, body)
            except Exception as exc:
                return web.Response(status=503, text=f"{component.title}: database unavailable ({type(exc).__name__})")
        write_record(self.store, component, record_id, body)
        return web.json_response({"id": record_id, "site": self.site}, status=201)

    async def _files(self, request: web.Request, component: models.Component) -> web.Response:
        """A user's file, stored in the component's volume (``POST {"id", "body"}``; GET lists)."""
        claim = volumes_mod.users_claim(component)
        if self.volumes is None or claim is None or not component.stateful:
            return web.Response(status=404, text=f"{component.name} keeps no files")
        if request.method == "GET":
            return web.json_response({"ids": self.volumes.names(component.namespace, claim)})
        if request.method != "POST":
            return web.Response(status=405, text="GET or POST")
        try:
            doc = json.loads(await request.read())
            file_id, body = str(doc["id"]), str(doc.get("body", ""))
        except (ValueError, KeyError, TypeError):
            return web.Response(status=400, text='body must be JSON {"id": str, "body": str}')
        if not _ID.match(file_id):
            return web.Response(status=400, text="id: lowercase letters, digits, '.' and '-', at most 63")
        self.volumes.write_file(component.namespace, claim, file_id, body.encode())
        return web.json_response({"id": file_id, "site": self.site}, status=201)
