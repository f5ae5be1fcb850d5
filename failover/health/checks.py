"""Checks: hysteresis over probe signals, and the rules that turn checks into a site's health.

A probe gives one sample (ok or not, with a detail). A :class:`Check` turns the stream of samples
into a stable verdict: failing only after ``fail_after`` consecutive failures that span at least
``fail_window`` seconds, passing again only after ``recover_after`` consecutive successes. The
window keeps the tolerance to short outages when the watcher re-probes a suspect check faster
than its interval (suspicion mode): more samples, the same time before a verdict. A probe that
fails every other sample never makes a check fail, which is why a flapping endpoint cannot trigger a failover.

The **down rule** (documented in README) needs user-facing evidence: a site is ``down`` when more
than ``critical_majority`` of the workplace's critical component checks (probes through the
site's ingress, as users reach it) are failing. A failing Kubernetes API alone is not enough
while those components answer — a managed control-plane outage does not stop the workloads, and
failing over then would leave two live copies (issue 13, defect 4); it makes the site
``degraded``. Only a site without component checks (a standby) is ``down`` on its Kubernetes API
alone. ``degraded``: any other failing check. ``unknown``: the Kubernetes API check or most
component checks have no verdict yet. Readiness of a standby is separate (:func:`readiness`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from failover.health.model import CheckKind, CheckResult, Health


@dataclass(frozen=True)
class Sample:
    ok: bool
    detail: str
    at: datetime
    timed_out: bool = False  #: no answer within the probe's timeout (not a refusal or an error)


class Check:
    """One check's hysteresis state (mutable; owned by the watcher)."""

    def __init__(self, name: str, kind: CheckKind, *, fail_after: int, recover_after: int,
                 critical: bool = True, fail_window: float = 0.0) -> None:
        self.name = name
        self.fail_window = fail_window
        self.kind = kind
        self.critical = critical
        self.fail_after = fail_after
        self.recover_after = recover_after
        self.passing: bool | None = None
        self.failures = 0
        self.successes = 0
        self.detail = ""
        self.failing_since: datetime | None = None
        self.sampled_at: datetime | None = None

    @property
    def suspect(self) -> bool:
        """Failed recently but not (yet) failing: worth probing again soon (suspicion mode)."""
        return self.failures > 0 and self.passing is not False

    def observe(self, sample: Sample) -> bool:
        """Feed one sample; returns True when the verdict (``passing``) changed."""
        before = self.passing
        self.detail = sample.detail
        self.sampled_at = sample.at
        if sample.ok:
            self.successes += 1
            self.failures = 0
            if self.passing is not True and (self.passing is None or self.successes >= self.recover_after):
                self.passing = True
            if self.passing:
                self.failing_since = None
        else:
            if self.failures == 0:
                self.failing_since = sample.at
            self.failures += 1
            self.successes = 0
            if self.failures >= self.fail_after and self._lasted(sample.at) >= self.fail_window:
                self.passing = False
        return self.passing is not before

    def _lasted(self, now: datetime) -> float:
        if self.fail_window <= 0 or self.failing_since is None:
            return 0.0
        return (now - self.failing_since).total_seconds()

    def result(self) -> CheckResult:
        return CheckResult(
            name=self.name, kind=self.kind, passing=self.passing, detail=self.detail,
            consecutive_failures=self.failures, consecutive_successes=self.successes,
            critical=self.critical, failing_since=self.failing_since if self.failures else None,
            sampled_at=self.sampled_at,
        )


def freshen(results: Iterable[CheckResult], *, now: datetime,
            max_age: float) -> tuple[tuple[CheckResult, ...], tuple[str, ...]]:
    """Checks whose newest sample is older than ``max_age`` seconds lose their verdict (pure).

    A stale check is ``passing=None`` — unknown, as at start-up — with a detail that says how old
    its last sample is, so a frozen watcher can never keep a site "down" (or "healthy") and the
    controller never fails over on data it no longer has. Returns (checks, stale reasons)."""
    out: list[CheckResult] = []
    stale: list[str] = []
    for c in results:
        age = None if c.sampled_at is None else (now - c.sampled_at).total_seconds()
        if c.sampled_at is not None and age is not None and age > max_age:
            text = f"stale: last sample {age:.0f}s ago"
            stale.append(f"{c.name}: {text}")
            out.append(dataclasses.replace(c, passing=None, detail=text))
        else:
            out.append(c)
    return tuple(out), tuple(stale)


@dataclass(frozen=True)
class Verdict:
    health: Health
    reasons: tuple[str, ...]
    outage_started_at: datetime | None
    down_checks: int


def _failing(checks: Iterable[CheckResult]) -> list[CheckResult]:
    return [c for c in checks if c.passing is False]


def site_health(checks: Iterable[CheckResult], *, critical_majority: float) -> Verdict:
    """Apply the down rule to one site's checks (pure)."""
    checks = list(checks)
    kube = [c for c in checks if c.kind is CheckKind.KUBE]
    components = [c for c in checks if c.kind is CheckKind.COMPONENT and c.critical]
    failing = _failing(checks)
    reasons = tuple(f"{c.name}: {c.detail}" if c.detail else c.name for c in failing)
    kube_down = any(c.passing is False for c in kube) and not components  # users' view decides if we have it
    failing_components = [c for c in components if c.passing is False]
    majority_down = bool(components) and len(failing_components) / len(components) > critical_majority
    if kube_down or majority_down:
        # the outage began when the checks that make the verdict began failing (a non-critical
        # check failing for a while before must not move the outage start, and so the RTO)
        driving = [c for c in kube if c.passing is False] if kube_down else failing_components
        down_checks = max((c.consecutive_failures for c in driving), default=0)
        starts = [c.failing_since for c in driving if c.failing_since is not None]
        return Verdict(Health.DOWN, reasons, min(starts) if starts else None, down_checks)
    starts = [c.failing_since for c in failing if c.failing_since is not None]
    started = min(starts) if starts else None
    known_components = [c for c in components if c.passing is not None]
    if any(c.passing is None for c in kube) or (components and len(known_components) * 2 < len(components)):
        return Verdict(Health.UNKNOWN, reasons, started, 0)
    if failing:
        return Verdict(Health.DEGRADED, reasons, started, 0)
    return Verdict(Health.HEALTHY, (), None, 0)


def readiness(
    checks: Iterable[CheckResult], *, required: Iterable[CheckKind]
) -> tuple[bool, tuple[str, ...]]:
    """A standby is ready when every check of a required kind passes (pure).

    Returns (ready, reasons-why-not). A required kind with no check at all is a reason too.
    """
    checks = list(checks)
    reasons: list[str] = []
    for kind in required:
        of_kind = [c for c in checks if c.kind is kind]
        if not of_kind:
            reasons.append(f"no {kind.value} check")
            continue
        for c in of_kind:
            if c.passing is not True:
                if c.passing is None:
                    state = c.detail if c.detail.startswith("stale") else "no verdict yet"
                elif c.consecutive_successes:
                    state = f"recovering ({c.consecutive_successes} ok)"
                else:
                    state = c.detail or "failing"
                reasons.append(f"{c.name}: {state}")
    return not reasons, tuple(reasons)
