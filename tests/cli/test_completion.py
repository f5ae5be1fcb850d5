"""Shell completion, exercised in a real bash: the generated script is sourced, ``complete -p``
shows it is registered, and ``COMP_WORDS``/``COMP_CWORD`` are set as bash sets them on <Tab> before
calling the completion function, which runs the real ``failover __complete``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from failover.store import queries
from tests.cli.docs import SITES

BIN = Path(sys.executable).parent


def bash(script: str, state: Path) -> str:
    assert (BIN / "failover").exists(), "the console script is installed with the project"
    env = {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}", "FAILOVER_STATE_DIR": str(state)}
    proc = subprocess.run(["bash", "--norc", "--noprofile", "-c", script], capture_output=True, text=True, env=env,
                          timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def tab(line: str) -> str:
    """Bash statements that complete ``line`` as if <Tab> was pressed at its end."""
    words = line.split(" ")
    quoted = " ".join(f"'{w}'" for w in words)
    return (f"COMP_WORDS=({quoted}); COMP_CWORD={len(words) - 1}; COMP_LINE='{line}'; COMP_POINT={len(line)}; "
            f"COMPREPLY=(); _failover_complete; echo \"{line}=>${{COMPREPLY[*]}}\"")


@pytest.fixture
def state(tmp_path: Path) -> Path:
    store = queries.open_store(tmp_path)
    try:
        run_id = store.create_run(playbook="failover", kind="failover", params={}, epoch=1).id
        assert run_id
    finally:
        store.close()
    return tmp_path


def test_bash_completion_of_commands_options_sites_playbooks_runs_and_files(state: Path) -> None:
    (state / "lab.yaml").write_text("")
    cases = ["failover st", "failover ", "failover status --w", "failover run ", "failover run failover --to ",
             "failover run failover --to st", "failover lab break ", "failover approve ",
             "failover completion ", f"failover --config {state}/lab.y", "failover lab "]
    script = f'source <(failover completion bash)\ncomplete -p failover\n{chr(10).join(map(tab, cases))}\n'
    out = bash(script, state).splitlines()
    assert out[0] == "complete -F _failover_complete failover"
    got = dict(line.split("=>", 1) for line in out[1:])
    assert got["failover st"] == "status"
    assert {"status", "history", "plan", "run", "approve", "lab", "completion"} <= set(got["failover "].split())
    assert "__complete" not in got["failover "]
    assert got["failover status --w"].split() == ["--watch", "--wide"]
    assert {"failover", "switchover"} <= set(got["failover run "].split())
    assert got["failover run failover --to "].split() == list(SITES)
    assert got["failover run failover --to st"] == "stackit-eu01"
    assert got["failover lab break "].split() == list(SITES)
    assert got["failover approve "] == "1"
    assert got["failover completion "].split() == ["bash", "zsh"]
    assert got[f"failover --config {state}/lab.y"] == f"{state}/lab.yaml"
    assert got["failover lab "].split() == ["up", "status", "break", "heal", "down", "demo"]


def test_zsh_script_is_generated_and_parses() -> None:
    proc = subprocess.run([sys.executable, "-m", "failover.cli", "completion", "zsh"], capture_output=True,
                          text=True, timeout=30, check=True)
    assert "compdef _failover_complete failover" in proc.stdout and "__complete" in proc.stdout
    zsh = shutil.which("zsh")
    if zsh:  # not installed everywhere; bash -n would not understand zsh's syntax
        subprocess.run([zsh, "-n", "-c", proc.stdout], check=True, timeout=30)


def test_the_completion_helper_imports_nothing_heavy(state: Path) -> None:
    """It runs on every <Tab>: plain YAML and SQLite only, no pydantic, rich or HTTP clients."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "failover.cli", "__complete", "approve", ""],
                          capture_output=True, text=True, timeout=60, check=True,
                          env={**os.environ, "FAILOVER_STATE_DIR": str(state)})
    assert proc.stdout.split() == ["1"]
    modules = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert not [m for m in modules if m.split(".")[0] in ("asyncio", "rich", "pydantic", "httpx", "aiohttp",
                                                          "aiobotocore", "kubernetes_asyncio", "providers")]
