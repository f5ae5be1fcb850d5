"""``failover lab demo`` in a terminal of 80×24 (tmux): the screen holds the live view and the
summary, no raw log line, and no site name cut by the terminal or an ellipsis.

The demo brings up the whole lab (~40 s on a quiet machine): this is the only such test.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.cli.docs import SITES

REPO = Path(__file__).resolve().parents[2]

#: a log line of the kind the view replaces (warnings and errors may appear above the view, by design)
RAW_LOG = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} +(DEBUG|INFO) ")
WARNING_LOG = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} +(WARNING|ERROR|CRITICAL) ")
DONE = "DEMO-EXIT="


class Terminal:
    """A detached tmux session of a fixed size on a private server (its own socket)."""

    def __init__(self, tmp: Path) -> None:
        self.socket = f"failover-test-{os.getpid()}-{tmp.name}"

    def tmux(self, *words: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *words], capture_output=True, text=True, check=True,
                              timeout=30).stdout

    def start(self, command: str) -> None:
        self.tmux("new-session", "-d", "-x", "80", "-y", "24", "-s", "demo", command)

    def screen(self, *, joined: bool = False) -> str:
        """Everything printed (scrollback included); ``joined`` undoes the terminal's own wrapping."""
        return self.tmux("capture-pane", "-p", "-S", "-", *(["-J"] if joined else []), "-t", "demo")

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, check=False, timeout=30)


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Terminal]:
    term = Terminal(tmp_path)
    yield term
    term.close()
    subprocess.run([sys.executable, "-m", "failover.cli", "--config", str(tmp_path / "lab.yaml"), "lab", "down"],
                   capture_output=True, timeout=120, check=False,
                   env={**os.environ, "FAILOVER_STATE_DIR": str(tmp_path / "state")})


def cut_names(screen: str) -> list[str]:
    """Words that are a site name's beginning and end in an ellipsis or at a hyphen."""
    found = []
    for token in re.findall(r"[\w./-]+…?", screen):
        stem = token.rstrip("…")
        if stem not in SITES and any(site.startswith(stem) for site in SITES) and \
                (token.endswith("…") or "-" in stem):
            found.append(token)
    return found


def tolerant_config(tmp: Path) -> Path:
    """The lab config with probe timeouts that hold on a machine busy with other test suites
    (the demo waits for a healthy active site; a 2 s probe timeout makes it look degraded)."""
    data = yaml.safe_load((REPO / "config" / "lab.yaml").read_text())
    data["workplace"]["profile"] = str(REPO / "config" / "workplaces" / "opendesk.yaml")
    data["health"].update({"timeout": 8.0, "storage_timeout": 15.0})
    path = tmp / "lab.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.mark.timeout(600)  # ~40 s on a quiet machine; generous when other suites share the cores
def test_lab_demo_screen_at_80x24_holds_the_view_without_log_lines_or_cut_names(
        terminal: Terminal, tmp_path: Path) -> None:
    config = tolerant_config(tmp_path)
    command = (f"env FAILOVER_STATE_DIR={shlex.quote(str(tmp_path / 'state'))} {shlex.quote(sys.executable)} "
               f"-m failover.cli --config {shlex.quote(str(config))} lab demo; echo {DONE}$?; sleep 600")
    terminal.start(command)
    terminal.tmux("set-option", "-t", "demo", "history-limit", "10000")
    deadline = time.monotonic() + 570
    while DONE not in terminal.screen():
        assert time.monotonic() < deadline, terminal.screen()
        time.sleep(1)
    screen = terminal.screen()
    assert not [line for line in screen.splitlines() if RAW_LOG.match(line)], screen
    assert cut_names(screen) == [], screen
    # the view wraps between words itself: the terminal wrapped none of its lines (that cuts words);
    # the log file's path after it is one long word
    joined = [line.rstrip() for line in terminal.screen(joined=True).splitlines()]
    view = joined[:next(i for i, line in enumerate(joined) if line.startswith("logs: "))]
    shown = {line.rstrip() for line in screen.splitlines()}
    assert [line for line in view if line not in shown and not WARNING_LOG.match(line)] == [], screen
    assert "decision:" in screen and "Traceback" not in screen, screen
    log_file = Path(next(line for line in joined if line.startswith("logs: ")).removeprefix("logs: "))
    assert log_file.is_relative_to(tmp_path / "state") and " INFO " in log_file.read_text()
    # the story's outcome is the e2e tests' and bench/demo.py's to judge; on a machine too busy for
    # the demo's own time bounds it stops early with that message, and the screen rules still hold
    if f"{DONE}0" in screen:
        assert "6. summary" in screen and "after healing: active=" in screen, screen
    else:
        assert "error: demo:" in screen and "did not happen within" in " ".join(joined), screen
