"""The Kubernetes API over HTTP for one lab cluster, as kubernetes-asyncio's clients expect it.

Discovery (``/api``, ``/apis``, ``/api/v1``, ``/apis/<group>/<version>``), ``/version``,
``/readyz``; every resource of :data:`failover.lab.kube.types.ALL` with get, list (selectors,
``limit``/``continue``), watch (``resourceVersion``, ``timeoutSeconds``, bookmarks), create
(**201**), replace, merge/strategic/JSON patch, delete, and the ``status`` and ``scale``
subresources. Errors are ``Status`` objects with the reason and code the real server sends.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from failover.core import serving
from failover.lab.kube import patch as patching
from failover.lab.kube import types as kt
from failover.lab.kube.auth import Authenticator
from failover.lab.kube.store import MemoryStore

VERSION = {
    "major": "1",
    "minor": "31",
    "gitVersion": "v1.31.0-failover-lab",
    "platform": "linux/amd64",
    "gitCommit": "lab",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.22",
    "compiler": "gc",
}


def status_error(
    exc: kt.KubeStoreError, *, rt: kt.ResourceType | None = None, name: str | None = None
) -> web.Response:
    details: dict[str, Any] = {}
    if name:
        details["name"] = name
    if rt is not None:
        details.update({"group": rt.group} if rt.group else {}, kind=rt.plural)
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": str(exc),
        "reason": exc.reason,
        "details": details,
        "code": exc.code,
    }
    return web.json_response(body, status=exc.code)


@dataclass(frozen=True)
class Target:
    rt: kt.ResourceType
    namespace: str | None
    name: str | None
    subresource: str | None


def _by_path() -> dict[tuple[str, str, str], kt.ResourceType]:
    return {(rt.group, rt.version, rt.plural): rt for rt in kt.ALL} | {
        ("cluster.x-k8s.io", "v1beta1", rt.plural): rt
        for rt in (kt.CAPI_CLUSTERS, kt.CAPI_MACHINEDEPLOYMENTS)
    }


RESOURCES = _by_path()


def parse_target(parts: list[str]) -> Target | None:
    """``[group, version, ...rest]`` (group "" for core) → what the URL addresses."""
    group, version, rest = parts[0], parts[1], parts[2:]
    namespace = None
    if len(rest) >= 3 and rest[0] == "namespaces" and (group, version, rest[2]) in RESOURCES:
        namespace, rest = rest[1], rest[2:]
    if not rest:
        return None
    rt = RESOURCES.get((group, version, rest[0]))
    if rt is None:
        return None
    name = rest[1] if len(rest) > 1 else None
    sub = rest[2] if len(rest) > 2 else None
    if len(rest) > 3 or (sub is not None and sub not in rt.subresources):
        return None
    return Target(rt, namespace, name, sub)


def _resource_list(group: str, version: str) -> dict[str, Any]:
    resources = []
    for (g, v, _), rt in RESOURCES.items():
        if (g, v) != (group, version):
            continue
        verbs = ["create", "delete", "get", "list", "patch", "update", "watch"]
        resources.append(
            {
                "name": rt.plural,
                "singularName": rt.kind.lower(),
                "namespaced": rt.namespaced,
                "kind": rt.kind,
                "verbs": verbs,
            }
        )
        for sub in rt.subresources:
            kind = "Scale" if sub == "scale" else rt.kind
            resources.append(
                {
                    "name": f"{rt.plural}/{sub}",
                    "singularName": "",
                    "namespaced": rt.namespaced,
                    "kind": kind,
                    "verbs": ["get", "patch", "update"],
                }
            )
    gv = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}


def _groups() -> dict[str, Any]:
    groups: dict[str, list[str]] = {}
    for g, v, _ in RESOURCES:
        if g and v not in groups.setdefault(g, []):
            groups[g].append(v)
    items = [
        {
            "name": g,
            "versions": [{"groupVersion": f"{g}/{v}", "version": v} for v in vs],
            "preferredVersion": {"groupVersion": f"{g}/{vs[0]}", "version": vs[0]},
        }
        for g, vs in groups.items()
    ]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": items}


class Handler:
    def __init__(self, store: MemoryStore) -> None:
        self.store = store
        self._watch_deadlines: set[asyncio.Timeout] = set()

    def end_watches(self) -> None:
        """End every open watch now, cleanly (as ``timeoutSeconds`` would), so shutdown is prompt."""
        now = asyncio.get_running_loop().time()
        for deadline in self._watch_deadlines:
            deadline.reschedule(now)

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path.strip("/").split("/")
        if path[0] == "api" and len(path) >= 2:
            parts = ["", *path[1:]]
        elif path[0] == "apis" and len(path) >= 3:
            parts = path[1:]
        else:
            return status_error(
                kt.NotFound(f"the server could not find the requested resource ({request.path})")
            )
        if len(parts) == 2:
            listing = _resource_list(parts[0], parts[1])
            if not listing["resources"] or request.method != "GET":
                return status_error(
                    kt.NotFound(f"the server could not find the requested resource ({request.path})")
                )
            return web.json_response(listing)
        target = parse_target(parts)
        if target is None:
            return status_error(
                kt.NotFound(f"the server could not find the requested resource ({request.path})")
            )
        try:
            return await self._handle(request, target)
        except kt.KubeStoreError as exc:
            return status_error(exc, rt=target.rt, name=target.name)
        except (ValueError, TypeError) as exc:
            return status_error(_bad_request(str(exc)), rt=target.rt, name=target.name)

    async def _handle(self, request: web.Request, t: Target) -> web.StreamResponse:
        method = request.method
        if method == "GET" and t.name is None:
            if request.query.get("watch", "").lower() in ("true", "1"):
                return await self._watch(request, t)
            return self._list(request, t)
        if method == "POST" and t.name is None:
            body = await request.json()
            self._check_body(t, body, creating=True)
            if t.rt.namespaced:
                body.setdefault("metadata", {})["namespace"] = t.namespace or body["metadata"].get(
                    "namespace"
                )
            return web.json_response(self.store.create(t.rt, body), status=201)
        if t.name is None:
            raise _method_not_allowed(method)
        if method == "GET":
            obj = self.store.get(t.rt, t.namespace, t.name)
            return web.json_response(_scale(t.rt, obj) if t.subresource == "scale" else obj)
        if method == "PUT":
            body = await request.json()
            if t.subresource == "scale":
                replicas = (body.get("spec") or {}).get("replicas", 0)
                body = {"metadata": body.get("metadata", {}), "spec": {"replicas": replicas}}
            else:
                self._check_body(t, body, creating=False)
            meta = body.setdefault("metadata", {})
            meta.setdefault("name", t.name)
            if t.rt.namespaced:
                meta.setdefault("namespace", t.namespace)
            obj = self.store.update(t.rt, body, subresource=t.subresource)
            return web.json_response(_scale(t.rt, obj) if t.subresource == "scale" else obj)
        if method == "PATCH":
            return await self._patch(request, t)
        if method == "DELETE":
            await self._check_delete_preconditions(request, t)
            return web.json_response(self.store.delete(t.rt, t.namespace, t.name))
        raise _method_not_allowed(method)

    async def _patch(self, request: web.Request, t: Target) -> web.Response:
        ctype = request.headers.get("Content-Type", "").split(";")[0].strip()
        kind = {
            "application/json-patch+json": "json",
            "application/merge-patch+json": "merge",
            "application/strategic-merge-patch+json": "strategic",
            "application/apply-patch+yaml": "merge",
        }.get(ctype)
        if kind is None:
            raise _unsupported(ctype)
        patch = await request.json()
        if kind == "json" and isinstance(patch, dict):
            kind = "merge"  # CustomObjectsApi sends an object under the json-patch type; treat it as a merge
        assert t.name is not None
        if t.subresource == "scale" and kind != "json":
            patch = {"spec": {"replicas": (patch.get("spec") or {}).get("replicas")}}
            obj = self.store.patch(t.rt, t.namespace, t.name, patch, patch_type=kind)
        elif t.subresource == "scale":
            scale = _scale(t.rt, self.store.get(t.rt, t.namespace, t.name))
            new = patching.json_patch(scale, patch)
            obj = self.store.patch(t.rt, t.namespace, t.name, {"spec": {"replicas": new["spec"]["replicas"]}})
        else:
            obj = self.store.patch(
                t.rt, t.namespace, t.name, patch, patch_type=kind, subresource=t.subresource
            )
        return web.json_response(_scale(t.rt, obj) if t.subresource == "scale" else obj)

    async def _check_delete_preconditions(self, request: web.Request, t: Target) -> None:
        """A DeleteOptions body may carry ``preconditions``; a stale one is a 409 like any write."""
        if not request.can_read_body:
            return
        raw = await request.read()
        options = json.loads(raw) if raw.strip() else {}
        wanted = (options.get("preconditions") or {}) if isinstance(options, dict) else {}
        if not wanted:
            return
        assert t.name is not None
        meta = self.store.get(t.rt, t.namespace, t.name)["metadata"]
        for field in ("uid", "resourceVersion"):
            if wanted.get(field) and wanted[field] != meta.get(field):
                raise kt.Conflict(
                    f'Operation cannot be fulfilled on {t.rt.group_resource} "{t.name}": '
                    f"Precondition failed: {field} in precondition: {wanted[field]}, "
                    f"{field} in object meta: {meta.get(field)}"
                )

    def _check_body(self, t: Target, body: Any, *, creating: bool) -> None:
        if not isinstance(body, dict):
            raise kt.Invalid("the body must be an object")
        kind, api_version = body.get("kind"), body.get("apiVersion")
        if (kind and kind != t.rt.kind) or (
            api_version
            and api_version != t.rt.api_version
            and not (t.rt.group == "cluster.x-k8s.io" and str(api_version).startswith("cluster.x-k8s.io/"))
        ):
            raise kt.Invalid(
                f"the object's kind/apiVersion {kind}/{api_version} does not match "
                f"{t.rt.api_version}/{t.rt.kind}"
            )
        meta = body.get("metadata") or {}
        if not creating and meta.get("name") not in (None, t.name):
            raise kt.Invalid(f"the name of the object ({meta.get('name')}) does not match the URL ({t.name})")
        ns = meta.get("namespace")
        if t.rt.namespaced and ns and t.namespace and ns != t.namespace:
            raise _bad_request(
                "the namespace of the provided object does not match the namespace sent on the request"
            )

    def _list(self, request: web.Request, t: Target) -> web.Response:
        items, rv = self.store.list(
            t.rt,
            t.namespace,
            label_selector=request.query.get("labelSelector"),
            field_selector=request.query.get("fieldSelector"),
        )
        meta: dict[str, Any] = {"resourceVersion": rv}
        start = int(request.query.get("continue") or 0)
        limit = int(request.query.get("limit") or 0)
        if limit > 0:
            page = items[start : start + limit]
            if start + limit < len(items):
                meta["continue"] = str(start + limit)
                meta["remainingItemCount"] = len(items) - start - limit
            items = page
        return web.json_response(
            {"kind": f"{t.rt.kind}List", "apiVersion": t.rt.api_version, "metadata": meta, "items": items}
        )

    async def _watch(self, request: web.Request, t: Target) -> web.StreamResponse:
        timeout = float(request.query.get("timeoutSeconds") or 1800)
        bookmarks = request.query.get("allowWatchBookmarks", "").lower() == "true"
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)

        async def send(kind: str, obj: Any) -> None:
            await response.write(json.dumps({"type": kind, "object": obj}).encode() + b"\n")

        stream = self.store.watch(
            t.rt,
            t.namespace,
            resource_version=request.query.get("resourceVersion"),
            label_selector=request.query.get("labelSelector"),
            field_selector=request.query.get("fieldSelector"),
        )
        try:
            async with contextlib.aclosing(stream), asyncio.timeout(timeout) as deadline:
                self._watch_deadlines.add(deadline)
                try:
                    async for event in stream:
                        await send(event.type.value, event.object)
                finally:
                    self._watch_deadlines.discard(deadline)
        except TimeoutError:
            if bookmarks:
                await send(
                    "BOOKMARK",
                    {
                        "kind": t.rt.kind,
                        "apiVersion": t.rt.api_version,
                        "metadata": {"resourceVersion": self.store.resource_version},
                    },
                )
        except kt.KubeStoreError as exc:  # 410 Expired above all: the client relists
            await send(
                "ERROR",
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Failure",
                    "message": str(exc),
                    "reason": exc.reason,
                    "code": exc.code,
                },
            )
        except ConnectionResetError:
            return response
        await response.write_eof()
        return response


def _scale(rt: kt.ResourceType, obj: kt.KubeObject) -> dict[str, Any]:
    meta = obj["metadata"]
    labels = ((obj.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            k: meta[k]
            for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            if k in meta
        },
        "spec": {"replicas": int((obj.get("spec") or {}).get("replicas", 0))},
        "status": {
            "replicas": int((obj.get("status") or {}).get("replicas", 0)),
            "selector": ",".join(f"{k}={v}" for k, v in sorted(labels.items())),
        },
    }


class _Err(kt.KubeStoreError):
    pass


def _bad_request(message: str) -> kt.KubeStoreError:
    err = _Err(message)
    err.reason, err.code = "BadRequest", 400
    return err


def _method_not_allowed(method: str) -> kt.KubeStoreError:
    err = _Err(f"the server does not allow this method on the requested resource ({method})")
    err.reason, err.code = "MethodNotAllowed", 405
    return err


def _unsupported(ctype: str) -> kt.KubeStoreError:
    err = _Err(f"the body of the request was in an unknown format: {ctype}")
    err.reason, err.code = "UnsupportedMediaType", 415
    return err


HANDLER = web.AppKey("kube_handler", Handler)


def make_app(store: MemoryStore, auth: Authenticator | None = None) -> web.Application:
    handler = Handler(store)

    async def version(_: web.Request) -> web.Response:
        return web.json_response(VERSION)

    async def ok(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def api(_: web.Request) -> web.Response:
        cidrs = [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]
        return web.json_response(
            {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": cidrs}
        )

    async def apis(_: web.Request) -> web.Response:
        return web.json_response(_groups())

    app = web.Application(client_max_size=16 * 1024 * 1024,
                          middlewares=[auth.middleware()] if auth is not None else [])
    app[HANDLER] = handler
    for prefix in ("/version", "/version/"):
        app.router.add_get(prefix, version)
    for probe in ("/readyz", "/livez", "/healthz"):
        app.router.add_get(probe, ok)
    for prefix in ("/api", "/api/"):
        app.router.add_get(prefix, api)
    for prefix in ("/apis", "/apis/"):
        app.router.add_get(prefix, apis)
    app.router.add_route("*", "/api/{tail:.+}", handler.dispatch)
    app.router.add_route("*", "/apis/{tail:.+}", handler.dispatch)
    return app


class KubeApiServer:
    def __init__(self, store: MemoryStore, runner: web.AppRunner, host: str, port: int, *, tls: bool = False,
                 auth: Authenticator | None = None) -> None:
        self.store, self._runner, self.port, self.auth = store, runner, port, auth
        self.url = f"{'https' if tls else 'http'}://{host}:{port}"

    async def close(self) -> None:
        """Stop serving; open watches end cleanly first, so this takes milliseconds."""
        self._runner.app[HANDLER].end_watches()
        await asyncio.sleep(0.01)  # let the watch handlers write their last chunk
        await self._runner.cleanup()


async def start_kube_api(store: MemoryStore, *, host: str = "127.0.0.1", port: int = 0,
                         tls: ssl.SSLContext | None = None, auth: Authenticator | None = None) -> KubeApiServer:
    """Serve ``store``; with ``tls`` over HTTPS, with ``auth`` only to authenticated callers."""
    runner, bound = await serving.serve(make_app(store, auth), host=host, port=port, ssl_context=tls,
                                        shutdown_timeout=0.5)
    return KubeApiServer(store, runner, host, bound, tls=tls is not None, auth=auth)
