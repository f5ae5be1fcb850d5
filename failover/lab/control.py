"""The supervisor's control API: how ``failover lab status|break|heal`` and tests steer the lab.

The lab's parts live inside the supervisor process, so faults are injected there; this small
aiohttp API (loopback only, its URL in ``runtime.json``) is the one way in. Routes:

=========================================  ============================================
``GET /status``                            the ``lab status --json`` document (live faults)
``POST /sites/{site}/break`` ``{"mode"}``  add a fault; answers the site's faults
``POST /sites/{site}/heal``                remove every fault of the site
``GET /sites/{site}/records?component=``   record ids the site's cluster holds
``POST /dns/break`` / ``POST /dns/heal``    the DNS provider's API unreachable / back
=========================================  ============================================

Unknown site → 404, a bad mode or component → 400 (with the reason).
"""

from __future__ import annotations

from typing import Any, Protocol

import httpx
from aiohttp import web

from failover.core import errors, serving

DEFAULT_TIMEOUT = 10.0


class LabWorld(Protocol):
    """What the control API drives (implemented by the supervisor's world)."""

    def status(self) -> dict[str, Any]: ...

    async def break_site(self, site: str, mode: str) -> list[str]:
        """Add fault ``mode``; KeyError for an unknown site, ValueError for a bad mode."""
        ...

    async def heal_site(self, site: str) -> list[str]: ...

    def records(self, site: str, component: str | None) -> list[str]: ...

    async def break_dns(self) -> bool:
        """Make the DNS provider's API unreachable (a DNS-provider outage; answers keep flowing)."""
        ...

    async def heal_dns(self) -> bool: ...


class ControlServer:
    def __init__(self, world: LabWorld) -> None:
        self.world = world
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self, *, host: str = "127.0.0.1", port: int = 0) -> str:
        app = web.Application(middlewares=[self._errors])
        app.router.add_get("/status", self._status)
        app.router.add_post("/sites/{site}/break", self._break)
        app.router.add_post("/sites/{site}/heal", self._heal)
        app.router.add_get("/sites/{site}/records", self._records)
        app.router.add_post("/dns/break", self._dns_break)
        app.router.add_post("/dns/heal", self._dns_heal)
        self._runner, bound = await serving.serve(app, host=host, port=port)
        self.url = f"http://{host}:{bound}"
        return self.url

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @web.middleware
    async def _errors(self, request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            response: web.StreamResponse = await handler(request)
            return response
        except KeyError as exc:
            return web.json_response({"error": f"unknown site or component: {exc.args[0]}"}, status=404)
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)

    async def _status(self, request: web.Request) -> web.Response:
        return web.json_response(self.world.status())

    async def _break(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            raise ValueError('body must be JSON {"mode": "..."}') from None
        mode = body.get("mode") if isinstance(body, dict) else None
        if not isinstance(mode, str):
            raise ValueError('body must be JSON {"mode": "..."}')
        faults = await self.world.break_site(request.match_info["site"], mode)
        return web.json_response({"site": request.match_info["site"], "faults": faults})

    async def _heal(self, request: web.Request) -> web.Response:
        faults = await self.world.heal_site(request.match_info["site"])
        return web.json_response({"site": request.match_info["site"], "faults": faults})

    async def _records(self, request: web.Request) -> web.Response:
        ids = self.world.records(request.match_info["site"], request.query.get("component"))
        return web.json_response({"site": request.match_info["site"], "ids": ids})


    async def _dns_break(self, request: web.Request) -> web.Response:
        return web.json_response({"dns_api_down": await self.world.break_dns()})

    async def _dns_heal(self, request: web.Request) -> web.Response:
        return web.json_response({"dns_api_down": await self.world.heal_dns()})


class ControlClient:
    """Client of :class:`ControlServer`; raises only :mod:`failover.core.errors` types."""

    def __init__(self, url: str, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    async def _call(self, method: str, path: str, *, json: Any = None,
                    params: dict[str, str] | None = None) -> dict[str, Any]:
        try:
            async with httpx.AsyncClient(timeout=self.timeout) as client:
                response = await client.request(method, self.url + path, json=json, params=params)
        except httpx.HTTPError as exc:
            raise errors.TemporaryError(f"lab control API {self.url}: {type(exc).__name__}") from exc
        try:
            data = response.json()
        except ValueError as exc:
            raise errors.ProtocolError(f"lab control API: {method} {path} answered non-JSON") from exc
        if response.status_code in (400, 404):
            message = str(data.get("error", response.text))
            raise errors.InputError([errors.Issue(file="lab", line=None, message=message)])
        if response.status_code != 200 or not isinstance(data, dict):
            raise errors.PermanentError(f"lab control API: {method} {path} answered {response.status_code}")
        return data

    async def status(self) -> dict[str, Any]:
        return await self._call("GET", "/status")

    async def break_site(self, site: str, mode: str) -> list[str]:
        return list((await self._call("POST", f"/sites/{site}/break", json={"mode": mode}))["faults"])

    async def heal(self, site: str) -> list[str]:
        return list((await self._call("POST", f"/sites/{site}/heal"))["faults"])

    async def records(self, site: str, component: str | None = None) -> list[str]:
        params = {"component": component} if component else None
        return [str(i) for i in (await self._call("GET", f"/sites/{site}/records", params=params))["ids"]]

    async def break_dns(self) -> bool:
        return bool((await self._call("POST", "/dns/break"))["dns_api_down"])

    async def heal_dns(self) -> bool:
        return bool((await self._call("POST", "/dns/heal"))["dns_api_down"])


# --- the fault vocabulary ----------------------------------------------------------------------

SITE_MODES = ("down", "blackhole", "slow", "api-only", "storage", "provider-api")


def parse_fault(mode: str, *, components: dict[str, bool], provider_api: bool) -> str:
    """The canonical fault string for ``mode``; ValueError says what is allowed.

    ``components`` maps component names to whether they have workloads (only those can fail).
    """
    mode = mode.strip()
    if mode.startswith("component="):
        name = mode.split("=", 1)[1]
        if not components.get(name):
            known = ", ".join(sorted(n for n, has in components.items() if has))
            raise ValueError(f"component={name}: no such component with workloads (known: {known})")
        return mode
    if mode == "provider-api" and not provider_api:
        raise ValueError("provider-api: this site's provider has no API emulator in the lab")
    if mode not in SITE_MODES:
        raise ValueError(f"unknown fault mode {mode!r}; use one of {', '.join(SITE_MODES)} or component=NAME")
    return mode
