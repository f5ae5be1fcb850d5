"""The fault proxy's modes, seen from a client on a real socket."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from failover.lab.proxy import FaultProxy, ProxyMode


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(1024):
        writer.write(data)
        await writer.drain()
    writer.close()


@pytest.fixture
async def proxy() -> AsyncIterator[FaultProxy]:
    server = await asyncio.start_server(_echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    p = FaultProxy(target_host="127.0.0.1", target_port=port, slow_latency=0.3, name="test")
    await p.start()
    yield p
    await p.close()
    server.close()
    await server.wait_closed()


async def _roundtrip(port: int, payload: bytes = b"ping", timeout: float = 2.0) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(payload)
        await writer.drain()
        return await asyncio.wait_for(reader.readexactly(len(payload)), timeout)
    finally:
        writer.close()


async def test_pass_forwards(proxy: FaultProxy) -> None:
    assert await _roundtrip(proxy.port) == b"ping"


async def test_down_refuses_and_heal_reopens_same_port(proxy: FaultProxy) -> None:
    port = proxy.port
    await proxy.set_mode(ProxyMode.DOWN)
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", port)
    await proxy.set_mode(ProxyMode.PASS)
    assert proxy.port == port
    assert await _roundtrip(port) == b"ping"


async def test_down_resets_open_connections(proxy: FaultProxy) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(b"a")
    assert await reader.readexactly(1) == b"a"
    await proxy.set_mode(ProxyMode.DOWN)
    data = await asyncio.wait_for(reader.read(10), 2.0)
    assert data == b""
    writer.close()


async def test_blackhole_accepts_but_never_answers(proxy: FaultProxy) -> None:
    await proxy.set_mode(ProxyMode.BLACKHOLE)
    with pytest.raises(TimeoutError):
        await _roundtrip(proxy.port, timeout=0.3)


async def test_slow_adds_latency(proxy: FaultProxy) -> None:
    await proxy.set_mode("slow")
    started = time.monotonic()
    assert await _roundtrip(proxy.port) == b"ping"
    assert time.monotonic() - started >= 0.3
    await proxy.set_mode("pass")
    started = time.monotonic()
    await _roundtrip(proxy.port)
    assert time.monotonic() - started < 0.2
