"""The shared provider HTTP client against a real loopback server: the error mapping in one place."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import httpx
import pytest
from aiohttp import web

from failover.core import errors, http


class Tokens:
    """An authenticator that issues a new token each time it is asked to refresh."""

    def __init__(self) -> None:
        self.issued = 0

    async def headers(self, client: httpx.AsyncClient, *, refresh: bool = False) -> dict[str, str]:
        if refresh or self.issued == 0:
            self.issued += 1
        return {"Authorization": f"Bearer token-number-{self.issued}"}


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, dict[str, list[int]]]]:
    plan: dict[str, list[int]] = {}

    async def handler(request: web.Request) -> web.StreamResponse:
        codes = plan.setdefault(request.path, [])
        code = codes.pop(0) if codes else 200
        if request.path == "/auth" and request.headers.get("Authorization") != "Bearer token-number-2":
            code = 401
        if code == 429:
            return web.json_response({"message": "slow down"}, status=429, headers={"Retry-After": "1"})
        if code == 299:
            return web.Response(body=b"{not json", content_type="application/json")
        return web.json_response({"httpStatus": code, "messages": [{"errorCode": "X", "message": f"m{code}"}]}
                                 if code >= 400 else {"ok": True}, status=code)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}", plan
    await runner.cleanup()


async def test_5xx_twice_then_success_is_retried(server: tuple[str, dict[str, list[int]]]) -> None:
    url, plan = server
    plan["/x"] = [503, 502]
    client = http.ApiClient(base_url=url, service="svc", attempts=4, max_delay=0.1)
    assert await client.json("GET", "/x") == {"ok": True}
    await client.aclose()


async def test_429_honours_retry_after(server: tuple[str, dict[str, list[int]]]) -> None:
    url, plan = server
    plan["/x"] = [429]
    client = http.ApiClient(base_url=url, service="svc", attempts=2, max_delay=5)
    t0 = time.monotonic()
    assert await client.json("GET", "/x") == {"ok": True}
    assert time.monotonic() - t0 >= 0.95
    await client.aclose()


async def test_401_reauthenticates_once(server: tuple[str, dict[str, list[int]]]) -> None:
    url, _ = server
    tokens = Tokens()
    client = http.ApiClient(base_url=url, service="svc", auth=tokens)
    assert await client.json("GET", "/auth") == {"ok": True}
    assert tokens.issued == 2
    await client.aclose()


async def test_permanent_4xx_is_not_retried_and_names_the_vendor_message(
        server: tuple[str, dict[str, list[int]]]) -> None:
    url, plan = server
    plan["/x"] = [403, 200]
    client = http.ApiClient(base_url=url, service="svc", attempts=4)
    with pytest.raises(http.ApiError) as info:
        await client.json("GET", "/x")
    assert info.value.status == 403 and "m403" in str(info.value)
    assert plan["/x"] == [200]  # the second answer was never requested
    plan["/y"] = [404]
    with pytest.raises(http.NotFoundError):
        await client.json("GET", "/y")
    await client.aclose()


async def test_malformed_json_and_refused_connection(server: tuple[str, dict[str, list[int]]]) -> None:
    url, plan = server
    plan["/x"] = [299]
    client = http.ApiClient(base_url=url, service="svc")
    with pytest.raises(errors.ProtocolError):
        await client.json("GET", "/x")
    await client.aclose()
    dead = http.ApiClient(base_url="http://127.0.0.1:9", service="dead", attempts=2, max_delay=0.05)
    with pytest.raises(errors.TemporaryError):
        await dead.json("GET", "/x")
    await dead.aclose()


def test_retry_after_parsing() -> None:
    assert http.parse_retry_after("3") == 3.0
    assert http.parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert http.parse_retry_after("soon") is None
