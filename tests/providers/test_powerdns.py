"""The PowerDNS adapter and backend against a real pdns_server, checked with a real resolver."""

from __future__ import annotations

from collections.abc import AsyncIterator

import dns.asyncresolver
import pytest

from failover.core import errors
from failover.lab import pdns
from providers import base
from providers.powerdns.adapter import PowerDnsProvider
from providers.powerdns.backend import PowerDnsBackend


@pytest.fixture
async def server() -> AsyncIterator[pdns.PowerDnsProcess]:
    proc = await pdns.start_powerdns()
    yield proc
    await proc.stop()


def _settings(proc: pdns.PowerDnsProcess, key_file: str) -> base.ProviderSettings:
    return base.ProviderSettings(kind="powerdns", endpoints={"api": proc.api_url},
                                 credentials={"api_key": base.Credential(file=key_file)}, timeout=2.0)


async def _resolve(proc: pdns.PowerDnsProcess, name: str) -> list[str]:
    resolver = dns.asyncresolver.Resolver(configure=False)
    resolver.nameservers = [proc.host]
    resolver.port = proc.dns_port
    answer = await resolver.resolve(name, "A", lifetime=2.0)
    return sorted(r.to_text() for r in answer)


async def test_set_get_and_resolve(server: pdns.PowerDnsProcess, tmp_path: object) -> None:
    backend = PowerDnsBackend(api_url=server.api_url, api_key=server.api_key)
    await backend.api.ensure_zone("ckki.lab.")
    await backend.api.ensure_zone("ckki.lab.")  # idempotent
    key = f"{tmp_path}/key"
    with open(key, "w") as fh:
        fh.write(server.api_key)
    provider = PowerDnsProvider(_settings(server, key))
    try:
        assert await provider.dns_get("ckki.lab.", "files.ckki.lab.", "A") is None
        rrset = await provider.dns_set("ckki.lab.", "files.ckki.lab", "A", ("127.0.1.1",), 5)
        assert rrset.values == ("127.0.1.1",) and rrset.name == "files.ckki.lab."
        assert await _resolve(server, "files.ckki.lab.") == ["127.0.1.1"]
        again = await provider.dns_set("ckki.lab.", "files.ckki.lab.", "A", ("127.0.1.1",), 5)
        assert again == rrset
        await provider.dns_set("ckki.lab.", "files.ckki.lab.", "A", ("127.0.2.1",), 5)
        assert await _resolve(server, "files.ckki.lab.") == ["127.0.2.1"]
        got = await provider.dns_get("ckki.lab.", "files.ckki.lab.", "A")
        assert got is not None and got.values == ("127.0.2.1",) and got.ttl == 5
        with pytest.raises(errors.PermanentError):
            await provider.dns_set("missing.lab.", "x.missing.lab.", "A", ("127.0.0.9",), 5)
        with pytest.raises(errors.PermanentError, match="not a cloud"):
            await provider.cluster_status(base.ClusterRef(region="r", cluster="c"))
        await backend.delete("ckki.lab.", "files.ckki.lab.", "A")
        assert await backend.get("ckki.lab.", "files.ckki.lab.", "A") is None
    finally:
        await provider.close()
        await backend.close()


async def test_wrong_key_is_rejected(server: pdns.PowerDnsProcess) -> None:
    backend = PowerDnsBackend(api_url=server.api_url, api_key="wrong-key-123")
    try:
        with pytest.raises(errors.PermanentError):
            await backend.get("ckki.lab.", "files.ckki.lab.", "A")
    finally:
        await backend.close()


async def test_stop_leaves_no_process(server: pdns.PowerDnsProcess) -> None:
    import os
    pid = server.pid
    os.kill(pid, 0)
    await server.stop()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not server.directory.exists()
