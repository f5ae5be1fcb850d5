"""Lab fixtures: a running Kubernetes API emulator (TLS from a lab CA, authentication required) and
a kubernetes-asyncio client bound to it through a kubeconfig, as a real cluster would hand it out.

Other lab tests reuse these instead of starting their own cluster, so every test talks to the
emulator over a real loopback socket exactly as the failover daemon does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from kubernetes_asyncio import client, config

from failover.lab.kube.cluster import Cluster
from tests.lab.kubeauth import Credentials

READY_DELAY = 0.05  # workloads become ready this fast in tests


@pytest.fixture(scope="session")
def lab_credentials(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Credentials]:
    yield Credentials(tmp_path_factory.mktemp("lab-pki"))


@pytest.fixture
async def kube(lab_credentials: Credentials) -> AsyncIterator[Cluster]:
    """A started lab cluster (store + HTTPS API + workload controller), closed after the test."""
    cluster = await Cluster.start(name="test", ready_delay=READY_DELAY, tls=lab_credentials.ca.server_context(),
                                  auth=lab_credentials.authenticator())
    try:
        yield cluster
    finally:
        await cluster.close()


@pytest.fixture
async def kube_client(kube: Cluster, lab_credentials: Credentials) -> AsyncIterator[client.ApiClient]:
    """A kubernetes-asyncio ApiClient for :func:`kube`, built from a kubeconfig (CA data + token)."""
    api_client = await config.new_client_from_config_dict(lab_credentials.kubeconfig(kube.api.url))
    async with api_client:
        yield api_client
