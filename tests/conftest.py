"""Session-wide guard: no secret the process learned may appear in any log line of the test run.

Every log record of the project's loggers (DEBUG and up) and every WARNING+ record of any other
logger is kept as formatted text. Adapters register each token the moment they receive it
(:func:`failover.core.secrets.register`); at the end of the session the captured lines are grepped for
every registered secret, and a leak fails the run with the offending line (masked).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from failover.core import secrets

pytest_plugins = ["tests.repo_guard"]  # fails the session if a test opens a file outside the repository


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def setFormatter(self, fmt: logging.Formatter | None) -> None:
        # the CLI makes every handler redact; the scan must see the raw lines
        if not isinstance(fmt, secrets.RedactingFormatter):
            super().setFormatter(fmt)

    def emit(self, record: logging.LogRecord) -> None:
        ours = record.name.startswith(("failover", "providers", "tests"))
        if ours or record.levelno >= logging.WARNING:
            try:
                self.lines.append(self.format(record))
            except Exception:  # a broken record must not break the run
                self.lines.append(f"{record.name} unformattable record")


CAPTURE = _Capture()


@pytest.fixture(scope="session", autouse=True)
def _capture_every_log_line() -> Iterator[None]:
    root = logging.getLogger()
    root.addHandler(CAPTURE)
    for name in ("failover", "providers"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    yield
    root.removeHandler(CAPTURE)


def leaked_lines() -> list[str]:
    known = [s for s in secrets.known() if len(s) >= 8]
    return [line for line in CAPTURE.lines if any(s in line for s in known)]


#: what the xdist workers found: (log lines, registered secrets, masked leaked lines) per worker
FROM_WORKERS: list[tuple[int, int, list[str]]] = []


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    found = getattr(node, "workeroutput", {}).get("secret_scan")
    if found is not None:
        FROM_WORKERS.append((int(found[0]), int(found[1]), list(found[2])))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    leaks = [secrets.redact(line)[:300] for line in leaked_lines()]
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: the controller judges and reports
        workeroutput["secret_scan"] = (len(CAPTURE.lines), len(secrets.known()), leaks[:10])
        return
    lines, known = len(CAPTURE.lines), len(secrets.known())
    for w_lines, w_known, w_leaks in FROM_WORKERS:
        lines, known = lines + w_lines, known + w_known
        leaks += w_leaks
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"secret scan: {lines} log lines, {known} registered secrets, {len(leaks)} leaks")
    if leaks:
        if reporter is not None:
            for line in leaks[:10]:
                reporter.write_line(f"SECRET LEAK: {line}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
