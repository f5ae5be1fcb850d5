"""Serving an aiohttp application on loopback: the emulators, the lab's ingress and control API,
and the Kubernetes API emulator all start the same way (port 0 = a free port, no access log)."""

from __future__ import annotations

import ssl
from typing import Any

from aiohttp import web


async def serve(app: web.Application, *, host: str, port: int = 0, ssl_context: ssl.SSLContext | None = None,
                **runner_options: Any) -> tuple[web.AppRunner, int]:
    """Start ``app`` on ``host:port`` (TLS with ``ssl_context``); return the runner (``await
    runner.cleanup()`` stops it) and the port actually bound."""
    runner = web.AppRunner(app, access_log=None, **runner_options)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port, ssl_context=ssl_context).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner, int(runner.addresses[0][1])
