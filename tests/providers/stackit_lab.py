"""Test helper for the STACKIT provider tests: a running emulator plus an adapter pointed at it.

The service-account key goes to a file (as the lab writes it), never inline; small timeouts and
poll intervals keep the fault tests fast and bounded.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from providers import base
from providers.emulator import MemoryDns
from providers.stackit.adapter import StackitProvider
from providers.stackit.emulator import StackitEmulator

KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
- name: ckki-eu01
  cluster:
    server: https://api.ckki-eu01.p1234.ske.eu01.onstackit.cloud
    certificate-authority-data: Q0EtREFUQQ==
users:
- name: ckki-eu01
  user:
    token: ske-admin-token-3f9d2c1b7a
contexts:
- name: ckki-eu01
  context:
    cluster: ckki-eu01
    user: ckki-eu01
current-context: ckki-eu01
"""

ZONE = "ckki.example."


@dataclass
class StackitLab:
    emulator: StackitEmulator
    provider: StackitProvider
    settings: base.ProviderSettings
    dns: MemoryDns
    ref: base.ClusterRef


def settings_for(emu: StackitEmulator, tmp_path: Path, *, timeout: float = 2.0, token_endpoint: bool = False,
                 **options: str) -> base.ProviderSettings:
    key = tmp_path / "stackit-service_account_key"
    key.write_text(emu.service_account_key(token_endpoint=token_endpoint), encoding="utf-8")
    settings = emu.settings()
    return settings.model_copy(update={
        "credentials": {"service_account_key": base.Credential(file=key)},
        "options": {**settings.options, "poll_interval": "0.02", "dns_timeout": "5", "attempts": "3",
                    **options},
        "timeout": timeout,
    })


@contextlib.asynccontextmanager
async def running(tmp_path: Path, *, settle_delay: float = 0.05, timeout: float = 2.0,
                  token_endpoint: bool = False, **options: str) -> AsyncIterator[StackitLab]:
    dns = MemoryDns()
    emu = StackitEmulator(dns=dns, settle_delay=settle_delay)
    await emu.start()
    provider: StackitProvider | None = None
    try:
        ref = base.ClusterRef(region="eu01", cluster="ckki-eu01", project=emu.project_id)
        emu.add_cluster(ref=ref, name="stackit-eu01", kubeconfig=KUBECONFIG)
        emu.add_zone(ZONE)
        settings = settings_for(emu, tmp_path, timeout=timeout, token_endpoint=token_endpoint, **options)
        provider = StackitProvider(settings)
        yield StackitLab(emulator=emu, provider=provider, settings=settings, dns=dns, ref=ref)
    finally:
        if provider is not None:
            await provider.close()
        await emu.close()
