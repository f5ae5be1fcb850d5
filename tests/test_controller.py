"""The controller's decisions are pure: tested on hand-built snapshots, no I/O, no asyncio."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from failover import controller as c
from failover.config import models
from failover.health.model import Health, SiteView

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
POLICY = c.PolicyView(mode=models.PolicyMode.AUTOMATIC, standby_order=("stackit", "otc", "scs"),
                      jurisdictions=("DE",), attestations=("ISO27001",), cooldown_s=600)


def site(name: str, *, role: str = "standby", health: Health = Health.HEALTHY, ready: bool = True,
         why: tuple[str, ...] = (), jurisdiction: str = "DE",
         attestations: tuple[str, ...] = ("ISO27001",)) -> SiteView:
    return SiteView(name=name, role=role, health=health, ready=ready, ready_reasons=why,
                    reasons=("kube API refused",) if health is Health.DOWN else (),
                    jurisdiction=jurisdiction, attestations=attestations, down_checks=3,
                    outage_started_at=NOW - timedelta(seconds=4) if health is Health.DOWN else None)


def snap(*sites: SiteView, **kw: object) -> c.Snapshot:
    return c.Snapshot(now=NOW, active="ionos", sites={s.name: s for s in sites}, **kw)  # type: ignore[arg-type]


def test_healthy_active_is_steady_and_names_ready_standbys() -> None:
    d = c.decide(snap(site("ionos", role="active"), site("stackit"), site("otc", ready=False)), POLICY)
    assert d.verdict is c.Verdict.STEADY
    assert d.sentence == "ionos healthy; standbys ready: stackit; no action"


def test_degraded_active_never_fails_over() -> None:
    d = c.decide(snap(site("ionos", role="active", health=Health.DEGRADED), site("stackit")), POLICY)
    assert d.verdict is c.Verdict.STEADY and not d.acts


def test_down_active_fails_over_to_first_ready_standby() -> None:
    d = c.decide(snap(site("ionos", role="active", health=Health.DOWN), site("stackit"), site("otc")), POLICY)
    assert d.verdict is c.Verdict.FAILOVER and d.target == "stackit"
    assert d.sentence == "ionos down for 3 checks (kube API refused); stackit ready; starting failover"
    assert d.outage_started_at == NOW - timedelta(seconds=4)


def test_unready_and_nonconforming_standbys_are_skipped_with_reasons() -> None:
    d = c.decide(snap(
        site("ionos", role="active", health=Health.DOWN),
        site("stackit", ready=False, why=("no backup within RPO",)),
        site("otc", jurisdiction="NL"),
        site("scs"),
    ), POLICY)
    assert d.target == "scs"
    assert d.skipped == (("stackit", "not ready: no backup within RPO"), ("otc", "jurisdiction NL not allowed"))
    assert "stackit skipped (not ready: no backup within RPO)" in d.sentence


def test_missing_attestation_and_fenced_sites_are_never_targets() -> None:
    d = c.decide(snap(site("ionos", role="active", health=Health.DOWN), site("stackit", role="fenced"),
                      site("otc", attestations=()), site("scs", health=Health.DOWN)), POLICY)
    assert d.verdict is c.Verdict.NO_TARGET and d.target is None
    assert "NO standby may take over" in d.sentence
    assert dict(d.skipped) == {"stackit": "fenced", "otc": "lacks attestation ISO27001", "scs": "down"}


def test_paused_cooldown_manual_and_approval() -> None:
    down = (site("ionos", role="active", health=Health.DOWN), site("stackit"))
    assert c.decide(snap(*down, paused=True), POLICY).verdict is c.Verdict.HOLD
    recent = c.decide(snap(*down, last_failover_at=NOW - timedelta(seconds=60)), POLICY)
    assert recent.verdict is c.Verdict.HOLD and "cool-down" in recent.sentence
    old = c.decide(snap(*down, last_failover_at=NOW - timedelta(seconds=601)), POLICY)
    assert old.verdict is c.Verdict.FAILOVER
    approval = c.PolicyView(mode=models.PolicyMode.APPROVAL, standby_order=("stackit",))
    assert c.decide(snap(*down), approval).verdict is c.Verdict.REQUEST_APPROVAL
    manual = c.PolicyView(mode=models.PolicyMode.MANUAL, standby_order=("stackit",))
    d = c.decide(snap(*down), manual)
    assert d.verdict is c.Verdict.HOLD and "failover run failover --to stackit" in d.sentence


def test_run_in_progress_and_unknown_health() -> None:
    run = c.RunSummary(id="7", playbook="failover", phase="running", step="restore[group=3]")
    d = c.decide(snap(site("ionos", role="active", health=Health.DOWN), site("stackit"), run=run), POLICY)
    assert d.verdict is c.Verdict.IN_PROGRESS
    assert d.sentence == "failover run 7 running at step restore[group=3]"
    assert c.decide(snap(site("ionos", role="active", health=Health.UNKNOWN)), POLICY).verdict is c.Verdict.UNKNOWN
