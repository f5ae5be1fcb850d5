"""The IONOS adapter under faults, each injected into the running emulator over loopback.

Covers a real re-authentication after 401 (tokens counted at ``/tokens/generate``), a rejected
password and a rejected configured token (final, not retried), 429 with ``Retry-After`` (the delay
measured), 503 then success, a hang beyond the adapter's timeout (bounded), a malformed body, an
unknown new enum value, permanent 4xx (not retried), and that no token ever reaches a log record
or an exception text.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import ionos_lab
import pytest

from failover.core import errors, http
from providers import base
from providers.ionos.adapter import IonosProvider

S = base.ClusterState
ZONE = ionos_lab.ZONE


def calls(lab: ionos_lab.IonosLab, prefix: str) -> int:
    return sum(ex.path.startswith(prefix) for ex in lab.emulator.exchanges)


def statuses(lab: ionos_lab.IonosLab, suffix: str) -> list[int]:
    return [ex.status for ex in lab.emulator.exchanges
            if ex.path.startswith("/cloudapi") and ex.path.endswith(suffix)]


async def test_expired_token_is_renewed_by_a_real_reauthentication(tmp_path: Path) -> None:
    async with ionos_lab.running(tmp_path) as lab:
        ref = lab.ref.cluster
        await lab.provider.cluster_status(lab.ref)
        await lab.provider.kubeconfig(lab.ref)
        assert lab.emulator.token_requests == 1  # cached until expiry
        lab.emulator.expire_tokens()
        assert await lab.provider.kubeconfig(lab.ref) == ionos_lab.KUBECONFIG
        assert lab.emulator.token_requests == 2 and lab.provider.auth.token_requests == 2
        assert statuses(lab, "/kubeconfig") == [200, 401, 200]
        lab.emulator.inject("unauthorized", path_prefix="/dns")
        assert await lab.provider.dns_get(ZONE, f"a.{ZONE}", "A") is None
        assert lab.emulator.token_requests == 3
        assert statuses(lab, ref) == [200]


async def test_401_twice_is_an_auth_error(tmp_path: Path) -> None:
    async with ionos_lab.running(tmp_path) as lab:
        lab.emulator.inject("unauthorized", times=2, path_prefix="/cloudapi")
        with pytest.raises(errors.AuthError):
            await lab.provider.kubeconfig(lab.ref)
        assert calls(lab, "/cloudapi") == 2 and lab.emulator.token_requests == 2


async def test_wrong_password_is_an_auth_error_not_retried(tmp_path: Path) -> None:
    async with ionos_lab.running(tmp_path) as lab:
        lab.emulator.password = "rotated-elsewhere-0815"
        with pytest.raises(errors.AuthError, match="invalid username or password"):
            await lab.provider.cluster_status(lab.ref)
        assert lab.emulator.token_requests == 1  # the concurrent node-pool read is cancelled, not retried
        assert calls(lab, "/cloudapi") == 0


async def test_configured_token_is_used_as_is_and_its_401_is_final(tmp_path: Path) -> None:
    async with ionos_lab.running(tmp_path) as lab:
        (tmp_path / "token").mkdir()
        settings = ionos_lab.settings_for(lab.emulator, tmp_path / "token", token=lab.emulator.issue_token())
        assert set(settings.credentials) == {"token"}
        provider = IonosProvider(settings)
        try:
            assert await provider.kubeconfig(lab.ref) == ionos_lab.KUBECONFIG
            assert lab.emulator.token_requests == 0 and calls(lab, "/auth") == 0
            lab.emulator.expire_tokens()
            with pytest.raises(errors.AuthError, match=r"credentials\.token was rejected"):
                await provider.kubeconfig(lab.ref)
            assert statuses(lab, "/kubeconfig") == [200, 401]  # no pointless second try
        finally:
            await provider.close()


async def test_rate_limit_honours_retry_after(tmp_path: Path) -> None:
    async with ionos_lab.running(tmp_path) as lab:
        await lab.provider.kubeconfig(lab.ref)  # token fetched outside the measurement
        lab.emulator.inject("rate-limited", retry_after=1, path_prefix="/cloudapi")
        assert await lab.provider.kubeconfig(lab.ref) == ionos_lab.KUBECONFIG
        assert statuses(lab, "/kubeconfig") == [200, 429, 200]
        calls = [ex for ex in lab.emulator.exchanges
                 if ex.path.startswith("/cloudapi") and ex.path.endswith("/kubeconfig")]
        assert calls[2].received_at - calls[1].received_at >= 0.95  # the emulator's clock: it waited
        limited = next(ex for ex in lab.emulator.exchanges if ex.status == 429)
        assert limited.response_headers["Retry-After"] == "1"
        assert "X-RateLimit-Remaining" in limited.response_headers


async def test_unavailable_twice_then_success(tmp_path: Path) -> None:
    async with ionos_lab.running(tmp_path) as lab:
        lab.emulator.inject("unavailable", times=2, path_prefix="/dns")
        await lab.provider.dns_set(ZONE, f"www.{ZONE}", "A", ("192.0.2.1",), 60)
        zone_lists = [ex.status for ex in lab.emulator.exchanges if ex.path == "/dns/zones"]
        assert zone_lists == [503, 503, 200]
        assert (await lab.dns.get(ZONE, f"www.{ZONE}", "A")) is not None


async def test_unavailable_beyond_attempts_is_temporary(tmp_path: Path) -> None:
    async with ionos_lab.running(tmp_path) as lab:
        await lab.provider.kubeconfig(lab.ref)
        lab.emulator.available = False
        with pytest.raises(errors.TemporaryError, match="503"):
            await lab.provider.kubeconfig(lab.ref)
        assert statuses(lab, "/kubeconfig") == [200, 503, 503, 503]  # options.attempts = 3


async def test_hang_beyond_timeout_is_temporary_and_bounded(tmp_path: Path) -> None:
    async with ionos_lab.running(tmp_path, timeout=0.2) as lab:
        await lab.provider.kubeconfig(lab.ref)
        lab.emulator.inject("hang", times=3, delay=8.0, path_prefix="/cloudapi")
        started = time.monotonic()
        with pytest.raises(errors.TemporaryError, match="timed out"):
            await lab.provider.kubeconfig(lab.ref)
        elapsed = time.monotonic() - started
        # 3 attempts x 0.2 s plus short backoff: given up on its own timeouts, not by the 8 s hang
        assert 0.6 <= elapsed < 8.0, elapsed


async def test_malformed_json_is_a_protocol_error(tmp_path: Path) -> None:
    async with ionos_lab.running(tmp_path) as lab:
        lab.emulator.inject("malformed", times=2, path_prefix="/cloudapi")
        with pytest.raises(errors.ProtocolError):
            await lab.provider.cluster_status(lab.ref)
        assert (await lab.provider.cluster_status(lab.ref)).state is S.READY  # no lasting damage
        lab.emulator.inject("malformed", path_prefix="/cloudapi")
        with pytest.raises(errors.ProtocolError, match="not a kubeconfig"):
            await lab.provider.kubeconfig(lab.ref)
        lab.emulator.inject("malformed", path_prefix="/dns")
        with pytest.raises(errors.ProtocolError):
            await lab.provider.dns_get(ZONE, f"www.{ZONE}", "A")
        lab.emulator.inject("malformed", path_prefix="/auth")
        lab.emulator.expire_tokens()
        with pytest.raises(errors.ProtocolError):
            await lab.provider.kubeconfig(lab.ref)
        lab.emulator.inject("malformed", path_prefix="/status")
        with pytest.raises(errors.ProtocolError):
            await lab.provider.status("de/fra")


async def test_unknown_new_enum_value_is_unknown_with_raw_kept(tmp_path: Path) -> None:
    async with ionos_lab.running(tmp_path) as lab:
        lab.emulator.set_raw_cluster_state(lab.ref.cluster, "RELOCATING")
        status = await lab.provider.cluster_status(lab.ref)
        assert (status.state, status.raw_state) == (S.UNKNOWN, "RELOCATING")
        lab.emulator.set_cluster_health(lab.ref.cluster, S.UNKNOWN)  # no metadata.state at all
        status = await lab.provider.cluster_status(lab.ref)
        assert (status.state, status.raw_state) == (S.UNKNOWN, "")


async def test_permanent_4xx_is_not_retried(tmp_path: Path) -> None:
    async with ionos_lab.running(tmp_path) as lab:
        missing = lab.ref.model_copy(update={"cluster": "0b7d1f3e-0000-4000-8000-000000000000"})
        with pytest.raises(http.NotFoundError, match="Resource does not exist"):
            await lab.provider.kubeconfig(missing)
        assert calls(lab, "/cloudapi") == 1
        with pytest.raises(http.ApiError, match="invalid record") as caught:
            await lab.provider.dns_set(ZONE, f"www.{ZONE}", "BOGUS", ("x",), 60)
        assert caught.value.status == 422
        assert sum(ex.method == "PUT" for ex in lab.emulator.exchanges) == 1
        with pytest.raises(http.NotFoundError, match="zone"):
            await lab.provider.dns_get("other.example.", "www.other.example.", "A")


async def test_no_token_in_logs_or_errors(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    async with ionos_lab.running(tmp_path, timeout=0.2) as lab:
        p, emu = lab.provider, lab.emulator
        password = emu.password
        await p.cluster_status(lab.ref)
        await p.kubeconfig(lab.ref)
        await p.dns_set(ZONE, f"www.{ZONE}", "A", ("192.0.2.1",), 60)
        emu.expire_tokens()
        await p.cluster_status(lab.ref)
        for fault in ("unauthorized", "malformed", "hang", "rate-limited", "unavailable"):
            emu.inject(fault, times=1 if fault == "hang" else 4, delay=0.3, retry_after=0,
                       path_prefix="/cloudapi")
            try:
                await p.kubeconfig(lab.ref)
            except errors.FailoverError as exc:
                texts.append(f"{exc!s} {exc!r} {exc.__cause__!r}")
            emu.clear_faults()
        emu.password = "changed-by-someone-else"
        emu.expire_tokens()
        with pytest.raises(errors.AuthError) as caught:
            await p.kubeconfig(lab.ref)
        texts.append(f"{caught.value!s} {caught.value!r} {caught.value.__cause__!r}")
        texts.append(repr(p) + repr(p.auth) + repr(lab.settings))
        issued = list(emu.issued_tokens)
    texts += [r.getMessage() for r in caplog.records]
    assert len(issued) >= 2 and len(texts) >= 5
    leaks = [t for t in texts for token in issued if token in t]
    assert not leaks
    assert not any(password in t or "ionos-k8s-admin-token" in t for t in texts)
