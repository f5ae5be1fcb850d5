"""One ``moto_server`` process per simulated cloud provider's object storage.

moto's ``ThreadedMotoServer`` instances inside one Python process share their backend state (a
bucket created through one is listed by the other), which would silently make two "providers"
one storage and hide every replication bug. Separate processes are isolated, so the lab spawns
``moto_server`` from the active virtualenv, sends werkzeug's one-line-per-request access log to a
file instead of the terminal, and stops the process deterministically (terminate, wait, kill).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from failover.core import errors

START_TIMEOUT = 30.0
STOP_TIMEOUT = 5.0


def _executable() -> str:
    candidate = Path(sys.executable).parent / "moto_server"
    if candidate.exists():
        return str(candidate)
    raise errors.PermanentError(f"moto_server not found next to {sys.executable}; install moto[server]")


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _tail(path: Path | None, lines: int = 20) -> str:
    if path is None or not path.exists():
        return ""
    return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])


@dataclass
class MotoServer:
    """A running ``moto_server`` process."""

    host: str
    port: int
    process: asyncio.subprocess.Process
    log_path: Path | None = None
    _stopped: bool = field(default=False, repr=False)

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    async def stop(self, *, timeout: float = STOP_TIMEOUT) -> None:
        """Terminate the process, kill it after ``timeout`` s, and reap it (idempotent)."""
        if self._stopped:
            return
        self._stopped = True
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), timeout)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.process.kill()
                await self.process.wait()


async def _answers(host: str, port: int) -> bool:
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 1.0)
    except (OSError, TimeoutError):
        return False
    try:
        writer.write(f"GET /moto-api/ HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), 2.0)
        return line.startswith(b"HTTP/")
    except (OSError, TimeoutError):
        return False
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def start_moto_server(*, host: str = "127.0.0.1", port: int = 0, log_path: Path | None = None,
                            on_spawn: Callable[[int], None] | None = None) -> MotoServer:
    """Spawn ``moto_server -H host -p port`` (a free port if 0) and wait until it answers HTTP.

    ``on_spawn`` gets the PID as soon as the process exists, *before* it serves, so whoever keeps
    the lab's PID records can stop it even if this process is killed while waiting.

    Raises PermanentError with the log tail if the process exits or does not answer within 30 s.
    """
    chosen = port or _free_port(host)
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
    out = open(log_path, "ab") if log_path is not None else None  # the child inherits it
    try:
        process = await asyncio.create_subprocess_exec(
            _executable(), "-H", host, "-p", str(chosen),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out if out is not None else asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    finally:
        if out is not None:
            out.close()  # the child holds its own descriptor
    if on_spawn is not None:
        on_spawn(process.pid)
    server = MotoServer(host=host, port=chosen, process=process, log_path=log_path)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.returncode is not None:
            break
        if await _answers(host, chosen):
            return server
        await asyncio.sleep(0.05)
    code = process.returncode
    await server.stop()
    reason = f"exited with {code}" if code is not None else f"did not answer within {START_TIMEOUT:.0f}s"
    raise errors.PermanentError(f"moto_server on {host}:{chosen} {reason}\n{_tail(log_path)}".rstrip())
