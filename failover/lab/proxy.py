"""A TCP fault proxy: the lab's way of breaking a network path without touching the parts behind it.

Every reachable part of a lab site (kube API, ingress, the provider's S3 and API) sits behind one
of these, so a fault is what a client would really see on the wire, not a flag the client checks:

* ``pass`` — bytes are forwarded both ways;
* ``down`` — the listener is closed: new connections are **refused**, open ones are reset;
* ``blackhole`` — connections are accepted and read, but nothing is ever answered (a client only
  notices through its own timeout); open connections are dropped when the mode is entered, so
  keep-alive clients cannot slip past the fault;
* ``slow`` — every chunk a client sends waits ``slow_latency`` seconds before it is forwarded.

Switching back to ``pass`` re-opens the listener on the same address and port.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from enum import StrEnum

from failover.core import tasks

logger = logging.getLogger(__name__)

_CHUNK = 65536
_CONNECT_TIMEOUT = 5.0


class ProxyMode(StrEnum):
    PASS = "pass"  #: forward bytes unchanged
    DOWN = "down"  #: listener closed: connection refused
    BLACKHOLE = "blackhole"  #: accept and read, never answer
    SLOW = "slow"  #: delay every client chunk by the slow latency


class FaultProxy:
    """Forward ``listen_host:listen_port`` to ``target_host:target_port`` with a switchable fault."""

    def __init__(
        self,
        *,
        target_host: str,
        target_port: int,
        listen_host: str = "127.0.0.1",
        listen_port: int = 0,
        slow_latency: float = 5.0,
        name: str = "proxy",
    ) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.host = listen_host
        self.port = listen_port
        self.slow_latency = slow_latency
        self.name = name
        self.mode = ProxyMode.PASS
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._pipes: set[asyncio.Task[None]] = set()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        """Listen (port 0 picks a free port, kept across down/pass switches)."""
        if self._server is None and self.mode is not ProxyMode.DOWN:
            self._server = await asyncio.start_server(
                self._accept, self.host, self.port, reuse_address=True, family=socket.AF_INET)
            self.port = int(self._server.sockets[0].getsockname()[1])

    async def set_mode(self, mode: ProxyMode | str) -> None:
        """Switch the fault; entering ``down`` or ``blackhole`` drops every open connection."""
        mode = ProxyMode(mode)
        if mode is self.mode:
            return
        previous, self.mode = self.mode, mode
        logger.info("%s: %s -> %s", self.name, previous.value, mode.value)
        if mode in (ProxyMode.DOWN, ProxyMode.BLACKHOLE):
            await self._drop_connections()
        if mode is ProxyMode.DOWN:
            await self._stop_listening()
        elif self._server is None:
            await self.start()

    async def close(self) -> None:
        await self._stop_listening()
        await self._drop_connections()

    async def _stop_listening(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), timeout=1.0)

    async def _drop_connections(self) -> None:
        for writer in list(self._writers):
            _abort(writer)
        self._writers.clear()
        pipes = list(self._pipes)
        await tasks.cancel_and_wait(*pipes, timeout=2.0)

    def _track(self, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.mode is ProxyMode.DOWN:
            _abort(writer)
            return
        self._track(writer)
        task = asyncio.current_task()
        assert task is not None
        self._pipes.add(task)
        try:
            if self.mode is ProxyMode.BLACKHOLE:
                await _swallow(reader)
                return
            await self._forward(reader, writer)
        except (asyncio.CancelledError, ConnectionError, OSError):
            pass
        finally:
            self._pipes.discard(task)
            self._writers.discard(writer)
            _abort(writer)

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection(self.target_host, self.target_port), timeout=_CONNECT_TIMEOUT)
        except (OSError, TimeoutError):
            return
        self._track(up_writer)
        try:
            upstream = tasks.create_guarded_task(
                self._pipe(up_reader, writer, delay=False), name=f"{self.name} upstream pipe")
            try:
                await self._pipe(reader, up_writer, delay=True)
                await upstream
            finally:
                upstream.cancel()
        finally:
            self._writers.discard(up_writer)
            _abort(up_writer)

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, *, delay: bool) -> None:
        try:
            while True:
                data = await src.read(_CHUNK)
                if not data:
                    break
                if self.mode is ProxyMode.BLACKHOLE:
                    return
                if delay and self.mode is ProxyMode.SLOW:
                    await asyncio.sleep(self.slow_latency)
                dst.write(data)
                await dst.drain()
        except (ConnectionError, OSError):
            return
        with contextlib.suppress(OSError, RuntimeError):
            if dst.can_write_eof():
                dst.write_eof()


async def _swallow(reader: asyncio.StreamReader) -> None:
    while await reader.read(_CHUNK):
        pass
    await asyncio.Event().wait()  # keep the connection open without answering


def _abort(writer: asyncio.StreamWriter) -> None:
    transport = writer.transport
    if not transport.is_closing():
        transport.abort()
