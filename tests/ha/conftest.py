"""A real three-member etcd cluster, started once per test session (about a second) and shared:
each test works under its own key prefix, so tests never see each other's leader or runs."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from failover.lab import etcd as lab_etcd
from failover.store.etcd import EtcdStore


@pytest.fixture(scope="session")
def etcd_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[lab_etcd.EtcdCluster]:
    directory: Path = tmp_path_factory.mktemp("etcd")
    cluster = asyncio.run(lab_etcd.start_cluster(directory, token=f"test-{uuid.uuid4().hex[:8]}"))
    yield cluster
    cluster.close_sync()


@pytest.fixture
def prefix() -> str:
    return f"/test-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def etcd_store(etcd_cluster: lab_etcd.EtcdCluster, prefix: str) -> Iterator[Callable[..., EtcdStore]]:
    opened: list[EtcdStore] = []

    def open_store(endpoints: list[str] | None = None, **kw: object) -> EtcdStore:
        store = EtcdStore(endpoints or etcd_cluster.endpoints, prefix=prefix, **kw)  # type: ignore[arg-type]
        opened.append(store)
        return store

    yield open_store
    for store in opened:
        store.close()
