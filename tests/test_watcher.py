"""The watcher on real sockets: a hanging site never delays another site's probes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from failover.config import loader, runtime
from failover.health.model import CheckKind
from failover.health.watcher import Watcher
from failover.services import Services

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
async def endpoints() -> AsyncIterator[tuple[str, str]]:
    async def readyz(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/readyz", readyz)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    good = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]

    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        await asyncio.sleep(3600)

    server = await asyncio.start_server(hang, "127.0.0.1", 0)
    bad = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    yield good, bad
    server.close()
    await runner.cleanup()


def config(tmp_path: Path, good: str, bad: str) -> Path:
    (tmp_path / "workplaces").mkdir()
    (tmp_path / "workplaces" / "opendesk.yaml").write_text((REPO / "config/workplaces/opendesk.yaml").read_text())
    path = tmp_path / "c.yaml"
    path.write_text(f"""\
version: 1
workplace: {{zone: ckki.test.}}
providers: {{dns: {{kind: powerdns}}}}
dns: {{provider: dns}}
health: {{interval: 0.2, timeout: 0.5, fail_after: 2, recover_after: 1}}
sites:
  - {{name: fast, provider: dns, region: r1, role: active, kube: {{api: "{good}"}}}}
  - {{name: hanging, provider: dns, region: r2, kube: {{api: "{bad}"}}}}
""")
    return path


async def test_a_hanging_site_does_not_slow_the_others(tmp_path: Path, endpoints: tuple[str, str]) -> None:
    good, bad = endpoints
    rt = runtime.resolve(loader.load(config(tmp_path, good, bad)))
    services = Services.open(rt, store=None)
    watcher = Watcher(services, roles=lambda: {"fast": "active", "hanging": "standby"})
    watcher.start()
    try:
        await asyncio.sleep(2.0)
    finally:
        await watcher.stop()
        await services.aclose()
    fast, hanging = watcher.sites["fast"], watcher.sites["hanging"]
    assert fast.rounds >= 7, fast.rounds  # every 0.2 s, whatever the other site does
    assert hanging.rounds <= 3, hanging.rounds  # each of its rounds waits out the 0.5 s timeout
    fast_kube = next(c for c in watcher.view("fast").checks if c.kind is CheckKind.KUBE)
    hanging_kube = next(c for c in watcher.view("hanging").checks if c.kind is CheckKind.KUBE)
    assert fast_kube.passing is True
    assert hanging_kube.passing is False and hanging_kube.detail == "timed out after 0.5s"
    assert watcher.view("hanging").health.value == "down"
    assert not watcher.view("hanging").ready
