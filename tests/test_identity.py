"""Lease holders are unique per process, and only a provably dead local holder is displaced."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from failover import identity
from failover.store import sqlite


def test_holders_are_unique_per_process_and_name_host_and_pid() -> None:
    a, b = identity.make_holder(), identity.make_holder()
    assert a != b
    assert identity.parse(a) == (socket.gethostname(), os.getpid())
    named = identity.make_holder("node-1")
    assert named.startswith("node-1@") and identity.parse(named) == (socket.gethostname(), os.getpid())
    assert identity.parse("test-node") is None and identity.parse("cli:root") is None


def test_only_a_dead_process_on_this_host_is_dead(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    holder = f"{socket.gethostname()}:{proc.pid}:abcd"
    try:
        assert not identity.is_dead_local(holder)
        proc.kill()
        proc.wait()
        assert identity.is_dead_local(holder)
    finally:
        proc.kill()
    assert not identity.is_dead_local(f"another-host:{proc.pid}:abcd")  # other hosts: the lease expires
    assert not identity.is_dead_local(identity.make_holder())  # never ourselves
    store = sqlite.SqliteStore(tmp_path / "failover.db")
    first, second = identity.make_holder(), identity.make_holder()
    assert store.acquire_lease(first, 60) and not store.acquire_lease(second, 60)  # a second daemon stands by
