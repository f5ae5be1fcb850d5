"""What the daemon reads from the store and the status document it publishes (no daemon state).

Kept apart from the daemon's loops so the CLI's commands can show the same document; re-exported by
:mod:`failover.daemon`.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from pathlib import Path
from typing import Any

from failover import controller
from failover.config import models
from failover.config.runtime import Runtime
from failover.core import resources
from failover.ha import backend as ha_backend
from failover.health.model import SiteView
from failover.services import utcnow


def playbook_dirs(runtime: Runtime) -> list[Path]:
    """Playbooks beside the config's directory first, then the ones shipped with the product."""
    return [runtime.loaded.path.parent.parent / "playbooks", resources.playbooks_dir()]


def open_store(runtime: Runtime) -> Any:
    """The configured store: SQLite in the state directory, or etcd (``coordination``)."""
    return ha_backend.open_store(runtime)


def roles_of(store: Any, cfg: models.Config) -> dict[str, str]:
    roles = {s.name: s.role.value for s in cfg.sites}
    stored = store.get_state("roles")
    if isinstance(stored, dict):
        roles.update({str(k): str(v) for k, v in stored.items()})
    return roles


def active_of(store: Any, cfg: models.Config) -> str:
    stored = store.get_state("active")
    return str(stored) if stored else cfg.active_site().name


def failed_streak(store: Any) -> tuple[controller.FailedRun, ...]:
    """Failover runs that failed since the last succeeded one and since the last `resume` (oldest first)."""
    resumed = store.get_state("resumed_at")
    since = datetime.fromisoformat(resumed) if isinstance(resumed, str) else None
    streak: list[controller.FailedRun] = []
    for run in store.list_runs(limit=50):
        if str(run.phase) == "succeeded" or (since is not None and run.created_at < since):
            break
        if str(run.phase) == "failed" and run.finished_at is not None:
            streak.append(controller.FailedRun(id=str(run.id), target=str((run.params or {}).get("to", "")),
                                               finished_at=run.finished_at, error=str(run.error or "")))
    return tuple(reversed(streak))


def with_lag(view: SiteView, lag: float | None) -> SiteView:
    return dataclasses.replace(view, replication_lag_s=lag)


def status_document(runtime: Runtime, snap: controller.Snapshot, store: Any) -> dict[str, Any]:
    """The ``status --json`` document (a contract: scripts rely on these keys)."""
    run = snap.run
    return {
        "active": snap.active,
        "paused": snap.paused,
        "updated_at": utcnow().isoformat(),
        "epoch": store.current_epoch(),
        "sites": {
            name: {
                "provider": runtime.config.site(name).provider,
                "region": runtime.config.site(name).region,
                "role": v.role, "health": v.health.value, "reasons": list(v.reasons),
                "ready": v.ready, "ready_reasons": list(v.ready_reasons),
                "replication_lag_s": v.replication_lag_s,
                "newest_backup": v.newest_backup.name if v.newest_backup else None,
                "backup_age_s": (snap.now - v.newest_backup.completed_at).total_seconds() if v.newest_backup else None,
                "provider_state": v.provider_state,
                "checks": {c.name: {"passing": c.passing, "detail": c.detail} for c in v.checks},
            } for name, v in snap.sites.items()
        },
        "run": None if run is None else {"id": run.id, "playbook": run.playbook, "phase": run.phase,
                                         "step": run.step},
    }
