"""The session's secret scan works: a leaked token in a log line is found (then forgotten)."""

from __future__ import annotations

import logging

from failover.core import secrets
from tests import conftest


def test_scan_finds_a_token_in_a_log_line() -> None:
    token = "scan-check-token-0123456789"
    before = len(conftest.CAPTURE.lines)
    secrets.register(token)
    # the project's loggers mask registered secrets once the filter is installed on a handler;
    # the capture handler sees the raw message, which is what the scan is for
    logging.getLogger("failover.test").warning("token is %s", token)
    leaks = [line for line in conftest.CAPTURE.lines[before:] if token in line]
    assert leaks, "the capture handler did not see the log line"
    del conftest.CAPTURE.lines[before:]  # this leak was on purpose
    assert token not in "\n".join(conftest.CAPTURE.lines)
