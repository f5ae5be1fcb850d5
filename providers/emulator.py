"""Scaffold shared by the provider API emulators: serving, fault injection, exchange recording.

Each provider package has an ``emulator.py`` that follows the vendor's published contract; this
module gives them the common machinery so that the *vendor-specific* part is all that remains:

* :class:`EmulatorBase` serves an aiohttp app on loopback, records every request/response pair
  (:class:`Exchange`) so contract tests can validate both sides against the vendor spec, and
  applies injected :class:`Fault` s before the vendor handler runs (401, 429 + ``Retry-After``,
  503, a hang longer than the client timeout, a malformed JSON body), each rendered in the
  vendor's own error body shape via :meth:`EmulatorBase.error_body`.
* :class:`DnsBackend` is where an emulated DNS service keeps its records. Tests use
  :class:`MemoryDns`; the lab plugs in a backend that writes to the real PowerDNS, so a record
  changed through a vendor API is answered by a real DNS server.
* The lab drives the provider's view of a site through :meth:`EmulatorBase.set_cluster_health`
  (each emulator renders it in its own vocabulary: IONOS ``FAILED``, STACKIT ``STATE_UNHEALTHY``…).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from aiohttp import web

from failover.core import serving
from providers import base


class FaultKind(StrEnum):
    UNAUTHORIZED = "unauthorized"  #: 401 (token expired/revoked)
    RATE_LIMITED = "rate-limited"  #: 429 with Retry-After
    UNAVAILABLE = "unavailable"  #: 503
    HANG = "hang"  #: accept, then answer only after ``delay`` seconds
    MALFORMED = "malformed"  #: 200 with a body that is not JSON


@dataclass
class Fault:
    kind: FaultKind
    times: int = 1
    retry_after: float = 1.0
    delay: float = 30.0
    path_prefix: str = ""  #: only requests whose path starts with this are affected


@dataclass(frozen=True)
class Exchange:
    """One recorded request and its response, for contract validation."""

    method: str
    path: str
    query: dict[str, str]
    request_headers: dict[str, str]
    request_body: bytes
    status: int
    response_headers: dict[str, str]
    response_body: bytes
    received_at: float = 0.0  #: the emulator's monotonic clock when the request arrived


class DnsBackend(Protocol):
    """Where an emulated DNS service keeps record sets (names and zones with trailing dots)."""

    async def get(self, zone: str, name: str, rtype: str) -> base.DnsRecordSet | None: ...

    async def set(self, zone: str, name: str, rtype: str, values: tuple[str, ...], ttl: int) -> None: ...

    async def delete(self, zone: str, name: str, rtype: str) -> None: ...


@dataclass
class MemoryDns:
    """An in-memory :class:`DnsBackend`."""

    records: dict[tuple[str, str, str], base.DnsRecordSet] = field(default_factory=dict)

    async def get(self, zone: str, name: str, rtype: str) -> base.DnsRecordSet | None:
        return self.records.get((zone, name, rtype))

    async def set(self, zone: str, name: str, rtype: str, values: tuple[str, ...], ttl: int) -> None:
        self.records[(zone, name, rtype)] = base.DnsRecordSet(
            zone=zone, name=name, type=rtype, values=values, ttl=ttl
        )

    async def delete(self, zone: str, name: str, rtype: str) -> None:
        self.records.pop((zone, name, rtype), None)


class EmulatorBase:
    """Base class of the provider API emulators. Subclasses add routes in :meth:`routes`."""

    #: recorded exchanges kept (oldest dropped first)
    max_exchanges = 2000

    def __init__(self) -> None:
        self.faults: deque[Fault] = deque()
        self.exchanges: deque[Exchange] = deque(maxlen=self.max_exchanges)
        self.available = True  #: False: every request answers 503 (the lab's provider-api fault)
        self._runner: web.AppRunner | None = None
        self.url = ""
        self.port = 0

    # --- to override -------------------------------------------------------------------------
    def routes(self, app: web.Application) -> None:
        """Add the vendor's routes to ``app``."""
        raise NotImplementedError

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        """The vendor's error body for ``status``; override with the vendor's shape."""
        return {"code": status, "message": message}

    def set_cluster_health(self, cluster: str, health: base.ClusterState) -> None:
        """Make the emulated provider report ``cluster`` in ``health`` (its own vocabulary)."""
        raise NotImplementedError

    # --- faults --------------------------------------------------------------------------------
    def inject(self, kind: FaultKind | str, *, times: int = 1, retry_after: float = 1.0,
               delay: float = 30.0, path_prefix: str = "") -> None:
        """Queue a fault for the next ``times`` matching requests."""
        self.faults.append(Fault(FaultKind(kind), times, retry_after, delay, path_prefix))

    def clear_faults(self) -> None:
        self.faults.clear()

    def _take_fault(self, path: str) -> Fault | None:
        for fault in self.faults:
            if path.startswith(fault.path_prefix):
                fault.times -= 1
                if fault.times <= 0:
                    self.faults.remove(fault)
                return fault
        return None

    def json_error(self, status: int, message: str, *, headers: dict[str, str] | None = None) -> web.Response:
        return web.json_response(self.error_body(status, message), status=status, headers=headers)

    # --- serving -------------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._record, self._apply_faults])
        self.routes(app)
        return app

    async def start(self, *, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on ``host:port`` (0 = ephemeral); return the base URL."""
        self._runner, self.port = await serving.serve(self.app(), host=host, port=port)
        self.url = f"http://{host}:{self.port}"
        return self.url

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @web.middleware
    async def _apply_faults(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if not self.available:
            return self.json_error(503, "service unavailable")
        fault = self._take_fault(request.path)
        if fault is None:
            result: web.StreamResponse = await handler(request)
            return result
        if fault.kind is FaultKind.UNAUTHORIZED:
            return self.json_error(401, "unauthorized: token expired or invalid")
        if fault.kind is FaultKind.RATE_LIMITED:
            return self.json_error(429, "too many requests",
                                   headers={"Retry-After": str(int(fault.retry_after))})
        if fault.kind is FaultKind.UNAVAILABLE:
            return self.json_error(503, "service temporarily unavailable")
        if fault.kind is FaultKind.HANG:
            await asyncio.sleep(fault.delay)
            result = await handler(request)
            return result
        return web.Response(status=200, body=b'{"truncated": ', content_type="application/json")

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        received_at = time.monotonic()
        body = await request.read()
        response: web.StreamResponse = await handler(request)
        payload = response.body if isinstance(response, web.Response) else b""
        self.exchanges.append(Exchange(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            request_headers=dict(request.headers),
            request_body=body,
            status=response.status,
            response_headers=dict(response.headers),
            response_body=payload if isinstance(payload, bytes) else b"",
            received_at=received_at,
        ))
        return response


def read_json(body: bytes) -> Any:
    """Parse a request body; a vendor handler answers 400 on ValueError."""
    return json.loads(body.decode("utf-8")) if body else None
