"""The vocabulary of health: what a check concluded, what a site's health is, and why.

These are immutable values: the watcher builds them every round, the controller reads them in
its snapshot, ``status`` prints them, and reports keep their history.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class Health(StrEnum):
    HEALTHY = "healthy"  #: every check passing
    DEGRADED = "degraded"  #: some checks failing, but not enough for `down`
    DOWN = "down"  #: the down rule holds (kube API unreachable, or a majority of critical components fail)
    UNKNOWN = "unknown"  #: not enough signals yet (start-up) to say


class CheckKind(StrEnum):
    KUBE = "kube"  #: the site's Kubernetes API (/readyz)
    COMPONENT = "component"  #: a component's user-facing probe through the site's ingress
    WORKLOADS = "workloads"  #: a component's workloads ready in the site's cluster
    DNS = "dns"  #: the workplace's names resolve to the expected site
    BACKUP = "backup"  #: newest complete backup in the site's bucket within the RPO
    STORAGE = "storage"  #: the site's bucket is reachable
    PROVIDER = "provider"  #: the provider's own view of the cluster


@dataclass(frozen=True)
class CheckResult:
    """One check after hysteresis. ``passing`` is None until the check has enough samples."""

    name: str
    kind: CheckKind
    passing: bool | None
    detail: str = ""
    consecutive_failures: int = 0
    consecutive_successes: int = 0
    critical: bool = True
    failing_since: datetime | None = None  #: first failed sample of the current failure streak
    sampled_at: datetime | None = None  #: when the newest sample was taken (None: never sampled)


@dataclass(frozen=True)
class BackupRef:
    name: str
    completed_at: datetime


@dataclass(frozen=True)
class SiteView:
    """Everything the controller knows about one site in one cycle."""

    name: str
    role: str
    health: Health
    reasons: tuple[str, ...] = ()
    ready: bool = False
    ready_reasons: tuple[str, ...] = ()  #: why the site is NOT ready (empty when ready)
    outage_started_at: datetime | None = None  #: first failed probe of the current outage
    checks: tuple[CheckResult, ...] = ()
    newest_backup: BackupRef | None = None
    replication_lag_s: float | None = None
    provider_state: str | None = None
    jurisdiction: str = ""
    attestations: tuple[str, ...] = ()
    down_checks: int = 0  #: consecutive failing samples behind a `down` verdict
