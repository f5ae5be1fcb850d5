"""Keystone v3 token authentication, shared by the providers built on OpenStack identity.

Open Telekom Cloud's IAM (password, project-scoped) and SCS clouds (application credentials,
with the service catalog) speak the same protocol: ``POST /v3/auth/tokens`` answers with the
token in ``X-Subject-Token`` and ``expires_at``, the project and the catalog in the body. The
token is registered for redaction the moment it arrives and renewed shortly before it expires.

Concurrent requests rejected with the same expired token share **one** re-authentication: a
request asks for a fresh token only if the token it was handed is still the newest one.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx

from failover.core import errors, http, secrets

logger = logging.getLogger(__name__)

#: which token (by issue count) each task was handed, per authenticator
_handed_out: contextvars.ContextVar[dict[int, int]] = contextvars.ContextVar(
    "keystone_handed_out", default={})  # noqa: B039 - never mutated, always replaced


class KeystoneAuth:
    """An :class:`failover.core.http.Authenticator` holding one Keystone token (and its catalog)."""

    MARGIN = 300.0  #: renew this many seconds before ``expires_at``

    def __init__(self, *, client: http.ApiClient, identity: Callable[[], dict[str, Any]], service: str,
                 scope: dict[str, Any] | None = None, interface: str = "public") -> None:
        """``identity`` builds the request's ``auth.identity`` (reading the secrets each time);
        ``scope`` is the optional ``auth.scope``; ``interface`` selects catalog endpoints."""
        self._client, self._identity, self._service = client, identity, service
        self._scope, self._interface = scope, interface
        self._token: str | None = None
        self._expires = 0.0
        self._project_id: str | None = None
        self._catalog: list[dict[str, Any]] = []
        self._lock = asyncio.Lock()
        self.issued = 0  #: tokens obtained so far (for tests and metrics)

    def __repr__(self) -> str:
        return f"KeystoneAuth({self._service}, cached={self._token is not None})"

    async def headers(self, client: httpx.AsyncClient, *, refresh: bool = False) -> dict[str, str]:
        return {"X-Auth-Token": await self._get(refresh=refresh)}

    async def project_id(self) -> str:
        """The id of the project the token is scoped to."""
        await self._get(refresh=False)
        if self._project_id is None:
            raise errors.ProtocolError(f"{self._service}: the token is not scoped to a project")
        return self._project_id

    async def endpoint(self, service_type: str, *, region: str | None) -> str | None:
        """The catalog URL of ``service_type`` on this interface (in ``region`` when given)."""
        await self._get(refresh=False)
        for service in self._catalog:
            if service.get("type") != service_type:
                continue
            for ep in service.get("endpoints") or []:
                if not isinstance(ep, dict) or ep.get("interface") != self._interface:
                    continue
                if region is None or region in (ep.get("region_id"), ep.get("region")):
                    return str(ep["url"])
        return None

    async def _get(self, *, refresh: bool) -> str:
        async with self._lock:
            handed = _handed_out.get().get(id(self))
            stale = refresh and (handed is None or handed == self.issued)
            if stale or self._token is None or time.time() >= self._expires - self.MARGIN:
                await self._issue()
            assert self._token is not None
            _handed_out.set({**_handed_out.get(), id(self): self.issued})
            return self._token

    async def _issue(self) -> None:
        body: dict[str, Any] = {"auth": {"identity": self._identity()}}
        if self._scope is not None:
            body["auth"]["scope"] = self._scope
        path = "/auth/tokens" if self._client.http.base_url.path.rstrip("/").endswith("/v3") else "/v3/auth/tokens"
        response = await self._client.request("POST", path, json=body, ok=(201, 200))
        token = response.headers.get("X-Subject-Token", "")
        secrets.register(token)
        try:
            doc = response.json()["token"]
            expires = datetime.fromisoformat(str(doc["expires_at"]).replace("Z", "+00:00")).timestamp()
            project = doc.get("project")
            project_id = str(project["id"]) if isinstance(project, dict) and "id" in project else None
            catalog = [c for c in doc.get("catalog") or [] if isinstance(c, dict)]
        except (ValueError, KeyError, TypeError) as exc:
            raise errors.ProtocolError(f"{self._service}: token answer lacks a field ({type(exc).__name__})") \
                from None
        if not token:
            raise errors.ProtocolError(f"{self._service}: token answer has no X-Subject-Token header")
        self._token, self._expires, self._project_id, self._catalog = token, expires, project_id, catalog
        self.issued += 1
        logger.debug("%s: token issued, valid until %s, %d catalog services", self._service,
                     doc["expires_at"], len(catalog))
