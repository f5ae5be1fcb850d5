"""Test helper for the OTC provider tests: a running emulator plus an adapter pointed at it.

Credentials go to files (as the lab writes them), never inline; small timeouts and poll
intervals keep fault tests fast and bounded.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from providers import base
from providers.emulator import MemoryDns
from providers.otc.adapter import OtcProvider
from providers.otc.emulator import OtcEmulator

KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
- name: internalCluster
  cluster:
    server: https://192.168.0.10:5443
    certificate-authority-data: Q0EtREFUQQ==
users:
- name: user
  user:
    client-certificate-data: Q0VSVC1EQVRB
    client-key-data: S0VZLURBVEEtc2VjcmV0LW90Yw==
contexts:
- name: internal
  context:
    cluster: internalCluster
    user: user
current-context: internal
"""

REF = base.ClusterRef(region="eu-nl", cluster="3f1c2d4e-0000-11ee-a1b2-0255ac100b05")
ZONE = "ckki.example."


@dataclass
class OtcLab:
    emulator: OtcEmulator
    provider: OtcProvider
    settings: base.ProviderSettings
    dns: MemoryDns


def settings_for(emu: OtcEmulator, tmp_path: Path, *, timeout: float = 2.0,
                 **options: str) -> base.ProviderSettings:
    creds: dict[str, base.Credential] = {}
    for name, value in emu.lab_credentials().items():
        path = tmp_path / f"otc-{name}"
        path.write_text(value, encoding="utf-8")
        creds[name] = base.Credential(file=path)
    opts = {"dns_poll_interval": "0.02", "dns_timeout": "5", "attempts": "3", "max_retry_delay": "2",
            **options}
    return emu.settings().model_copy(update={"credentials": creds, "options": opts, "timeout": timeout})


@contextlib.asynccontextmanager
async def running(tmp_path: Path, *, settle_delay: float = 0.1, timeout: float = 2.0,
                  **options: str) -> AsyncIterator[OtcLab]:
    dns = MemoryDns()
    emu = OtcEmulator(dns=dns, settle_delay=settle_delay)
    await emu.start()
    emu.add_cluster(ref=REF, name="ckki-otc", kubeconfig=KUBECONFIG)
    emu.add_zone(ZONE)
    settings = settings_for(emu, tmp_path, timeout=timeout, **options)
    provider = OtcProvider(settings)
    try:
        yield OtcLab(emulator=emu, provider=provider, settings=settings, dns=dns)
    finally:
        await provider.close()
        await emu.close()
