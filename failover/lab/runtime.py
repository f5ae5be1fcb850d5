"""The lab's state on disk: where its files live, and which processes it owns.

The lab runs in a background supervisor, so the CLI, the daemon and the tests find it only
through files under ``<state>/lab/``:

* ``runtime.json`` — the ``lab status --json`` contract (endpoints, lab-only credentials); written
  atomically by the supervisor once the world is ready, removed when it stops;
* ``pids.json`` — every process the lab started (the supervisor and each ``moto_server`` and
  ``pdns_server``), written *as each one starts* (before it serves), so ``lab down`` can stop them
  even after the supervisor crashed; ``lab down`` also sweeps the supervisor's session (it is a
  session leader) for lab commands the records missed. Each record carries the command name,
  so a recycled PID that now belongs to another program is never signalled;
* ``supervisor.log`` and ``logs/`` — the supervisor's and the children's output.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from failover.core import errors


@dataclass(frozen=True)
class LabPaths:
    """The lab's files under one state directory."""

    state_dir: Path

    @property
    def root(self) -> Path:
        return self.state_dir / "lab"

    @property
    def runtime_json(self) -> Path:
        return self.root / "runtime.json"

    @property
    def pids_json(self) -> Path:
        return self.root / "pids.json"

    @property
    def supervisor_log(self) -> Path:
        return self.root / "supervisor.log"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def generator_json(self) -> Path:
        return self.root / "generator.json"

    def ensure(self) -> LabPaths:
        self.logs.mkdir(parents=True, exist_ok=True)
        return self


@dataclass(frozen=True)
class PidRecord:
    """A process the lab started; ``command`` is matched against /proc before any signal."""

    name: str
    pid: int
    command: str
    directory: str = ""  #: a private temp directory of the process, removed by ``lab down``


def write_json_atomic(path: Path, data: Any, *, mode: int = 0o600) -> None:
    """Write ``data`` as JSON so readers never see a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2)
    os.replace(tmp, path)


def read_runtime(paths: LabPaths) -> dict[str, Any] | None:
    """The running lab's status document, or None when no lab has written one."""
    try:
        data = json.loads(paths.runtime_json.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise errors.PermanentError(f"cannot read {paths.runtime_json}: {exc}") from exc
    return data if isinstance(data, dict) else None


def write_runtime(paths: LabPaths, data: dict[str, Any]) -> None:
    write_json_atomic(paths.runtime_json, data)


def read_pids(paths: LabPaths) -> list[PidRecord]:
    try:
        raw = json.loads(paths.pids_json.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise errors.PermanentError(f"cannot read {paths.pids_json}: {exc}") from exc
    out = []
    for item in raw if isinstance(raw, list) else []:
        if isinstance(item, dict) and isinstance(item.get("pid"), int):
            out.append(PidRecord(name=str(item.get("name", "")), pid=int(item["pid"]),
                                 command=str(item.get("command", "")), directory=str(item.get("directory", ""))))
    return out


@contextlib.contextmanager
def _locked(paths: LabPaths) -> Iterator[None]:
    """Serialise read-modify-write of ``pids.json`` between processes (the CLI records the
    supervisor while the supervisor records its children)."""
    paths.root.mkdir(parents=True, exist_ok=True)
    with open(paths.root / ".pids.lock", "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def record_pid(paths: LabPaths, *, name: str, pid: int, command: str, directory: str = "") -> None:
    """Add (or replace, by name) a process record. Called as soon as the process exists."""
    with _locked(paths):
        records = [r for r in read_pids(paths) if r.name != name]
        records.append(PidRecord(name=name, pid=pid, command=command, directory=directory))
        write_json_atomic(paths.pids_json, [r.__dict__ for r in records])


#: what the lab's supervisor starts; only these are ever swept from its session
LAB_COMMANDS = ("moto_server", "pdns_server", "failover.lab")


def session_members(session: int) -> list[PidRecord]:
    """Live processes of the supervisor's session (it is a session leader, ``start_new_session``)
    that run one of :data:`LAB_COMMANDS` — children the records may have missed."""
    out: list[PidRecord] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            stat = (entry / "stat").read_text(encoding="utf-8", errors="replace")
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) < 4 or fields[0] in ("Z", "X") or fields[3] != str(session):
            continue
        command = next((c for c in LAB_COMMANDS if c in cmdline), None)
        if command is not None:
            out.append(PidRecord(name=f"session-{entry.name}", pid=int(entry.name), command=command))
    return out


def is_alive(record: PidRecord) -> bool:
    """True while ``record``'s process runs (zombies count as gone) and still is that command."""
    try:
        stat = Path(f"/proc/{record.pid}/stat").read_text(encoding="utf-8", errors="replace")
        cmdline = Path(f"/proc/{record.pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    state = stat.rsplit(")", 1)[-1].split()[0] if ")" in stat else ""
    if state in ("Z", "X"):
        return False
    return not record.command or record.command in cmdline


def signal_process(record: PidRecord, sig: signal.Signals) -> None:
    if is_alive(record):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(record.pid, sig)


def _exists(pid: int) -> bool:
    """The process is still there and not a zombie (an exiting process has lost its cmdline first)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return (stat.rsplit(")", 1)[-1].split() or ["X"])[0] not in ("Z", "X")


def wait_gone(records: list[PidRecord], *, timeout: float) -> list[PidRecord]:
    """Wait until every record's process has exited (not merely stopped looking like its command);
    return those still alive after ``timeout``."""
    deadline = time.monotonic() + timeout
    pids = {r.pid for r in records if is_alive(r)}
    while True:
        alive = [r for r in records if is_alive(r) or (r.pid in pids and _exists(r.pid))]
        if not alive or time.monotonic() >= deadline:
            return [r for r in alive if is_alive(r)]
        time.sleep(0.05)


def stop_all(paths: LabPaths, *, grace: float = 8.0) -> list[PidRecord]:
    """Stop the supervisor, then every recorded child still alive (TERM, then KILL).

    Returns the records that were alive when we started. Removes ``runtime.json`` and
    ``pids.json`` once nothing recorded runs any more.
    """
    records = read_pids(paths)
    sessions = {r.pid for r in records if r.name == "supervisor"}
    known = {r.pid for r in records}
    records += [m for s in sessions for m in session_members(s) if m.pid not in known]
    running = [r for r in records if is_alive(r)]
    supervisors = [r for r in running if r.name == "supervisor"]
    for record in supervisors:
        signal_process(record, signal.SIGTERM)
    wait_gone(supervisors, timeout=grace)  # a healthy supervisor stops its own children first
    children = [r for r in records if is_alive(r)]
    for record in children:
        signal_process(record, signal.SIGTERM)
    left = wait_gone(children, timeout=3.0)
    for record in left:
        signal_process(record, signal.SIGKILL)
    left = wait_gone(left, timeout=2.0)
    if left:
        names = ", ".join(f"{r.name} (pid {r.pid})" for r in left)
        raise errors.PermanentError(f"could not stop: {names}")
    tmp = Path(tempfile.gettempdir()).resolve()
    for record in records:
        directory = Path(record.directory).resolve() if record.directory else None
        if directory is not None and directory.parent == tmp and directory.name.startswith("failover-"):
            if directory.name.startswith("failover-pg-"):  # a recovered cluster no record names
                from failover.lab import postgres

                postgres.stop_clusters(directory)
            shutil.rmtree(directory, ignore_errors=True)  # only our own temp dirs, never a user path
    paths.runtime_json.unlink(missing_ok=True)
    paths.pids_json.unlink(missing_ok=True)
    return running
