"""The STACKIT adapter under faults, each injected into the running emulator over loopback.

Covers a real re-authentication after 401 (tokens counted at the token endpoint), 429 with
``Retry-After`` (the delay measured), 503 then success, a hang beyond the adapter's timeout
(bounded), a malformed body, an unknown new enum value, permanent 4xx (not retried), a revoked
key, and that no token ever reaches a log record or an exception text.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
import stackit_lab

from failover.core import errors, http
from providers import base

S = base.ClusterState


def calls(lab: stackit_lab.StackitLab, prefix: str) -> int:
    return sum(ex.path.startswith(prefix) for ex in lab.emulator.exchanges)


async def test_expired_token_is_renewed_by_a_real_reauthentication(tmp_path: Path) -> None:
    async with stackit_lab.running(tmp_path) as lab:
        await lab.provider.cluster_status(lab.ref)
        await lab.provider.cluster_status(lab.ref)
        assert lab.emulator.token_requests == 1  # cached until expiry
        lab.emulator.expire_tokens()
        assert (await lab.provider.cluster_status(lab.ref)).state is S.READY
        assert lab.emulator.token_requests == 2
        statuses = [ex.status for ex in lab.emulator.exchanges if ex.path.startswith("/ske")]
        assert statuses == [200, 200, 401, 200]
        lab.emulator.inject("unauthorized", path_prefix="/dns")
        assert await lab.provider.dns_get(stackit_lab.ZONE, f"a.{stackit_lab.ZONE}", "A") is None
        assert lab.emulator.token_requests == 3


async def test_401_twice_is_an_auth_error(tmp_path: Path) -> None:
    async with stackit_lab.running(tmp_path) as lab:
        lab.emulator.inject("unauthorized", times=2, path_prefix="/ske")
        with pytest.raises(errors.AuthError):
            await lab.provider.cluster_status(lab.ref)
        assert calls(lab, "/ske") == 2


async def test_revoked_key_is_an_auth_error_not_retried(tmp_path: Path) -> None:
    async with stackit_lab.running(tmp_path) as lab:
        lab.emulator.revoke_key()
        with pytest.raises(errors.AuthError, match="invalid_grant"):
            await lab.provider.cluster_status(lab.ref)
        assert lab.emulator.token_requests == 1 and calls(lab, "/ske") == 0


async def test_rate_limit_honours_retry_after(tmp_path: Path) -> None:
    async with stackit_lab.running(tmp_path) as lab:
        await lab.provider.cluster_status(lab.ref)  # token fetched outside the measurement
        lab.emulator.inject("rate-limited", retry_after=1, path_prefix="/ske")
        started = time.monotonic()
        assert (await lab.provider.cluster_status(lab.ref)).state is S.READY
        elapsed = time.monotonic() - started
        assert 1.0 <= elapsed < 2.0, elapsed
        assert [ex.status for ex in lab.emulator.exchanges if ex.path.startswith("/ske")] == [200, 429, 200]


async def test_unavailable_twice_then_success(tmp_path: Path) -> None:
    async with stackit_lab.running(tmp_path) as lab:
        lab.emulator.inject("unavailable", times=2, path_prefix="/dns")
        await lab.provider.dns_set(stackit_lab.ZONE, f"www.{stackit_lab.ZONE}", "A", ("192.0.2.1",), 60)
        zone_lists = [ex.status for ex in lab.emulator.exchanges if ex.path.endswith("/zones")]
        assert zone_lists == [503, 503, 200]


async def test_unavailable_beyond_attempts_is_temporary(tmp_path: Path) -> None:
    async with stackit_lab.running(tmp_path) as lab:
        lab.emulator.available = False
        with pytest.raises(errors.TemporaryError, match="503"):
            await lab.provider.cluster_status(lab.ref)
        # the token request is inside the API request's retry loop: 3 attempts in all, not 3 x 3
        assert lab.emulator.token_requests == 0 and calls(lab, "/sa/token") == 3


async def test_hang_beyond_timeout_is_temporary_and_bounded(tmp_path: Path) -> None:
    async with stackit_lab.running(tmp_path, timeout=0.2) as lab:
        await lab.provider.cluster_status(lab.ref)
        lab.emulator.inject("hang", times=3, delay=0.5, path_prefix="/ske")
        started = time.monotonic()
        with pytest.raises(errors.TemporaryError, match="timed out"):
            await lab.provider.cluster_status(lab.ref)
        elapsed = time.monotonic() - started
        assert 0.6 <= elapsed < 2.5, elapsed  # 3 attempts x 0.2 s plus short backoff


async def test_malformed_json_is_a_protocol_error(tmp_path: Path) -> None:
    async with stackit_lab.running(tmp_path) as lab:
        lab.emulator.inject("malformed", path_prefix="/ske")
        with pytest.raises(errors.ProtocolError):
            await lab.provider.cluster_status(lab.ref)
        assert (await lab.provider.cluster_status(lab.ref)).state is S.READY  # no lasting damage
        lab.emulator.inject("malformed", path_prefix="/sa/token")
        lab.emulator.expire_tokens()
        with pytest.raises(errors.ProtocolError):
            await lab.provider.cluster_status(lab.ref)


async def test_unknown_new_enum_value_is_unknown_with_raw_kept(tmp_path: Path) -> None:
    async with stackit_lab.running(tmp_path) as lab:
        lab.emulator.set_raw_cluster_state(lab.ref.cluster, "STATE_MIGRATING")
        status = await lab.provider.cluster_status(lab.ref)
        assert (status.state, status.raw_state) == (S.UNKNOWN, "STATE_MIGRATING")
        assert status.node_pools[0].state is S.UNKNOWN
        lab.emulator.set_cluster_health(lab.ref.cluster, S.UNKNOWN)  # no aggregated at all
        status = await lab.provider.cluster_status(lab.ref)
        assert (status.state, status.raw_state) == (S.UNKNOWN, "")


async def test_permanent_4xx_is_not_retried(tmp_path: Path) -> None:
    async with stackit_lab.running(tmp_path, kubeconfig_expiration="100") as lab:
        missing = lab.ref.model_copy(update={"cluster": "nope"})
        with pytest.raises(http.NotFoundError):
            await lab.provider.cluster_status(missing)
        assert calls(lab, "/ske") == 1
        with pytest.raises(http.ApiError, match="between 600 and 15552000") as caught:
            await lab.provider.kubeconfig(lab.ref)
        assert caught.value.status == 400 and calls(lab, "/ske") == 2
        with pytest.raises(http.NotFoundError, match="zone"):
            await lab.provider.dns_get("other.example.", "www.other.example.", "A")


async def test_no_token_in_logs_or_errors(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    async with stackit_lab.running(tmp_path, timeout=0.2) as lab:
        p, emu = lab.provider, lab.emulator
        await p.cluster_status(lab.ref)
        await p.kubeconfig(lab.ref)
        await p.dns_set(stackit_lab.ZONE, f"www.{stackit_lab.ZONE}", "A", ("192.0.2.1",), 60)
        emu.expire_tokens()
        await p.cluster_status(lab.ref)
        for fault in ("unauthorized", "malformed", "hang", "rate-limited"):
            emu.inject(fault, times=1 if fault == "hang" else 2, delay=0.3, retry_after=0, path_prefix="/ske")
            try:
                await p.cluster_status(lab.ref)
            except errors.FailoverError as exc:
                texts.append(f"{exc!s} {exc!r} {exc.__cause__!r}")
            emu.clear_faults()
        emu.revoke_key()
        emu.expire_tokens()
        with pytest.raises(errors.AuthError) as caught:
            await p.cluster_status(lab.ref)
        texts.append(f"{caught.value!s} {caught.value!r} {caught.value.__cause__!r}")
        texts.append(repr(p) + repr(p.auth))
        issued = list(emu.issued_tokens)
    texts += [r.getMessage() for r in caplog.records]
    assert len(issued) >= 2 and texts
    leaks = [t for t in texts for token in issued if token in t]
    assert not leaks
    assert not any("PRIVATE KEY" in t or stackit_lab.KUBECONFIG in t for t in texts)
