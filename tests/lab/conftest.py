"""Lab fixtures: a running Kubernetes API emulator and a kubernetes-asyncio client bound to it.

Other lab tests reuse these instead of starting their own cluster, so every test talks to the
emulator over a real loopback socket exactly as the failover daemon does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from kubernetes_asyncio import client

from failover.lab.kube.cluster import Cluster

READY_DELAY = 0.05  # workloads become ready this fast in tests


@pytest.fixture
async def kube() -> AsyncIterator[Cluster]:
    """A started lab cluster (store + HTTP API + workload controller), closed after the test."""
    cluster = await Cluster.start(name="test", ready_delay=READY_DELAY)
    try:
        yield cluster
    finally:
        await cluster.close()


@pytest.fixture
async def kube_client(kube: Cluster) -> AsyncIterator[client.ApiClient]:
    """A kubernetes-asyncio ApiClient for :func:`kube`, configured as ``Configuration(host=url)``."""
    config = client.Configuration(host=kube.api.url)
    async with client.ApiClient(config) as api_client:
        yield api_client
