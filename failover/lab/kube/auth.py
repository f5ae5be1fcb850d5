"""Authentication of the lab's Kubernetes APIs, as a real API server does it.

A request is admitted with a known bearer token or with a client certificate of the lab CA (verified
by the TLS layer; the user is the certificate's ``CN``). Anything else gets **401** with a
``Status`` body. Every admitted request is recorded as (user, verb, group, resource, subresource,
namespace) in a set when a recorder is attached, so a lab run can be turned into the RBAC it needed.
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

UNAUTHORIZED = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "Unauthorized", "reason": "Unauthorized", "code": 401}
VERBS = {"GET": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


@dataclass(frozen=True)
class Access:
    """One admitted request in RBAC terms."""

    user: str
    verb: str
    group: str
    resource: str
    subresource: str
    namespace: str
    non_resource: str = ""  #: the path of a non-resource URL (``/readyz``)


@dataclass
class Authenticator:
    """The tokens a lab API accepts (token -> user), plus client certificates of the lab CA."""

    tokens: dict[str, str] = field(default_factory=dict)
    records: set[Access] | None = None  #: when set, every admitted request is added (in RBAC terms)

    def user_of(self, request: web.Request) -> str | None:
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            return self.tokens.get(header.removeprefix("Bearer ").strip())
        transport = request.transport
        ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
        if isinstance(ssl_object, ssl.SSLObject):
            peer: Any = ssl_object.getpeercert() or {}
            for rdn in peer.get("subject", ()):
                for key, value in rdn:
                    if key == "commonName":
                        return str(value)
        return None

    def middleware(self) -> Callable[..., Awaitable[web.StreamResponse]]:
        @web.middleware
        async def authenticate(request: web.Request,
                               handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
            user = self.user_of(request)
            if user is None:
                return web.json_response(UNAUTHORIZED, status=401)
            if self.records is not None:
                self.records.add(access(user, request))
            return await handler(request)

        return authenticate


def access(user: str, request: web.Request) -> Access:
    """The RBAC view of a request path (``/api/v1/namespaces/ns/pods/p/log`` -> pods/log in ns)."""
    parts = [p for p in request.path.split("/") if p]
    verb = VERBS.get(request.method, request.method.lower())
    group, rest = "", parts
    if parts[:1] == ["api"]:
        rest = parts[2:]
    elif parts[:1] == ["apis"]:
        group, rest = (parts[1] if len(parts) > 1 else ""), parts[3:]
    else:  # /readyz, /version: non-resource URLs
        return Access(user, verb, "", "", "", "", request.path)
    namespace = ""
    if len(rest) >= 2 and rest[0] == "namespaces" and len(rest) > 2:
        namespace, rest = rest[1], rest[2:]
    resource = rest[0] if rest else ""
    name = rest[1] if len(rest) > 1 else ""
    subresource = rest[2] if len(rest) > 2 else ""
    if verb == "get" and not name:
        verb = "watch" if request.query.get("watch") in ("1", "true") else "list"
    return Access(user, verb, group, resource, subresource, namespace)
