"""A small Kubernetes API client for what the failover needs: objects, Velero CRs, /scale, readiness.

It is built on :class:`failover.core.http.ApiClient` so that a site's Kubernetes API fails exactly like
a provider API does (timeouts and 5xx are temporary, 404 is ``NotFoundError``, 409 an
``ApiError`` with status 409). Restores and DNS are long, the calls here are short: default
timeout 5 s, retried on temporary failures. kubernetes-asyncio's typed clients are used by the
lab's conformance tests; the engine needs only these few verbs, with our error mapping.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from failover.core import http
from failover.core import kubetypes as kt

KubeObject = dict[str, Any]


class _BearerAuth:
    def __init__(self, token: str) -> None:
        self._headers = {"Authorization": f"Bearer {token}"}

    async def headers(self, client: httpx.AsyncClient, *, refresh: bool = False) -> dict[str, str]:
        return self._headers


def resource_path(rt: kt.ResourceType, namespace: str | None = None, name: str | None = None,
                  subresource: str | None = None) -> str:
    base = f"/api/{rt.version}" if not rt.group else f"/apis/{rt.group}/{rt.version}"
    if rt.namespaced and namespace:
        base += f"/namespaces/{namespace}"
    base += f"/{rt.plural}"
    if name:
        base += f"/{name}"
        if subresource:
            base += f"/{subresource}"
    return base


def workload_ready(obj: KubeObject) -> bool:
    """A Deployment/StatefulSet is ready when every wanted replica is ready and observed."""
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    wanted = int(spec.get("replicas", 1))
    ready = int(status.get("readyReplicas") or 0)
    observed = int(status.get("observedGeneration") or 0)
    generation = int((obj.get("metadata") or {}).get("generation") or 0)
    return ready >= wanted and observed >= generation


class KubeClient:
    """One site's Kubernetes API."""

    def __init__(self, *, base_url: str, site: str, token: str | None = None, timeout: float = 5.0,
                 attempts: int = 3, verify: bool = True) -> None:
        self.site = site
        self._api = http.ApiClient(base_url=base_url, service=f"kubernetes API of {site}",
                                   auth=_BearerAuth(token) if token else None, timeout=timeout,
                                   attempts=attempts, max_delay=2.0, verify=verify)

    async def aclose(self) -> None:
        await self._api.aclose()

    async def readyz(self) -> None:
        """Raise TemporaryError unless the API server answers ``/readyz`` with 200."""
        await self._api.request("GET", "/readyz")

    async def get(self, rt: kt.ResourceType, namespace: str | None, name: str) -> KubeObject | None:
        try:
            obj: KubeObject = await self._api.json("GET", resource_path(rt, namespace, name))
        except http.NotFoundError:
            return None
        return obj

    async def list(self, rt: kt.ResourceType, namespace: str | None = None, *,
                   label_selector: str | None = None) -> list[KubeObject]:
        params = {"labelSelector": label_selector} if label_selector else None
        body = await self._api.json("GET", resource_path(rt, namespace), params=params)
        items: list[KubeObject] = list((body or {}).get("items") or [])
        return items

    async def create(self, rt: kt.ResourceType, obj: KubeObject) -> KubeObject:
        namespace = (obj.get("metadata") or {}).get("namespace")
        created: KubeObject = await self._api.json("POST", resource_path(rt, namespace), json=obj)
        return created

    async def ensure(self, rt: kt.ResourceType, obj: KubeObject) -> tuple[KubeObject, bool]:
        """Create ``obj`` unless an object of that name exists; returns (object, created)."""
        meta = obj.get("metadata") or {}
        try:
            return await self.create(rt, obj), True
        except http.ApiError as exc:
            if exc.status != 409:
                raise
        existing = await self.get(rt, meta.get("namespace"), str(meta["name"]))
        if existing is None:  # deleted in between: try once more
            return await self.create(rt, obj), True
        return existing, False

    async def patch(self, rt: kt.ResourceType, namespace: str | None, name: str, patch: KubeObject, *,
                    subresource: str | None = None) -> KubeObject:
        result: KubeObject = await self._api.json(
            "PATCH", resource_path(rt, namespace, name, subresource), content=_dumps(patch),
            headers={"Content-Type": "application/merge-patch+json"})
        return result

    async def scale(self, rt: kt.ResourceType, namespace: str, name: str, replicas: int) -> None:
        await self.patch(rt, namespace, name, {"spec": {"replicas": replicas}}, subresource="scale")

    async def delete(self, rt: kt.ResourceType, namespace: str | None, name: str) -> bool:
        try:
            await self._api.request("DELETE", resource_path(rt, namespace, name))
        except http.NotFoundError:
            return False
        return True


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj).encode()
