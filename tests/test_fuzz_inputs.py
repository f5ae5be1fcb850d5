"""Fuzzing the two human inputs: configs and playbooks, mutated at random and by known hostile classes.

Every case must end in one of two ways: the loader accepts it (a harmless mutation), or it raises
the input error type whose every issue names the file and a line. Never another exception, never a
hang (each case runs under an interval timer), never a file in the state directory. The run is
seeded (``FUZZ_SEED``) and so reproducible; a failing case prints its seed index and mutation.
Most cases call the loaders in-process (fast); a handful go through the CLI to check exit code 2
and that no traceback reaches the terminal.
"""

from __future__ import annotations

import copy
import os
import random
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from failover.config import loader
from failover.core import errors
from failover.playbook import loader as pb_loader

REPO = Path(__file__).resolve().parents[1]
SEED = int(os.environ.get("FUZZ_SEED", "1313"))
CONFIG_CASES = 1000
PLAYBOOK_CASES = 200
CASE_BOUND_S = 10.0  #: a case still running after this is a hang (the alias bomb took minutes)

HOSTILE_VALUES: list[Any] = [
    1e300, -1, 0, float("inf"), float("-inf"), float("nan"), 10**400, "", "x" * 100_000, None, [], {},
    True, "whenever", "@every 0s", "@every 1e9h", "2020-13-45", "{{ params.from", "\u202e\u0000", -0.0,
    {"nested": {"deeper": [1, 2, {"x": None}]}}, ["a", "a"], "ionos-de-fra", 2**63, 1e-300,
]

#: the classes of issue 13 (items 7 and 8), each one text that must be refused with file:line
KNOWN_CONFIG_CLASSES: dict[str, Callable[[str], bytes]] = {
    "utf-16": lambda base: base.encode("utf-16"),
    "latin-1": lambda base: (base + "# Grüße\n").encode("latin-1"),
    "binary": lambda base: bytes(range(256)) * 8,
    "deep nesting": lambda base: ("a: " + "[" * 5000 + "]" * 5000 + "\n").encode(),
    "deep mapping": lambda base: "".join(f"{'  ' * i}k{i}:\n" for i in range(200)).encode(),
    "merge key": lambda base: base.replace("health:\n", "x: &h {interval: 1}\nhealth:\n  <<: *h\n", 1).encode(),
    "alias bomb": lambda base: ("a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
        f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
        for i in range(9)) + base).encode(),
    "too large": lambda base: (base + "#" + "x" * (2 * 1024 * 1024) + "\n").encode(),
    "empty": lambda base: b"",
    "interval 1e300": lambda base: base.replace("interval: 1.0", "interval: 1e300").encode(),
    "timeout 1e300": lambda base: base.replace("timeout: 2.0", "timeout: 1e300").encode(),
    "fail_after 1e20": lambda base: base.replace("fail_after: 3", "fail_after: 100000000000000000000").encode(),
    "rpo .inf": lambda base: base.replace("rpo: 120", "rpo: .inf").encode(),
    "rpo .nan": lambda base: base.replace("rpo: 120", "rpo: .nan").encode(),
    "backup_interval whenever": lambda base: base.replace('"@every 10s"', "whenever").encode(),
    "backup_interval @every 0s": lambda base: base.replace('"@every 10s"', '"@every 0s"').encode(),
    "preference duplicates": lambda base: base.replace(
        "preference: [stackit-eu01, otc-eu-de, scs-pco-prod1]",
        "preference: [stackit-eu01, stackit-eu01, otc-eu-de]").encode(),
    "100,000-character name": lambda base: base.replace("name: ckki-opendesk", "name: " + "n" * 100_000).encode(),
    "site name 1,000 characters": lambda base: base.replace("- name: otc-eu-de", "- name: o" + "t" * 1000).encode(),
    "profile 1": lambda base: base.replace("profile: PROFILE", "profile: 1").encode(),
    "profile a directory": lambda base: base.replace("profile: PROFILE", "profile: /").encode(),
    "unknown tag": lambda base: base.replace("ttl: 5", "ttl: !!python/object:os.system 5").encode(),
    "nul byte": lambda base: base.replace("ttl: 5", "ttl: 5\x00").encode(),
    "bad date": lambda base: base.replace("ttl: 5", "ttl: 2020-13-45").encode(),
    "huge int": lambda base: base.replace("ttl: 5", "ttl: " + "9" * 5000).encode(),
    "complex key": lambda base: base.replace("ttl: 5", "? [a, b]\n  : 1").encode(),
    "state_dir is a file": lambda base: base.replace("version: 1", "version: 1\nstate_dir: STATE_FILE").encode(),
}

KNOWN_PLAYBOOK_CLASSES: dict[str, Callable[[str], bytes]] = {
    "utf-16": lambda base: base.encode("utf-16"),
    "latin-1": lambda base: (base + "# Grüße\n").encode("latin-1"),
    "timeout 10**400": lambda base: base.replace("timeout: 20s", "timeout: 1" + "0" * 400).encode(),
    "timeout .inf": lambda base: base.replace("timeout: 20s", "timeout: .inf").encode(),
    "timeout 1e400s": lambda base: base.replace("timeout: 20s", "timeout: 1" + "0" * 400 + "s").encode(),
    "unclosed template": lambda base: base.replace('"{{ params.from }}"', '"{{ params.from"', 1).encode(),
    "deep nesting": lambda base: ("name: x\nstages: " + "[" * 5000 + "]" * 5000 + "\n").encode(),
    "alias bomb": lambda base: KNOWN_CONFIG_CLASSES["alias bomb"](base),
    "merge key": lambda base: base.replace("params:\n", "base: &b {x: 1}\nparams:\n  <<: *b\n", 1).encode(),
    "binary": lambda base: bytes(range(256)) * 8,
    "empty": lambda base: b"",
}


class Hang(Exception):
    pass


@contextmanager
def bounded(what: str) -> Iterator[None]:
    def fire(signum: int, frame: Any) -> None:
        raise Hang(f"{what} took longer than {CASE_BOUND_S}s")

    old = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, CASE_BOUND_S)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


# --- mutations -------------------------------------------------------------------------------------

def _paths(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(data, dict):
        for k, v in data.items():
            out.extend(_paths(v, (*prefix, k)))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            out.extend(_paths(v, (*prefix, i)))
    return out


def _set(data: Any, path: tuple[Any, ...], value: Any, *, delete: bool = False) -> Any:
    if not path:
        return value
    parent = data
    for part in path[:-1]:
        parent = parent[part]
    if delete:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return data


def mutate_data(rng: random.Random, data: Any) -> tuple[str, str]:
    """A structural mutation, rendered back to YAML text: (description, text)."""
    doc = copy.deepcopy(data)
    paths = _paths(doc)[1:]
    path = rng.choice(paths)
    choice = rng.random()
    if choice < 0.6:
        value = rng.choice(HOSTILE_VALUES)
        doc = _set(doc, path, value)
        what = f"set {path} to {str(value)[:30]!r}"
    elif choice < 0.8:
        doc = _set(doc, path, None, delete=True)
        what = f"delete {path}"
    else:
        parent = path[:-1]
        target = doc
        for part in parent:
            target = target[part]
        if isinstance(target, dict):
            target[rng.choice(["unknown", "extra_key", 7, "x" * 300])] = rng.choice(HOSTILE_VALUES)
            what = f"add a key under {parent}"
        else:
            doc = _set(doc, path, rng.choice(HOSTILE_VALUES))
            what = f"replace {path}"
    try:
        return what, yaml.safe_dump(doc, sort_keys=False, allow_unicode=rng.random() < 0.5)
    except (yaml.YAMLError, ValueError, OverflowError):
        return what + " (unrenderable; raw)", yaml.safe_dump(data, sort_keys=False)


def mutate_text(rng: random.Random, text: str) -> tuple[str, bytes]:
    """A byte/line-level mutation: (description, bytes)."""
    raw = text.encode()
    lines = text.splitlines(keepends=True)
    kind = rng.randrange(8)
    if kind == 0:
        cut = rng.randrange(len(raw))
        return f"truncate at {cut}", raw[:cut]
    if kind == 1:
        pos = rng.randrange(len(raw))
        junk = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        return f"insert {junk!r} at {pos}", raw[:pos] + junk + raw[pos:]
    if kind == 2:
        data = bytearray(raw)
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        return "flip bytes", bytes(data)
    if kind == 3:
        i = rng.randrange(len(lines))
        return f"delete line {i + 1}", "".join(lines[:i] + lines[i + 1:]).encode()
    if kind == 4:
        i = rng.randrange(len(lines))
        return f"duplicate line {i + 1}", "".join(lines[:i + 1] + lines[i:]).encode()
    if kind == 5:
        i = rng.randrange(len(lines))
        shift = rng.choice(["  ", "\t", " ", "- "])
        return f"indent line {i + 1} with {shift!r}", "".join([*lines[:i], shift + lines[i], *lines[i + 1:]]).encode()
    if kind == 6:
        i = rng.randrange(len(lines))
        token = rng.choice([": :", "&a", "*nowhere", "!!binary x", "{", "]", "'", '"', "%TAG", "---", "|", ">",
                            "<<: *a", "? ", "@", "`"])
        return f"insert {token!r} in line {i + 1}", "".join([*lines[:i], token + lines[i], *lines[i + 1:]]).encode()
    encoding = rng.choice(["utf-16", "utf-32", "latin-1", "cp1252"])
    return f"re-encode as {encoding} with an umlaut", (text + "# Grüße\n").encode(encoding)


# --- the checks ------------------------------------------------------------------------------------

def assert_refused_well(exc: errors.InputError, file: Path, what: str) -> None:
    assert exc.issues, what
    for issue in exc.issues:
        assert issue.file and issue.line is not None and issue.line >= 1, (what, str(issue))
    assert any(issue.file == str(file) or str(file) in issue.message or issue.file.endswith(".yaml")
               for issue in exc.issues), (what, [str(i) for i in exc.issues])


def check_config(path: Path, data: bytes, what: str) -> bool:
    """True if refused (correctly), False if accepted; fails the test on anything else."""
    path.write_bytes(data)
    try:
        with bounded(what):
            loader.load(path)
    except errors.ConfigError as exc:
        assert_refused_well(exc, path, what)
        return True
    except Hang:
        pytest.fail(f"hang: {what}")
    except Exception as exc:  # the point of this test: report which mutation escaped, and how
        pytest.fail(f"{what}: {type(exc).__name__}: {str(exc)[:300]}")
    return False


def check_playbook(path: Path, data: bytes, what: str) -> bool:
    path.write_bytes(data)
    try:
        with bounded(what):
            pb_loader.load_playbook(path)
    except errors.PlaybookError as exc:
        assert_refused_well(exc, path, what)
        return True
    except Hang:
        pytest.fail(f"hang: {what}")
    except Exception as exc:
        pytest.fail(f"{what}: {type(exc).__name__}: {str(exc)[:300]}")
    return False


@pytest.fixture
def config_base(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, Path]:
    state = tmp_path / "state"
    monkeypatch.setenv("FAILOVER_STATE_DIR", str(state))
    text = (REPO / "config" / "lab.yaml").read_text(encoding="utf-8").replace(
        "profile: workplaces/opendesk.yaml", "profile: PROFILE")
    (tmp_path / "a-file").write_text("not a directory\n")
    return text, state


def _render_config(template: str, tmp: Path) -> str:
    return template.replace("PROFILE", str(REPO / "config" / "workplaces" / "opendesk.yaml")).replace(
        "STATE_FILE", str(tmp / "a-file"))


def test_known_config_classes_are_refused_with_file_and_line(tmp_path: Path, config_base: tuple[str, Path]) -> None:
    template, state = config_base
    path = tmp_path / "case.yaml"
    for name, make in KNOWN_CONFIG_CLASSES.items():
        raw = make(template)
        text_ok = True
        try:
            raw = _render_config(raw.decode("utf-8"), tmp_path).encode()
        except UnicodeDecodeError:
            text_ok = False
        assert check_config(path, raw, name), f"{name}: accepted (text={text_ok})"
    assert not state.exists(), "loading a config must not write the state directory"


def test_known_playbook_classes_are_refused_with_file_and_line(tmp_path: Path) -> None:
    base = (REPO / "playbooks" / "failover.yaml").read_text(encoding="utf-8")
    path = tmp_path / "case.yaml"
    for name, make in KNOWN_PLAYBOOK_CLASSES.items():
        assert check_playbook(path, make(base), name), f"{name}: accepted"


def test_a_thousand_mutated_configs(tmp_path: Path, config_base: tuple[str, Path]) -> None:
    template, state = config_base
    base_text = _render_config(template, tmp_path)
    base_data = yaml.safe_load(base_text)
    rng = random.Random(SEED)
    path = tmp_path / "case.yaml"
    refused = 0
    for i in range(CONFIG_CASES):
        if rng.random() < 0.5:
            what, text = mutate_data(rng, base_data)
            raw = text.encode()
        else:
            what, raw = mutate_text(rng, base_text)
        refused += check_config(path, raw, f"config case {i} (seed {SEED}): {what}")
    assert refused >= CONFIG_CASES // 2, f"only {refused} of {CONFIG_CASES} mutations were refused"
    assert not state.exists(), "loading a config must not write the state directory"


def test_two_hundred_mutated_playbooks(tmp_path: Path) -> None:
    base_text = (REPO / "playbooks" / "failover.yaml").read_text(encoding="utf-8")
    base_data = yaml.safe_load(base_text)
    rng = random.Random(SEED + 1)
    path = tmp_path / "case.yaml"
    refused = 0
    for i in range(PLAYBOOK_CASES):
        if rng.random() < 0.5:
            what, text = mutate_data(rng, base_data)
            raw = text.encode()
        else:
            what, raw = mutate_text(rng, base_text)
        refused += check_playbook(path, raw, f"playbook case {i} (seed {SEED}): {what}")
    assert refused >= PLAYBOOK_CASES // 2, f"only {refused} of {PLAYBOOK_CASES} mutations were refused"


CLI_CASES = ["utf-16", "alias bomb", "profile 1"]


def _cli(*words: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "failover.cli", *words], capture_output=True, text=True,
                          env=env, timeout=120, check=False)


@pytest.mark.timeout(600)  # seven CLI processes; on a machine shared by many suites each may take seconds
def test_the_cli_exits_2_without_a_traceback(tmp_path: Path, config_base: tuple[str, Path]) -> None:
    template, state = config_base
    env = {**os.environ, "FAILOVER_STATE_DIR": str(state)}
    for name in CLI_CASES:
        raw = KNOWN_CONFIG_CLASSES[name](template)
        try:
            raw = _render_config(raw.decode("utf-8"), tmp_path).encode()
        except UnicodeDecodeError:
            pass
        path = tmp_path / f"{name.replace(' ', '-')}.yaml"
        path.write_bytes(raw)
        proc = _cli("--config", str(path), "config", "validate", env=env)
        assert proc.returncode == 2, (name, proc.returncode, proc.stderr[-500:])
        assert "Traceback" not in proc.stderr and f"{path}:" in proc.stderr, (name, proc.stderr[-500:])
    proc = _cli("--config", "/dev/zero", "config", "validate", env=env)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "/dev/zero:1:" in proc.stderr, proc.stderr
    good = tmp_path / "good.yaml"
    good.write_text(_render_config(template, tmp_path))
    for limit in ("1e20", "100000000000000000000"):
        proc = _cli("--config", str(good), "history", "--limit", limit, env=env)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, (limit, proc.stderr[-500:])
    assert not state.exists(), "a refused command must not write the state directory"
