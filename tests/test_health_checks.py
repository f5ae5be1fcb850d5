"""Hysteresis and the down rule, on hand-fed samples (no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from failover.health import checks
from failover.health.model import CheckKind, CheckResult, Health

T0 = datetime(2026, 11, 23, tzinfo=UTC)


def feed(check: checks.Check, pattern: str) -> list[bool | None]:
    out = []
    for i, ch in enumerate(pattern):
        check.observe(checks.Sample(ok=ch == "+", detail="" if ch == "+" else "refused",
                                    at=T0 + timedelta(seconds=i)))
        out.append(check.passing)
    return out


def test_fails_only_after_n_consecutive_failures_and_recovers_after_m() -> None:
    c = checks.Check("kube", CheckKind.KUBE, fail_after=3, recover_after=2)
    assert feed(c, "+--") == [True, True, True]
    assert feed(c, "-") == [False]
    assert c.result().failing_since == T0 + timedelta(seconds=1)  # the streak began in the first feed
    assert feed(c, "+") == [False]
    assert feed(c, "+") == [True]


def test_flapping_probe_never_fails_the_check() -> None:
    c = checks.Check("files", CheckKind.COMPONENT, fail_after=2, recover_after=2)
    states = feed(c, "+-+-+-+-+-+-+-+-+-")
    assert all(s is True for s in states)


def r(name: str, kind: CheckKind, passing: bool | None, *, critical: bool = True) -> CheckResult:
    return CheckResult(name=name, kind=kind, passing=passing, critical=critical,
                       consecutive_failures=4 if passing is False else 0,
                       failing_since=T0 if passing is False else None, detail="x" if passing is False else "")


def test_kube_unreachable_while_users_are_served_is_degraded_not_down() -> None:
    """Issue 13, defect 4: a control-plane outage alone must never fail over a workplace users reach."""
    v = checks.site_health([r("kube", CheckKind.KUBE, False), r("files", CheckKind.COMPONENT, True)],
                           critical_majority=0.5)
    assert v.health is Health.DEGRADED and v.reasons == ("kube: x",)
    v = checks.site_health([r("kube", CheckKind.KUBE, False), r("files", CheckKind.COMPONENT, False)],
                           critical_majority=0.5)
    assert v.health is Health.DOWN and v.down_checks == 4 and v.outage_started_at == T0


def test_down_rule_kube_unreachable_without_component_checks() -> None:
    v = checks.site_health([r("kube", CheckKind.KUBE, False)], critical_majority=0.5)
    assert v.health is Health.DOWN and v.down_checks == 4 and v.outage_started_at == T0


def test_down_rule_majority_of_critical_components() -> None:
    comps = [r(f"c{i}", CheckKind.COMPONENT, i >= 3) for i in range(5)]  # 3 of 5 failing
    assert checks.site_health([r("kube", CheckKind.KUBE, True), *comps], critical_majority=0.5).health \
        is Health.DOWN
    comps = [r(f"c{i}", CheckKind.COMPONENT, i >= 2) for i in range(5)]  # 2 of 5 failing
    v = checks.site_health([r("kube", CheckKind.KUBE, True), *comps], critical_majority=0.5)
    assert v.health is Health.DEGRADED and len(v.reasons) == 2


def test_non_critical_failures_only_degrade_and_unknown_before_verdicts() -> None:
    comps = [r("pad", CheckKind.COMPONENT, False, critical=False), r("files", CheckKind.COMPONENT, True)]
    assert checks.site_health([r("kube", CheckKind.KUBE, True), *comps], critical_majority=0.5).health \
        is Health.DEGRADED
    unknown = checks.site_health([r("kube", CheckKind.KUBE, None)], critical_majority=0.5)
    assert unknown.health is Health.UNKNOWN
    healthy = checks.site_health([r("kube", CheckKind.KUBE, True)], critical_majority=0.5)
    assert healthy.health is Health.HEALTHY


def test_readiness_requires_every_kind() -> None:
    ok, why = checks.readiness([r("kube", CheckKind.KUBE, True), r("backup", CheckKind.BACKUP, False)],
                               required=[CheckKind.KUBE, CheckKind.BACKUP, CheckKind.STORAGE])
    assert not ok and why == ("backup: x", "no storage check")
    ok, why = checks.readiness([r("kube", CheckKind.KUBE, True)], required=[CheckKind.KUBE])
    assert ok and why == ()


def test_outage_start_comes_from_the_checks_behind_the_down_verdict() -> None:
    early = CheckResult(name="pad", kind=CheckKind.COMPONENT, passing=False, critical=False,
                        consecutive_failures=40, failing_since=T0 - timedelta(minutes=5), detail="503")
    kube = CheckResult(name="kube", kind=CheckKind.KUBE, passing=False, consecutive_failures=3,
                       failing_since=T0, detail="refused")
    v = checks.site_health([kube, early], critical_majority=0.5)
    assert v.health is Health.DOWN and v.outage_started_at == T0 and v.down_checks == 3


def feed_at(check: checks.Check, pattern: str, *, step: float) -> list[bool | None]:
    out = []
    for i, ch in enumerate(pattern):
        check.observe(checks.Sample(ok=ch == "+", detail="" if ch == "+" else "refused",
                                    at=T0 + timedelta(seconds=i * step)))
        out.append(check.passing)
    return out


def test_fast_re_probes_keep_the_tolerance_window() -> None:
    """Suspicion mode probes every 0.25 s: three failures alone are not enough; the failures must
    span the window (2 s = what three probes one second apart would take)."""
    c = checks.Check("kube", CheckKind.KUBE, fail_after=3, recover_after=2, fail_window=2.0)
    states = feed_at(c, "+" + "-" * 8 + "+", step=0.25)  # an outage of 1.75 s: tolerated
    assert all(s is True for s in states)
    states = feed_at(c, "+" + "-" * 10, step=0.25)  # failures from 0.25 s to 2.5 s: failing at 2.25 s
    assert states[-2:] == [False, False] and states[-3] is True
