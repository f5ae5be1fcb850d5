"""Fault behaviour of the SCS adapter against its running emulator: re-auth, rate limits, outages,
hangs, malformed answers, unknown enum values, permanent errors, and no secret in any output."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import scs_lab

from failover.core import errors, http
from failover.lab.proxy import FaultProxy, ProxyMode
from providers import base
from providers.emulator import MemoryDns
from providers.scs.adapter import ScsProvider

ZONE, NAME = scs_lab.ZONE, "portal.ckki.example."
needs_kube = pytest.mark.skipif(not scs_lab.kube_available(), reason="failover.lab.kube.cluster not present")


def _count(lab: scs_lab.ScsLab, fragment: str) -> int:
    return sum(fragment in e.path for e in lab.emulator.exchanges)


async def test_expired_token_means_one_real_reauth(tmp_path: Path) -> None:
    async with scs_lab.running(tmp_path, management=False) as lab:
        await lab.provider.dns_get(ZONE, NAME, "A")
        await lab.provider.dns_get(ZONE, NAME, "A")
        assert lab.emulator.token_requests == 1  # cached
        lab.emulator.expire_tokens()
        assert await lab.provider.dns_get(ZONE, NAME, "A") is None
        assert lab.emulator.token_requests == 2
        assert [e.status for e in lab.emulator.exchanges if e.path.endswith("/recordsets")][-2:] == [401, 200]


async def test_injected_401_triggers_a_real_reauth(tmp_path: Path) -> None:
    async with scs_lab.running(tmp_path, management=False) as lab:
        await lab.provider.dns_get(ZONE, NAME, "A")
        lab.emulator.inject("unauthorized", path_prefix="/dns/v2/zones/")
        await lab.provider.dns_get(ZONE, NAME, "A")
        assert lab.emulator.token_requests == 2
        lists = [e for e in lab.emulator.exchanges if e.path.endswith("/recordsets")]
        assert [e.status for e in lists] == [200, 401, 200]
        assert lists[1].request_headers["X-Auth-Token"] != lists[2].request_headers["X-Auth-Token"]


async def test_401_twice_is_an_auth_error(tmp_path: Path) -> None:
    async with scs_lab.running(tmp_path, management=False) as lab:
        lab.emulator.inject("unauthorized", times=2, path_prefix="/dns")
        with pytest.raises(errors.AuthError):
            await lab.provider.dns_get(ZONE, NAME, "A")
        assert _count(lab, "/dns/v2/zones") == 2


async def test_429_retry_after_is_honoured(tmp_path: Path) -> None:
    async with scs_lab.running(tmp_path, management=False) as lab:
        await lab.provider.dns_get(ZONE, NAME, "A")  # token and zone id cached: only the limit is timed
        lab.emulator.inject("rate-limited", retry_after=1.0, path_prefix="/dns")
        await lab.provider.dns_get(ZONE, NAME, "A")
        recordsets = [e for e in lab.emulator.exchanges if e.path.endswith("/recordsets")]
    assert [e.status for e in recordsets] == [200, 429, 200]
    assert recordsets[2].received_at - recordsets[1].received_at >= 0.95  # the emulator's clock: it waited


async def test_503_twice_then_success(tmp_path: Path) -> None:
    async with scs_lab.running(tmp_path, management=False) as lab:
        lab.emulator.inject("unavailable", times=2, path_prefix="/status/incidents")
        assert await lab.provider.status("prod1") == ()
        assert [e.status for e in lab.emulator.exchanges if e.path == "/status/incidents"] == [503, 503, 200]


async def test_provider_api_down_is_temporary_after_bounded_retries(tmp_path: Path) -> None:
    async with scs_lab.running(tmp_path, management=False) as lab:
        lab.emulator.available = False
        started = time.monotonic()
        with pytest.raises(errors.TemporaryError):
            await lab.provider.s3_endpoint("prod1")
        assert time.monotonic() - started < 5
        assert _count(lab, "/auth/tokens") == 3  # attempts=3


async def test_hang_longer_than_the_timeout_is_temporary_and_bounded(tmp_path: Path) -> None:
    async with scs_lab.running(tmp_path, management=False, timeout=0.3, attempts="2") as lab:
        await lab.provider.dns_get(ZONE, NAME, "A")
        lab.emulator.inject("hang", times=5, delay=1.0, path_prefix="/dns")
        started = time.monotonic()
        with pytest.raises(errors.TemporaryError, match="timed out"):
            await lab.provider.dns_get(ZONE, NAME, "A")
        elapsed = time.monotonic() - started
    assert 0.6 <= elapsed < 2.0, elapsed


@pytest.mark.parametrize("prefix", ["/dns", "/status", "/identity"])
async def test_malformed_json_is_a_protocol_error(tmp_path: Path, prefix: str) -> None:
    async with scs_lab.running(tmp_path, management=False) as lab:
        lab.emulator.inject("malformed", path_prefix=prefix)
        with pytest.raises(errors.ProtocolError):
            if prefix == "/status":
                await lab.provider.status("prod1")
            else:
                await lab.provider.dns_get(ZONE, NAME, "A")
        assert sum(e.path.startswith(prefix) for e in lab.emulator.exchanges) == 1  # not retried
        assert await lab.provider.dns_get(ZONE, NAME, "A") is None  # and the adapter still works


async def test_designate_error_state_is_permanent(tmp_path: Path) -> None:
    class Broken(MemoryDns):
        async def set(self, zone: str, name: str, rtype: str, values: tuple[str, ...], ttl: int) -> None:
            raise RuntimeError("backend refused the change")

    async with scs_lab.running(tmp_path, management=False) as lab:
        lab.emulator.dns = Broken()
        with pytest.raises(errors.PermanentError, match="ERROR"):
            await lab.provider.dns_set(ZONE, NAME, "A", ("192.0.2.1",), 60)


async def test_dns_change_not_applied_in_time_is_temporary(tmp_path: Path) -> None:
    async with scs_lab.running(tmp_path, management=False, settle_delay=5.0, dns_timeout="0.3") as lab:
        with pytest.raises(errors.TemporaryError, match="PENDING"):
            await lab.provider.dns_set(ZONE, "slow.ckki.example.", "A", ("192.0.2.9",), 60)
        # it gave up within its own timeout: the change (5 s to settle) has not been applied yet
        assert await lab.dns.get(ZONE, "slow.ckki.example.", "A") is None


async def test_permanent_4xx_is_not_retried(tmp_path: Path) -> None:
    async with scs_lab.running(tmp_path, management=False) as lab:
        with pytest.raises(http.ApiError, match=r"400.*ttl") as bad:
            await lab.provider.dns_set(ZONE, NAME, "A", ("192.0.2.1",), 0)
        assert bad.value.status == 400 and _count(lab, "/recordsets") == 2  # the lookup, then one POST
        with pytest.raises(errors.PermanentError, match="zone"):
            await lab.provider.dns_get("other.example.", "a.other.example.", "A")


@needs_kube
async def test_unknown_new_phase_is_unknown_with_raw_kept(tmp_path: Path) -> None:
    async with scs_lab.running(tmp_path) as lab:
        lab.emulator.set_raw_cluster_state(scs_lab.REF.cluster, "Hibernating")
        status = await lab.provider.cluster_status(scs_lab.REF)
    assert status.state is base.ClusterState.UNKNOWN
    assert "Hibernating" in status.raw_state


@needs_kube
async def test_missing_cluster_is_not_found_after_the_v1beta1_fallback(tmp_path: Path) -> None:
    async with scs_lab.running(tmp_path) as lab:
        missing = base.ClusterRef(region="prod1", cluster="no-such-cluster", project=scs_lab.REF.project)
        with pytest.raises(http.NotFoundError):
            await lab.provider.cluster_status(missing)
        with pytest.raises(http.NotFoundError):
            await lab.provider.kubeconfig(missing)


async def test_no_secret_in_logs_errors_or_reprs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    failures: list[str] = []
    async with scs_lab.running(tmp_path, management=scs_lab.kube_available(), timeout=0.3, attempts="2") as lab:
        provider = lab.provider
        if lab.management is not None:  # the management bearer token and the kubeconfig's key
            await provider.cluster_status(scs_lab.REF)
            await provider.kubeconfig(scs_lab.REF)
        await provider.dns_set(ZONE, NAME, "A", ("192.0.2.1",), 60)
        lab.emulator.expire_tokens()
        await provider.dns_get(ZONE, NAME, "A")
        for kind in ("unauthorized", "malformed", "rate-limited", "unavailable", "hang"):
            lab.emulator.inject(kind, times=3, delay=0.5, retry_after=0.0, path_prefix="/dns")
            try:
                await provider.dns_get(ZONE, NAME, "A")
            except errors.FailoverError as exc:
                failures.append(f"{exc!s} {exc!r} {exc.__cause__!s}")
            lab.emulator.clear_faults()
        secret_values = {e.response_headers["X-Subject-Token"] for e in lab.emulator.exchanges
                         if "X-Subject-Token" in e.response_headers}
        secret_values |= set(lab.emulator.lab_credentials().values()) | {"S0VZLURBVEEtc2VjcmV0LXNjcw=="}
        reprs = [repr(provider), repr(provider.auth)]
    assert len(secret_values) >= 5 and failures
    text = "\n".join([caplog.text, *failures, *reprs])
    leaked = [v[:6] for v in secret_values if v in text]
    assert not leaked, f"secrets leaked (prefixes): {leaked}"


def test_bad_option_value_is_permanent(tmp_path: Path) -> None:
    settings = base.ProviderSettings(
        kind="scs", endpoints={k: "http://127.0.0.1:1" for k in ("keystone", "management", "status")},
        credentials={k: base.Credential(file=tmp_path / k) for k in
                     ("application_credential_id", "application_credential_secret", "management_token")},
        options={"dns_timeout": "soon"})
    with pytest.raises(errors.PermanentError, match="invalid option"):
        ScsProvider(settings)


@needs_kube
async def test_management_cluster_blackhole_is_temporary_and_bounded(tmp_path: Path) -> None:
    """The management cluster is no EmulatorBase: the lab's fault proxy stands in front of it."""
    async with scs_lab.running(tmp_path, timeout=0.3, attempts="2") as lab:
        target = urlsplit(lab.management.api.url)
        proxy = FaultProxy(target_host=target.hostname or "127.0.0.1", target_port=target.port or 80,
                           name="scs management")
        await proxy.start()
        try:
            settings = lab.settings.model_copy(update={"endpoints": {**lab.settings.endpoints,
                                                                     "management": proxy.url}})
            provider = ScsProvider(settings)
            assert (await provider.cluster_status(scs_lab.REF)).state is base.ClusterState.READY
            await proxy.set_mode(ProxyMode.BLACKHOLE)
            started = time.monotonic()
            with pytest.raises(errors.TemporaryError, match="timed out"):
                await provider.cluster_status(scs_lab.REF)
            elapsed = time.monotonic() - started
            await proxy.set_mode(ProxyMode.DOWN)
            with pytest.raises(errors.TemporaryError):
                await provider.kubeconfig(scs_lab.REF)
            await provider.close()
        finally:
            await proxy.close()
    assert 0.6 <= elapsed < 2.0, elapsed
