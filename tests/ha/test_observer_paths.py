"""The lab's HA parts without the whole lab: an observer's own path to a site is cut and healed
without touching the site or the other observers; an etcd member is stopped and comes back."""

from __future__ import annotations

from pathlib import Path

import httpx
from aiohttp import web

from failover.core import serving
from failover.lab import observers


async def test_an_observer_path_and_an_etcd_member_break_and_heal(tmp_path: Path) -> None:
    async def readyz(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/readyz", readyz)
    runner, port = await serving.serve(app, host="127.0.0.1", port=0)
    coordination = await observers.Coordination.start(tmp_path / "etcd", members=3)
    try:
        site = observers.SiteTargets(name="s1", address="127.0.0.1", kube=("127.0.0.1", port),
                                     ingress=("127.0.0.1", port))
        await coordination.add_observers(("obs-a", "obs-b"), [site])
        doc = coordination.describe()
        a, b = (doc["observers"][n]["sites"]["s1"]["kube_api"] for n in ("obs-a", "obs-b"))
        assert len(doc["coordination"]["endpoints"]) == 3 and len(doc["observers"]["obs-a"]["etcd"]) == 3
        async with httpx.AsyncClient(timeout=2) as client:
            assert (await client.get(f"{a}/readyz")).text == "ok"
            assert await coordination.break_("s1", "observer=obs-a") == ["observer=obs-a"]
            try:
                await client.get(f"{a}/readyz")
                raise AssertionError("obs-a still reaches s1")
            except httpx.ConnectError:
                pass
            assert (await client.get(f"{b}/readyz")).text == "ok"  # the others still do
            await coordination.heal("s1")
            assert (await client.get(f"{a}/readyz")).text == "ok"
        await coordination.break_("etcd-2", "down")
        assert not coordination.describe()["coordination"]["members"]["etcd-2"]["running"]
        await coordination.heal("etcd-2")
        assert coordination.describe()["coordination"]["members"]["etcd-2"]["running"]
        for bad in (("etcd-9", "down"), ("s1", "observer=nobody")):
            try:
                await coordination.break_(*bad)
                raise AssertionError(f"{bad} was accepted")
            except (KeyError, ValueError):
                pass
    finally:
        await coordination.close()
        await runner.cleanup()
