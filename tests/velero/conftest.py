"""Fixtures for the Velero tests: real ``moto_server`` processes, one per simulated provider."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable

import pytest
import pytest_asyncio
from pydantic import SecretStr

from failover import s3
from failover.lab.motoserver import MotoServer, start_moto_server

_counter = itertools.count()


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def moto_a() -> AsyncIterator[MotoServer]:
    server = await start_moto_server()
    yield server
    await server.stop()


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def moto_b() -> AsyncIterator[MotoServer]:
    server = await start_moto_server()
    yield server
    await server.stop()


def location(server: MotoServer, *, prefix: str = "", bucket: str | None = None) -> s3.S3Location:
    """A fresh bucket name per call so tests sharing a server never see each other's objects."""
    return s3.S3Location(endpoint=server.endpoint, bucket=bucket or f"velero-{next(_counter)}",
                         access_key=SecretStr("test-access"), secret_key=SecretStr("test-secret-key-123"),
                         prefix=prefix)


MakeLocation = Callable[..., s3.S3Location]


@pytest.fixture
def make_location() -> MakeLocation:
    """``make_location(server, prefix=..., bucket=...)``: an S3Location on that server."""
    return location


@pytest_asyncio.fixture(loop_scope="session", scope="session")
async def moto_pair(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[MotoServer, MotoServer]]:
    """Two isolated 'providers' for the whole session (replication tests use fresh buckets)."""
    logs = tmp_path_factory.mktemp("moto-pair")
    a = await start_moto_server(log_path=logs / "a.log")
    b = await start_moto_server(log_path=logs / "b.log")
    yield a, b
    await a.stop()
    await b.stop()


async def fresh_locations(pair: tuple[MotoServer, MotoServer], *, dst_prefix: str = "standby"
                          ) -> tuple[s3.S3Location, s3.S3Location]:
    """A new source bucket on the first server and a new standby bucket (with prefix) on the second."""
    src, dst = location(pair[0]), location(pair[1], prefix=dst_prefix)
    await s3.ensure_bucket(src)
    await s3.ensure_bucket(dst)
    return src, dst
