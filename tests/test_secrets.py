"""Secrets are masked in log records and texts once registered."""

from __future__ import annotations

import logging

import pytest

from failover.core import secrets


def test_registered_secret_is_masked_in_logs_and_text(caplog: pytest.LogCaptureFixture) -> None:
    token = "tok-very-secret-1234567890"
    secrets.register(token)
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger("t.secrets")
    logger.addHandler(handler)
    secrets.install_log_filter(logger)
    secrets.install_log_filter(logger)  # idempotent: wrapped once
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "auth with %s ok", (token,), None)
    assert handler.format(record) == "INFO auth with *** ok"
    assert token in record.getMessage()  # the shared record itself is untouched
    assert isinstance(handler.formatter, secrets.RedactingFormatter)
    assert not isinstance(handler.formatter.inner, secrets.RedactingFormatter)
    assert secrets.redact(f"Bearer {token}") == "Bearer ***"
    assert secrets.redact("short") == "short"
    logger.removeHandler(handler)


def test_short_values_are_not_registered() -> None:
    secrets.register("abc")
    assert "abc" not in secrets.known()
