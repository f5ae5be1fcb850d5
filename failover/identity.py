"""Who holds the mutation lease: one identity per *process*, and whether that process is gone.

The holder used to default to the host name, so two daemons started on one host with one state
directory both "held" the lease and both failed over (issue 13, defect 5). A holder is now
``[name@]host:pid:token``: unique per process (the random token also separates a recycled PID),
so a second daemon stands by. A daemon restarted after ``kill -9`` must not wait out the old
lease either: a holder on *this* host whose PID no longer runs is provably dead, and its lease
may be taken at once (a compare-and-delete on exactly that holder string, so a live holder is
never displaced). Holders on other hosts are never judged here: their leases expire.
"""

from __future__ import annotations

import os
import secrets
import socket
from pathlib import Path


def make_holder(name: str | None = None) -> str:
    """``name@host:pid:token`` (``host:pid:token`` without a name)."""
    host = socket.gethostname()
    prefix = f"{name}@{host}" if name and name != host else host
    return f"{prefix}:{os.getpid()}:{secrets.token_hex(4)}"


def parse(holder: str) -> tuple[str, int] | None:
    """(host, pid) of a holder made by :func:`make_holder`, or None for any other string."""
    parts = holder.rsplit(":", 2)
    if len(parts) != 3 or not parts[1].isdigit():
        return None
    return parts[0].rsplit("@", 1)[-1], int(parts[1])


def _running(pid: int) -> bool:
    """The process exists and is not a zombie (a killed daemon not yet reaped holds nothing)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return True  # no procfs: trust kill(0)
    return (stat.rsplit(")", 1)[-1].split() or ["?"])[0] not in ("Z", "X")


def is_dead_local(holder: str) -> bool:
    """True only when ``holder`` names a process on this host that no longer runs."""
    parsed = parse(holder)
    if parsed is None:
        return False
    host, pid = parsed
    return host == socket.gethostname() and pid != os.getpid() and not _running(pid)
