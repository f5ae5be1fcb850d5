"""Test helper for the IONOS provider tests: a running emulator plus an adapter pointed at it.

Credentials go to files (as the lab writes them), never inline; small timeouts and poll intervals
keep the fault tests fast and bounded.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from providers import base
from providers.emulator import MemoryDns
from providers.ionos.adapter import IonosProvider
from providers.ionos.emulator import IonosEmulator

KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
- name: cluster-admin@ckki-de-fra
  cluster:
    server: https://cp-ckki.k8s.de-fra.ionos.example:443
    certificate-authority-data: Q0EtREFUQQ==
users:
- name: cluster-admin
  user:
    token: ionos-k8s-admin-token-9c1e44
contexts:
- name: cluster-admin@ckki-de-fra
  context:
    cluster: cluster-admin@ckki-de-fra
    user: cluster-admin
current-context: cluster-admin@ckki-de-fra
"""

ZONE = "ckki.example."


@dataclass
class IonosLab:
    emulator: IonosEmulator
    provider: IonosProvider
    settings: base.ProviderSettings
    dns: MemoryDns
    ref: base.ClusterRef


def settings_for(emu: IonosEmulator, tmp_path: Path, *, timeout: float = 2.0, token: str | None = None,
                 **options: str) -> base.ProviderSettings:
    """The emulator's settings with credentials from files: username/password, or ``token``."""
    creds: dict[str, str] = {"token": token} if token is not None else emu.lab_credentials()
    files: dict[str, base.Credential] = {}
    for name, value in creds.items():
        path = tmp_path / f"ionos-{name}"
        path.write_text(value, encoding="utf-8")
        files[name] = base.Credential(file=path)
    settings = emu.settings()
    return settings.model_copy(update={
        "credentials": files,
        "options": {**settings.options, "poll_interval": "0.05", "dns_timeout": "5", "attempts": "3",
                    **options},
        "timeout": timeout,
    })


@contextlib.asynccontextmanager
async def running(tmp_path: Path, *, settle_delay: float = 0.05, timeout: float = 2.0,
                  token: str | None = None, **options: str) -> AsyncIterator[IonosLab]:
    dns = MemoryDns()
    emu = IonosEmulator(dns=dns, settle_delay=settle_delay)
    await emu.start()
    provider: IonosProvider | None = None
    try:
        ref = base.ClusterRef(region="de/fra", cluster=str(uuid.uuid4()))
        emu.add_cluster(ref=ref, name="ionos-de-fra", kubeconfig=KUBECONFIG)
        emu.add_zone(ZONE)
        settings = settings_for(emu, tmp_path, timeout=timeout, token=token, **options)
        provider = IonosProvider(settings)
        yield IonosLab(emulator=emu, provider=provider, settings=settings, dns=dns, ref=ref)
    finally:
        if provider is not None:
            await provider.close()
        await emu.close()
