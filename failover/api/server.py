"""The daemon's HTTP API (aiohttp): health, status, runs, decisions, operator actions, alerts,
metrics and the status page.

Reads are open (the status page has no secret on it); every write needs a bearer token whose
operator has the permission (:mod:`failover.api.auth`): 401 without a valid token, 403 with the
wrong role, always as ``{"error": …}``. Every answer passes :func:`failover.core.secrets.redact`.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import pydantic
from aiohttp import web

from failover.api import alerts as alerts_mod
from failover.api import auth, page
from failover.config.surface import ApiConfig
from failover.core import secrets
from failover.metrics import CONTENT_TYPE

if TYPE_CHECKING:
    from failover.api.surface import Surface

SURFACE: web.AppKey[Surface] = web.AppKey("surface")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json(data: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    body = secrets.redact(json.dumps(data, default=str))
    return web.Response(text=body, status=status, content_type="application/json", headers=headers)


def _error(status: int, message: str, **headers: str) -> web.Response:
    return _json({"error": message}, status=status, headers=headers or None)


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.content_type == "application/json":
            raise
        return _error(exc.status, exc.reason)


def _surface(request: web.Request) -> Surface:
    return request.app[SURFACE]


class Refused(Exception):
    def __init__(self, response: web.Response) -> None:
        self.response = response


def _operator(request: web.Request, permission: auth.Permission) -> auth.Operator:
    token = auth.bearer(request.headers.get("Authorization"))
    if token is None:
        raise Refused(_error(401, "a bearer token is required (Authorization: Bearer …)",
                             **{"WWW-Authenticate": "Bearer"}))
    op = _surface(request).authenticator.authenticate(token)
    if op is None:
        raise Refused(_error(401, "unknown token", **{"WWW-Authenticate": 'Bearer error="invalid_token"'}))
    if not op.may(permission):
        raise Refused(_error(403, f"operator {op.name} (roles: {', '.join(op.roles)}) may not {permission.value}"))
    return op


def _guarded(permission: auth.Permission, fn: Callable[[web.Request, auth.Operator], Awaitable[web.Response]],
             ) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        try:
            op = _operator(request, permission)
        except Refused as refused:
            return refused.response
        return await fn(request, op)
    return handler


# --- reads ---------------------------------------------------------------------------------------------

async def healthz(request: web.Request) -> web.Response:
    return _json({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    ready = _surface(request).ready()
    return _json({"ready": ready}, status=200 if ready else 503)


async def status(request: web.Request) -> web.Response:
    return _json(_surface(request).status())


def _limit(request: web.Request) -> int:
    try:
        return max(1, min(500, int(request.query.get("limit", "20"))))
    except ValueError:
        raise web.HTTPBadRequest(reason="limit must be a number") from None


async def runs(request: web.Request) -> web.Response:
    from failover import daemon as daemon_mod

    store = _surface(request).store
    return _json({"runs": [daemon_mod.run_document(store, r.id) for r in store.list_runs(limit=_limit(request))]})


async def one_run(request: web.Request) -> web.Response:
    from failover import daemon as daemon_mod

    store = _surface(request).store
    run_id = request.match_info["run"]
    if store.get_run(run_id) is None:
        return _error(404, f"no run {run_id}")
    return _json(daemon_mod.run_document(store, run_id))


async def decisions(request: web.Request) -> web.Response:
    store = _surface(request).store
    return _json({"decisions": [{"at": d.ts.isoformat(), "sentence": d.sentence, "payload": d.payload}
                                for d in store.decisions(limit=_limit(request))]})


async def metrics(request: web.Request) -> web.Response:
    body = _surface(request).metrics.render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


async def index(request: web.Request) -> web.Response:
    s = _surface(request)
    return web.Response(text=page.full(_page_parts(s), refresh_s=s.api_cfg.refresh_s if s.api_cfg else 2.0),
                        content_type="text/html")


async def fragment(request: web.Request) -> web.Response:
    return web.Response(text=page.fragment(_page_parts(_surface(request))), content_type="text/html")


async def run_page(request: web.Request) -> web.Response:
    from failover import daemon as daemon_mod

    store = _surface(request).store
    run_id = request.match_info["run"]
    if store.get_run(run_id) is None:
        return web.Response(status=404, text=page.not_found(run_id), content_type="text/html")
    return web.Response(text=page.run_page(daemon_mod.run_document(store, run_id)), content_type="text/html")


def _page_parts(s: Surface) -> page.Parts:
    from failover import daemon as daemon_mod

    store = s.store
    docs = [daemon_mod.run_document(store, r.id) for r in store.list_runs(limit=10)]
    return page.Parts(status=s.status(), runs=docs,
                      decisions=[(d.ts.isoformat(), d.sentence) for d in store.decisions(limit=10)])


# --- writes --------------------------------------------------------------------------------------------

async def approve(request: web.Request, op: auth.Operator) -> web.Response:
    store = _surface(request).store
    run_id = request.match_info["run"]
    run = store.get_run(run_id)
    if run is None:
        return _error(404, f"no run {run_id}")
    if str(run.phase) != "waiting_approval":
        return _error(409, f"run {run_id} is {run.phase}, not waiting for approval")
    store.approve_run(run_id, op.name)
    return _json({"run": run_id, "approved_by": op.name})


async def confirm_step(request: web.Request, op: auth.Operator) -> web.Response:
    store = _surface(request).store
    run_id, step = request.match_info["run"], request.match_info["step"]
    if store.get_run(run_id) is None:
        return _error(404, f"no run {run_id}")
    confirmations = store.get_state("confirmations")
    book = dict(confirmations) if isinstance(confirmations, dict) else {}
    steps = dict(book.get(run_id) or {})
    steps[step] = op.name
    book[run_id] = steps
    store.set_state("confirmations", book)
    return _json({"run": run_id, "step": step, "confirmed_by": op.name})


def _set_paused(value: bool) -> Callable[[web.Request, auth.Operator], Awaitable[web.Response]]:
    async def handler(request: web.Request, op: auth.Operator) -> web.Response:
        _surface(request).store.set_state("paused", value)
        return _json({"paused": value, "by": op.name})
    return handler


async def receive_alerts(request: web.Request, op: auth.Operator) -> web.Response:
    s = _surface(request)
    try:
        message = alerts_mod.WebhookMessage.model_validate(await request.json())
    except (ValueError, pydantic.ValidationError) as exc:
        return _error(400, f"not an Alertmanager webhook: {str(exc).splitlines()[0][:200]}")
    counts = s.alerts.receive(message)
    for key in ("firing", "resolved"):
        s.metrics.alerts_received.labels(key).inc(counts[key])
    return _json(counts)


def build_app(surface: Surface) -> web.Application:
    app = web.Application(middlewares=[_errors])
    app[SURFACE] = surface
    P = auth.Permission
    app.add_routes([
        web.get("/", index), web.get("/fragment", fragment), web.get("/runs/{run}", run_page),
        web.get("/healthz", healthz), web.get("/readyz", readyz), web.get("/metrics", metrics),
        web.get("/api/v1/status", status), web.get("/api/v1/runs", runs), web.get("/api/v1/runs/{run}", one_run),
        web.get("/api/v1/decisions", decisions),
        web.post("/api/v1/runs/{run}/approve", _guarded(P.APPROVE, approve)),
        web.post("/api/v1/runs/{run}/steps/{step}/confirm", _guarded(P.CONFIRM, confirm_step)),
        web.post("/api/v1/pause", _guarded(P.OPERATE, _set_paused(True))),
        web.post("/api/v1/resume", _guarded(P.OPERATE, _set_paused(False))),
        web.post("/api/v1/alerts", _guarded(P.ALERTS, receive_alerts)),
    ])
    return app


async def start(surface: Surface, cfg: ApiConfig) -> tuple[web.AppRunner, str]:
    """Serve the API; returns the runner (``cleanup()`` stops it) and the base URL."""
    context: ssl.SSLContext | None = None
    if cfg.tls is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cfg.tls.cert, cfg.tls.key)
    runner = web.AppRunner(build_app(surface), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, cfg.host, cfg.port, ssl_context=context).start()
    except BaseException:
        await runner.cleanup()
        raise
    port = int(runner.addresses[0][1])
    return runner, f"{'https' if context else 'http'}://{cfg.host}:{port}"
