"""The quiet live view: log lines go to a file in the state dir, the terminal keeps warnings and
errors (everything with --verbose), and the file's path is printed at the end."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from failover.cli import live
from failover.core import secrets

log = logging.getLogger("failover.playbook.engine")


@contextlib.contextmanager
def terminal() -> Iterator[logging.Handler]:
    """A stderr handler on the root logger, as ``failover.cli.setup_logging`` installs it
    (made inside the test: ``sys.stderr`` is then the test's captured stderr)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.INFO)
    root = logging.getLogger()
    root.addHandler(handler)
    level, root.level = root.level, logging.INFO
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def test_only_warnings_reach_the_terminal_and_everything_reaches_the_file(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    secrets.register("s3cr3t-token-for-the-test")
    with terminal() as handler:
        with live.quiet_logs(tmp_path, name="run") as path:
            log.info("run 1 step restore[group=1] attempt 1 succeeded")
            log.warning("bucket of otc-eu-de slow: 4.2s")
            # a library's INFO line (the session's leak scan keeps only ours and warnings)
            logging.getLogger("vendor.sdk").info("token s3cr3t-token-for-the-test used")
        assert handler.level == logging.INFO  # restored
        log.info("after the view")
    err = capsys.readouterr().err
    assert "bucket of otc-eu-de slow" in err and "attempt 1 succeeded" not in err
    assert f"logs: {path}\n" in err and path.parent == tmp_path / "logs"
    text = path.read_text()
    assert "attempt 1 succeeded" in text and "slow: 4.2s" in text
    assert "s3cr3t-token-for-the-test" not in text and "token *** used" in text
    assert "after the view" in err


def test_verbose_keeps_every_line_on_the_terminal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with terminal(), live.quiet_logs(tmp_path, name="demo", verbose=True) as path:
        log.info("run 1 step dns-switch attempt 1 succeeded")
    assert "dns-switch attempt 1 succeeded" in capsys.readouterr().err
    assert "dns-switch" in path.read_text()
