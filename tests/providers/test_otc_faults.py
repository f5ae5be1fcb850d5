"""The OTC adapter under the faults a real cloud produces, each against the running emulator.

Timeouts, retry counts and poll intervals are set small in the settings so every failure path
is exercised in bounded, measured time.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import otc_lab
import pytest

from failover.core import errors, http
from providers import base
from providers.emulator import Exchange
from providers.otc.adapter import OtcProvider

REF = otc_lab.REF


def _count(lab: otc_lab.OtcLab, suffix: str) -> int:
    return sum(e.path.endswith(suffix) for e in lab.emulator.exchanges)


async def test_expired_token_is_renewed_once_even_for_concurrent_requests(tmp_path: Path) -> None:
    async with otc_lab.running(tmp_path) as lab:
        await lab.provider.cluster_status(REF)
        assert lab.emulator.token_requests == 1
        await lab.provider.cluster_status(REF)
        assert lab.emulator.token_requests == 1  # cached
        lab.emulator.expire_tokens()
        status = await lab.provider.cluster_status(REF)  # two requests in parallel, both get 401
        assert status.state is base.ClusterState.READY
        assert lab.emulator.token_requests == 2
        assert sum(e.status == 401 for e in lab.emulator.exchanges) == 2


async def test_injected_401_triggers_a_real_reauth(tmp_path: Path) -> None:
    async with otc_lab.running(tmp_path) as lab:
        await lab.provider.kubeconfig(REF)
        lab.emulator.inject("unauthorized", path_prefix="/cce")
        await lab.provider.kubeconfig(REF)
        assert lab.emulator.token_requests == 2
        certs = [e for e in lab.emulator.exchanges if e.path.endswith("/clustercert")]
        assert [e.status for e in certs] == [200, 401, 200]
        assert certs[1].request_headers["X-Auth-Token"] != certs[2].request_headers["X-Auth-Token"]


async def test_rejected_credentials_are_an_auth_error_not_retried(tmp_path: Path) -> None:
    async with otc_lab.running(tmp_path) as lab:
        (tmp_path / "otc-password").write_text("wrong-password-123", encoding="utf-8")
        with pytest.raises(errors.AuthError):
            await lab.provider.cluster_status(REF)
        assert _count(lab, "/auth/tokens") == 1


HANG = 8.0  #: how long a hung answer takes: far beyond any client timeout here


def retry_gap(exchanges: list[Exchange], prefix: str) -> float:
    """Seconds between the 429 and the next request under ``prefix``, as the emulator received them."""
    ours = [e for e in exchanges if e.path.startswith(prefix)]
    i = next(i for i, e in enumerate(ours) if e.status == 429)
    return ours[i + 1].received_at - ours[i].received_at


async def test_429_retry_after_is_honoured(tmp_path: Path) -> None:
    async with otc_lab.running(tmp_path) as lab:
        await lab.provider.kubeconfig(REF)  # token cached, so only the rate limit is timed
        lab.emulator.inject("rate-limited", retry_after=1.0, path_prefix="/cce")
        await lab.provider.kubeconfig(REF)
    assert retry_gap(lab.emulator.exchanges, "/cce") >= 0.95  # on the emulator's clock: the retry waited


async def test_503_twice_then_success(tmp_path: Path) -> None:
    async with otc_lab.running(tmp_path) as lab:
        lab.emulator.inject("unavailable", times=2, path_prefix="/dns/v2/zones")
        assert await lab.provider.dns_get(otc_lab.ZONE, "x.ckki.example.", "A") is None
        zones = [e.status for e in lab.emulator.exchanges if e.path == "/dns/v2/zones"]
        assert zones == [503, 503, 200]


async def test_provider_api_down_is_temporary_after_bounded_retries(tmp_path: Path) -> None:
    async with otc_lab.running(tmp_path) as lab:
        lab.emulator.available = False
        started = time.monotonic()
        with pytest.raises(errors.TemporaryError):
            await lab.provider.status("eu-de")
        assert time.monotonic() - started < 5
        assert _count(lab, "/v2/incidents") == 3  # attempts=3


async def test_hang_longer_than_the_timeout_is_temporary_and_bounded(tmp_path: Path) -> None:
    async with otc_lab.running(tmp_path, timeout=0.3, attempts="2") as lab:
        await lab.provider.kubeconfig(REF)
        lab.emulator.inject("hang", times=5, delay=HANG, path_prefix="/cce")
        started = time.monotonic()
        with pytest.raises(errors.TemporaryError, match="timed out"):
            await lab.provider.kubeconfig(REF)
        elapsed = time.monotonic() - started
    # two attempts of 0.3 s each, given up on the client's own timeouts long before the hang ends
    assert 0.6 <= elapsed < HANG, elapsed


@pytest.mark.parametrize("prefix", ["/cce", "/status", "/iam"])
async def test_malformed_json_is_a_protocol_error(tmp_path: Path, prefix: str) -> None:
    async with otc_lab.running(tmp_path) as lab:
        lab.emulator.inject("malformed", path_prefix=prefix)
        with pytest.raises(errors.ProtocolError):
            if prefix == "/status":
                await lab.provider.status("eu-de")
            else:
                await lab.provider.kubeconfig(REF)
        # not retried, and the adapter keeps working afterwards
        assert sum(e.path.startswith(prefix) for e in lab.emulator.exchanges) == 1
        assert (await lab.provider.cluster_status(REF)).state is base.ClusterState.READY


async def test_unknown_new_phase_is_unknown_with_raw_kept(tmp_path: Path) -> None:
    async with otc_lab.running(tmp_path) as lab:
        lab.emulator.set_raw_cluster_state(REF.cluster, "Quiescing")
        status = await lab.provider.cluster_status(REF)
        assert (status.state, status.raw_state) == (base.ClusterState.UNKNOWN, "Quiescing")
        lab.emulator.set_raw_cluster_state(REF.cluster, "Available")
        lab.emulator.set_raw_nodepool_state(REF.cluster, "Rebalancing")
        status = await lab.provider.cluster_status(REF)
        pool = status.node_pools[0]
        assert (pool.state, pool.raw_state) == (base.ClusterState.UNKNOWN, "Rebalancing")
        assert status.state is base.ClusterState.DEGRADED  # a pool we cannot read is not "ready"


async def test_permanent_4xx_is_not_retried(tmp_path: Path) -> None:
    async with otc_lab.running(tmp_path, kubeconfig_days="0") as lab:
        with pytest.raises(http.ApiError, match=r"400.*duration") as bad:
            await lab.provider.kubeconfig(REF)
        assert bad.value.status == 400 and _count(lab, "/clustercert") == 1
        missing = base.ClusterRef(region=REF.region, cluster="no-such-cluster")
        with pytest.raises(http.NotFoundError, match="404"):
            await lab.provider.cluster_status(missing)
        assert _count(lab, "/clusters/no-such-cluster") == 1
        with pytest.raises(errors.PermanentError, match="zone"):
            await lab.provider.dns_get("other.example.", "a.other.example.", "A")


async def test_dns_change_not_applied_in_time_is_temporary(tmp_path: Path) -> None:
    async with otc_lab.running(tmp_path, settle_delay=5.0, dns_timeout="0.3") as lab:
        started = time.monotonic()
        with pytest.raises(errors.TemporaryError, match="PENDING_CREATE"):
            await lab.provider.dns_set(otc_lab.ZONE, "slow.ckki.example.", "A", ("192.0.2.9",), 60)
        assert time.monotonic() - started < 1.0
        assert await lab.dns.get(otc_lab.ZONE, "slow.ckki.example.", "A") is None


async def test_no_token_or_password_in_logs_errors_or_reprs(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    failures: list[str] = []
    async with otc_lab.running(tmp_path, timeout=0.3, attempts="2") as lab:
        provider = lab.provider
        await provider.cluster_status(REF)
        await provider.dns_set(otc_lab.ZONE, "p.ckki.example.", "A", ("192.0.2.1",), 60)
        lab.emulator.expire_tokens()
        await provider.kubeconfig(REF)
        for kind in ("unauthorized", "malformed", "rate-limited", "unavailable", "hang"):
            lab.emulator.inject(kind, times=3, delay=0.5, retry_after=0.0, path_prefix="/cce")
            try:
                await provider.cluster_status(REF)
            except errors.FailoverError as exc:
                failures.append(f"{exc!s} {exc!r} {exc.__cause__!s}")
            lab.emulator.clear_faults()
        secret_values = {e.response_headers["X-Subject-Token"] for e in lab.emulator.exchanges
                         if "X-Subject-Token" in e.response_headers}
        secret_values.add(lab.emulator.password)
        reprs = [repr(provider), *(repr(a) for a in provider._auth.values())]
    assert len(secret_values) >= 4 and failures
    text = "\n".join([caplog.text, *failures, *reprs])
    leaked = [v[:6] for v in secret_values if v in text]
    assert not leaked, f"secrets leaked (prefixes): {leaked}"


def test_bad_option_value_is_permanent(tmp_path: Path) -> None:
    settings = base.ProviderSettings(
        kind="otc", endpoints={k: "http://127.0.0.1:1" for k in ("iam", "cce", "dns", "status")},
        credentials={k: base.Credential(file=tmp_path / k) for k in ("username", "password", "domain")},
        options={"dns_timeout": "soon"})
    with pytest.raises(errors.PermanentError, match="invalid option"):
        OtcProvider(settings)
