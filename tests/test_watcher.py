"""The watcher on real sockets: a hanging site never delays another site's probes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
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


def config(tmp_path: Path, good: str, bad: str, *, timeout: float = 0.5) -> Path:
    (tmp_path / "workplaces").mkdir()
    (tmp_path / "workplaces" / "opendesk.yaml").write_text((REPO / "config/workplaces/opendesk.yaml").read_text())
    path = tmp_path / "c.yaml"
    path.write_text(f"""\
version: 1
workplace: {{zone: ckki.test.}}
providers: {{dns: {{kind: powerdns}}}}
dns: {{provider: dns}}
health: {{interval: 0.2, timeout: {timeout}, fail_after: 2, recover_after: 1}}
sites:
  - {{name: fast, provider: dns, region: r1, role: active, kube: {{api: "{good}"}}}}
  - {{name: hanging, provider: dns, region: r2, kube: {{api: "{bad}"}}}}
""")
    return path


async def until(condition: Callable[[], bool]) -> None:
    while not condition():  # noqa: ASYNC110 (polling a condition of the watcher's state)
        await asyncio.sleep(0.02)


async def test_a_hanging_site_does_not_slow_the_others(tmp_path: Path, endpoints: tuple[str, str]) -> None:
    good, bad = endpoints
    # the hanging site's first round waits out a 60 s timeout; the fast site must not wait with it
    rt = runtime.resolve(loader.load(config(tmp_path, good, bad, timeout=60)))
    services = Services.open(rt, store=None)
    watcher = Watcher(services, roles=lambda: {"fast": "active", "hanging": "standby"})
    watcher.start()
    try:
        await until(lambda: watcher.sites["fast"].rounds >= 5)
        assert watcher.sites["hanging"].rounds == 0
        fast_kube = next(c for c in watcher.view("fast").checks if c.kind is CheckKind.KUBE)
        assert fast_kube.passing is True
    finally:
        await watcher.stop()
        await services.aclose()


async def test_a_hanging_site_is_down_after_its_timeouts(tmp_path: Path, endpoints: tuple[str, str]) -> None:
    good, bad = endpoints
    rt = runtime.resolve(loader.load(config(tmp_path, good, bad)))
    services = Services.open(rt, store=None)
    watcher = Watcher(services, roles=lambda: {"fast": "active", "hanging": "standby"})
    watcher.start()
    try:
        await until(lambda: any(c.kind is CheckKind.KUBE and c.passing is False
                                for c in watcher.view("hanging").checks))
    finally:
        await watcher.stop()
        await services.aclose()
    hanging_kube = next(c for c in watcher.view("hanging").checks if c.kind is CheckKind.KUBE)
    assert hanging_kube.detail == "timed out after 0.5s"
    assert watcher.view("hanging").health.value == "down"
    assert not watcher.view("hanging").ready


async def test_suspicion_mode_confirms_a_failure_within_one_interval(tmp_path: Path) -> None:
    """A failed probe is repeated every ``suspect_interval``: ``fail_after`` failures need no
    further full rounds, and the flip of the verdict wakes the controller (``changed``)."""
    async def readyz(_: web.Request) -> web.Response:
        return web.Response(status=500, text="etcd failed")

    app = web.Application()
    app.router.add_get("/readyz", readyz)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    path = config(tmp_path, url, url)
    text = path.read_text().replace("interval: 0.2,", "interval: 600, suspect_interval: 0.05, fail_window: 0.1,")
    path.write_text(text.replace("fail_after: 2", "fail_after: 3"))
    rt = runtime.resolve(loader.load(path))
    services = Services.open(rt, store=None)
    watcher = Watcher(services, roles=lambda: {"fast": "active", "hanging": "standby"})
    watcher.start()
    try:
        flipped = await watcher.wait_changed(timeout=120)
        await until(lambda: any(c.kind is CheckKind.KUBE and c.passing is False
                                for c in watcher.view("hanging").checks))
    finally:
        await watcher.stop()
        await services.aclose()
        await runner.cleanup()
    assert flipped
    state = watcher.sites["hanging"]
    assert state.rounds == 1  # one full round at start; the other two failures came from re-probes
    assert state.checks["kube"].failures >= 3


async def test_a_starved_prober_gives_no_verdict(tmp_path: Path, endpoints: tuple[str, str]) -> None:
    """A probe that times out while this process's loop is stalled is not held against the site."""
    good, bad = endpoints
    rt = runtime.resolve(loader.load(config(tmp_path, good, bad)))
    services = Services.open(rt, store=None)
    watcher = Watcher(services, roles=lambda: {"fast": "active", "hanging": "standby"})
    monitor = asyncio.create_task(watcher.lag.run())

    async def starve() -> None:
        await asyncio.sleep(0.1)
        time.sleep(0.4)  # noqa: ASYNC251 (the fault: no CPU for this process while the probe waits)

    try:
        await asyncio.gather(watcher.round("hanging"), starve())
        await watcher.round("fast")  # not starved: judged as usual
    finally:
        monitor.cancel()
        await services.aclose()
    assert watcher.overloaded >= 1
    assert watcher.sites["hanging"].checks["kube"].failures == 0
    assert watcher.sites["fast"].checks["kube"].passing is True
