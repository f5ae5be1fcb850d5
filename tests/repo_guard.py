"""Session-wide guard: no test may read or write a file outside the repository.

A fresh clone (a packager's machine, CI) has nothing beside the checkout, so a test that opens
a sibling directory of the checkout or a file in someone's home passes here and fails there. An audit hook
(:func:`sys.addaudithook`) sees every ``open`` of this process from the moment the plugin is
imported (before collection); paths outside the repository and outside the places a Python process
legitimately reads (the interpreter and its site-packages, the venv, temporary directories,
system directories, caches in ``$HOME``) are recorded, and the session fails listing them.
Subprocesses (lab parts, the CLI under test) are not audited here; they are started by the tests
with explicit paths under temporary directories.
"""

from __future__ import annotations

import os
import site
import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _allowed_prefixes() -> tuple[str, ...]:
    home = Path.home()
    places = {
        str(ROOT), tempfile.gettempdir(), "/tmp", "/var/tmp", "/dev", "/proc", "/sys", "/usr", "/etc",
        "/lib", "/lib64", "/bin", "/sbin", "/run", "/opt", "/var/lib", sys.prefix, sys.base_prefix,
        sys.exec_prefix, str(home / ".cache"), str(home / ".local" / "share"), str(home / ".config" / "pip"),
        *site.getsitepackages(), site.getusersitepackages(),
        *(path for path in sysconfig.get_paths().values()),
    }
    prefixes = {os.path.abspath(p).rstrip("/") + "/" for p in places if p}
    # files a library reads from $HOME on its own (aiohttp with trust_env reads ~/.netrc)
    prefixes |= {str(home / ".netrc") + "/"}
    return tuple(sorted(prefixes))


ALLOWED = _allowed_prefixes()
OUTSIDE: set[str] = set()


def _inside(path: str) -> bool:
    return (path + "/").startswith(ALLOWED)


def _hook(event: str, args: tuple[object, ...]) -> None:
    if event != "open" or not args:
        return
    target = args[0]
    if isinstance(target, bytes):
        target = os.fsdecode(target)
    if not isinstance(target, str):  # a file descriptor or a path-like already resolved
        return
    try:
        path = os.path.abspath(target)
    except Exception:  # the hook must never break the call it watches
        return
    if not _inside(path) and not os.path.isdir(path):  # a directory holds no content to read
        OUTSIDE.add(path)


sys.addaudithook(_hook)


#: paths the xdist workers reported (the controller's own process opens none of the tests' files)
FROM_WORKERS: set[str] = set()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    FROM_WORKERS.update(getattr(node, "workeroutput", {}).get("outside_repository", []))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: the controller judges and reports
        workeroutput["outside_repository"] = sorted(OUTSIDE)
        return
    found = OUTSIDE | FROM_WORKERS
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"repository guard: {len(found)} files opened outside the repository")
    if found:
        if reporter is not None:
            for path in sorted(found)[:20]:
                reporter.write_line(f"OUTSIDE THE REPOSITORY: {path}  (vendor it under the repository or use tmp_path)")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
