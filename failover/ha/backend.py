"""Which store a config asks for: SQLite in the state directory, or the shared etcd cluster."""

from __future__ import annotations

import os
import secrets
import socket
from typing import Any

from failover.config import models
from failover.config.runtime import Runtime
from failover.core import errors
from failover.store import sqlite
from failover.store.etcd import EtcdStore


def uses_etcd(runtime: Runtime) -> bool:
    return runtime.config.coordination.backend is models.CoordinationBackend.ETCD


def etcd_endpoints(runtime: Runtime) -> list[str]:
    """The configured endpoints; in the lab, the lab's cluster (as this observer reaches it)."""
    configured = list(runtime.config.coordination.endpoints)
    if configured:
        return configured
    lab: dict[str, Any] = runtime.lab or {}
    observer = (lab.get("observers") or {}).get(runtime.observer or "") or {}
    endpoints = observer.get("etcd") or (lab.get("coordination") or {}).get("endpoints") or []
    if not endpoints:
        raise errors.ConfigError("coordination.backend is etcd but coordination.endpoints is empty "
                                 "(and no lab etcd is running): list the etcd client URLs")
    return [str(e) for e in endpoints]


def open_store(runtime: Runtime) -> sqlite.SqliteStore | EtcdStore:
    if uses_etcd(runtime):
        c = runtime.config.coordination
        return EtcdStore(etcd_endpoints(runtime), prefix=c.prefix, timeout=c.request_timeout)
    runtime.state_dir.mkdir(parents=True, exist_ok=True)
    return sqlite.SqliteStore(runtime.state_dir / "failover.db")


def unique_name() -> str:
    """A lease holder name no other process has: host, pid and a random tail (``host:1234:9f3a``)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(2)}"
