"""Test helper for the SCS provider tests: a running emulator, the management cluster (the
project's Kubernetes API emulator) and an adapter pointed at both.

Credentials go to files (as the lab writes them), never inline; small timeouts and poll
intervals keep fault tests fast and bounded.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from providers import base
from providers.emulator import MemoryDns
from providers.scs.adapter import ScsProvider
from providers.scs.emulator import ScsEmulator

KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
- name: ckki-scs
  cluster:
    server: https://203.0.113.20:6443
    certificate-authority-data: Q0EtREFUQQ==
users:
- name: ckki-scs-admin
  user:
    client-certificate-data: Q0VSVC1EQVRB
    client-key-data: S0VZLURBVEEtc2VjcmV0LXNjcw==
contexts:
- name: ckki-scs-admin@ckki-scs
  context:
    cluster: ckki-scs
    user: ckki-scs-admin
current-context: ckki-scs-admin@ckki-scs
"""

REF = base.ClusterRef(region="prod1", cluster="ckki-scs", project="failover-lab")
ZONE = "ckki.example."
NO_MANAGEMENT = "http://127.0.0.1:9"  # discard port: nothing answers


@dataclass
class ScsLab:
    emulator: ScsEmulator
    provider: ScsProvider
    settings: base.ProviderSettings
    dns: MemoryDns
    management: Any  # failover.lab.kube.cluster.Cluster, or None


def settings_for(emu: ScsEmulator, tmp_path: Path, *, timeout: float = 2.0,
                 **options: str) -> base.ProviderSettings:
    creds: dict[str, base.Credential] = {}
    for name, value in emu.lab_credentials().items():
        path = tmp_path / f"scs-{name}"
        path.write_text(value, encoding="utf-8")
        creds[name] = base.Credential(file=path)
    settings = emu.settings()
    opts = {**settings.options, "dns_poll_interval": "0.02", "dns_timeout": "5", "attempts": "3",
            "max_retry_delay": "2", **options}
    endpoints = {**settings.endpoints, "management": settings.endpoints["management"] or NO_MANAGEMENT}
    return settings.model_copy(update={"credentials": creds, "options": opts, "timeout": timeout,
                                       "endpoints": endpoints})


def kube_available() -> bool:
    try:
        importlib.import_module("failover.lab.kube.cluster")
    except ImportError:
        return False
    return True


@contextlib.asynccontextmanager
async def running(tmp_path: Path, *, settle_delay: float = 0.1, timeout: float = 2.0, management: bool = True,
                  **options: str) -> AsyncIterator[ScsLab]:
    dns = MemoryDns()
    cluster: Any = None
    async with contextlib.AsyncExitStack() as stack:
        if management:
            kube = importlib.import_module("failover.lab.kube.cluster")
            cluster = await kube.Cluster.start(name="scs-management")
            stack.push_async_callback(cluster.close)
        emu = ScsEmulator(dns=dns, settle_delay=settle_delay,
                          management=cluster.store if cluster is not None else None,
                          management_url=cluster.api.url if cluster is not None else "")
        await emu.start()
        stack.push_async_callback(emu.close)
        if cluster is not None:
            emu.add_cluster(ref=REF, name="ckki-scs", kubeconfig=KUBECONFIG)
        emu.s3.setdefault(REF.region, "https://s3.prod1.scs.example")
        emu.add_zone(ZONE)
        settings = settings_for(emu, tmp_path, timeout=timeout, **options)
        provider = ScsProvider(settings)
        stack.push_async_callback(provider.close)
        yield ScsLab(emulator=emu, provider=provider, settings=settings, dns=dns, management=cluster)
