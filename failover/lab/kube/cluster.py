"""One lab site's cluster: the store, its HTTP API and the workload controller, started together."""

from __future__ import annotations

import ssl

from failover.lab.kube.auth import Authenticator
from failover.lab.kube.server import KubeApiServer, start_kube_api
from failover.lab.kube.store import MemoryStore
from failover.lab.kube.workloads import WorkloadController


class Cluster:
    def __init__(
        self, *, name: str, store: MemoryStore, api: KubeApiServer, workloads: WorkloadController
    ) -> None:
        self.name, self.store, self.api, self.workloads = name, store, api, workloads

    @classmethod
    async def start(
        cls, *, name: str, host: str = "127.0.0.1", port: int = 0, ready_delay: float = 1.0,
        tls: ssl.SSLContext | None = None, auth: Authenticator | None = None,
    ) -> Cluster:
        store = MemoryStore()
        workloads = WorkloadController(store, ready_delay=ready_delay)
        await workloads.start()
        try:
            api = await start_kube_api(store, host=host, port=port, tls=tls, auth=auth)
        except BaseException:
            await workloads.stop()
            raise
        return cls(name=name, store=store, api=api, workloads=workloads)

    async def close(self) -> None:
        """Idempotent: open watches end, the port is released, reconcilers stop."""
        await self.api.close()
        await self.workloads.stop()
