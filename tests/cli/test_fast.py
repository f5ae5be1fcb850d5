"""Fast read commands: start-up imports nothing heavy; ``status`` answers from the daemon's fresh
snapshot without probing; stale and missing snapshots say so; ``--watch`` redraws on change and
exits 0 on Ctrl-C; a config edited after it was cached is validated again.

The runs are lab-less on purpose: the lab config resolves its endpoints from a running lab, so any
attempt to probe fails ("the lab is not running"); ``status --live`` shows that it would.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from failover.store import queries
from tests.cli.docs import SITES, status_doc

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("asyncio", "rich", "pydantic", "aiohttp", "httpx", "aiobotocore", "kubernetes_asyncio", "providers",
         "failover.daemon", "failover.playbook", "failover.health", "failover.config.models")


def cli(state: Path, *words: str, config: Path | None = None, env: dict[str, str] | None = None,
        importtime: bool = False) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, *(["-X", "importtime"] if importtime else []), "-m", "failover.cli"]
    cmd += ["--config", str(config)] if config else []
    return subprocess.run([*cmd, *words], capture_output=True, text=True, timeout=60, check=False,
                          env={**os.environ, "FAILOVER_STATE_DIR": str(state), "COLUMNS": "80", **(env or {})})


def imported(stderr: str) -> set[str]:
    return {line.split("|")[-1].strip() for line in stderr.splitlines() if line.startswith("import time:")}


def heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))


@pytest.fixture
def state(tmp_path: Path) -> Path:
    path = tmp_path / "state"
    path.mkdir()
    return path


def write_snapshot(state: Path, doc: dict[str, Any]) -> None:
    store = queries.open_store(state)
    try:
        store.set_state("status", doc)
    finally:
        store.close()


def test_help_and_parser_import_nothing_heavy(state: Path) -> None:
    proc = cli(state, "--help", importtime=True)
    assert proc.returncode == 0 and "status" in proc.stdout
    assert heavy(imported(proc.stderr)) == []
    assert "__complete" not in proc.stdout  # the hidden completion helper is not advertised


def test_status_answers_from_a_fresh_snapshot_without_probing(state: Path) -> None:
    write_snapshot(state, status_doc())
    first = cli(state, "status", "--json", importtime=True)  # validates the config and caches the facts
    assert first.returncode == 0, first.stderr
    doc = json.loads(first.stdout)
    assert list(doc["sites"]) == list(SITES) and doc["stale"] is False and doc["age_s"] < 60
    assert doc["sites"]["scs-pco-prod1"]["health"] == "down" and doc["run"] is None
    # no probe code was even loaded: no daemon, no watcher, no HTTP client
    assert not [m for m in imported(first.stderr) if m.startswith(("failover.daemon", "failover.health",
                                                                   "httpx", "aiohttp", "aiobotocore"))]
    again = cli(state, "status", importtime=True)  # the config is unchanged: not even pydantic now
    assert again.returncode == 0, again.stderr
    assert heavy(imported(again.stderr)) == []
    assert all(any(line.startswith(name + " ") for line in again.stdout.splitlines()) for name in SITES)
    live = cli(state, "status", "--live", "--json")  # a probe round needs the (absent) lab: it would fail
    assert live.returncode == 1 and "the lab is not running" in live.stderr


def test_a_stale_snapshot_is_shown_as_stale_and_a_missing_one_says_how_to_probe(state: Path) -> None:
    missing = cli(state, "status")
    assert missing.returncode == 1 and "status --live" in missing.stderr
    write_snapshot(state, status_doc(updated_at=datetime.now(UTC) - timedelta(hours=1)))
    proc = cli(state, "status", "--json")
    assert proc.returncode == 0 and json.loads(proc.stdout)["stale"] is True
    text = cli(state, "status").stdout
    assert "stale" in text and "status --live" in text


def test_a_config_changed_after_caching_is_validated_again(state: Path, tmp_path: Path) -> None:
    data = yaml.safe_load((REPO / "config" / "lab.yaml").read_text())
    data["workplace"]["profile"] = str(REPO / "config" / "workplaces" / "opendesk.yaml")
    config = tmp_path / "lab.yaml"
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    write_snapshot(state, status_doc())
    assert cli(state, "status", config=config).returncode == 0
    assert list((state / "cache").iterdir())  # the validated facts are kept
    data["health"]["interval"] = -1
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    proc = cli(state, "status", config=config)
    assert proc.returncode == 2 and f"{config}:" in proc.stderr and "interval" in proc.stderr
    validate = cli(state, "config", "validate", config=config)
    assert validate.returncode == 2


class Lines:
    """The stdout of a running process, read line by line until a condition holds."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        self.proc, self.text = proc, ""
        self.selector = selectors.DefaultSelector()
        self.selector.register(proc.stdout, selectors.EVENT_READ)

    def until(self, predicate: Any, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while not predicate(self.text):
            assert time.monotonic() < deadline, f"timed out; output so far:\n{self.text}"
            if self.selector.select(timeout=1):
                chunk = os.read(self.proc.stdout.fileno(), 65536).decode()  # type: ignore[union-attr]
                assert chunk, f"the process ended; output:\n{self.text}"
                self.text += chunk
        return self.text


@pytest.fixture
def watching(state: Path) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen([sys.executable, "-m", "failover.cli", "status", "--watch"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "FAILOVER_STATE_DIR": str(state), "COLUMNS": "80"})
    yield proc
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_watch_redraws_on_change_and_ctrl_c_exits_0(state: Path, watching: subprocess.Popen[str]) -> None:
    write_snapshot(state, status_doc())
    lines = Lines(watching)
    lines.until(lambda text: text.count("Ctrl-C quits") == 1)
    assert "kube: connection refused" in lines.text
    write_snapshot(state, status_doc())  # only the time changed: no redraw for that
    write_snapshot(state, status_doc(scs_health="healthy"))  # the scs site recovered: a redraw
    text = lines.until(lambda text: text.count("Ctrl-C quits") == 2)
    last = text[text.rindex("active site:"):]
    assert "kube: connection refused" not in last
    assert any(line.startswith("scs-pco-prod1 ") and "healthy" in line for line in last.splitlines())
    watching.send_signal(signal.SIGINT)
    assert watching.wait(timeout=30) == 0
    assert "Traceback" not in (watching.stderr.read() if watching.stderr else "")


def test_the_fast_paths_locate_files_as_the_loader_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from failover.config import loader, paths

    assert paths.default_config_path() == loader.default_config_path()
    monkeypatch.setenv("FAILOVER_STATE_DIR", str(tmp_path / "elsewhere"))
    loaded = loader.load(None)
    assert paths.state_dir(None, loaded.path) == loaded.state_dir == (tmp_path / "elsewhere").resolve()
    assert paths.state_dir("rel", loaded.path) == (loaded.path.parent / "rel").resolve()
