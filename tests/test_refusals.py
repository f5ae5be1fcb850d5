"""The target rule and the failed-run back-off are pure (issue 13, defects 1 and 2)."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from failover import controller as c
from failover.health.model import BackupRef, Health
from tests.test_controller import NOW, POLICY, site, snap

RPO_POLICY = dataclasses.replace(POLICY, rpo_s=300, failed_run_backoff_s=10, max_failed_runs=3)


def fresh(name: str, **kw: object) -> object:
    return dataclasses.replace(site(name, **kw),  # type: ignore[arg-type]
                               newest_backup=BackupRef("b1", NOW - timedelta(seconds=60)))


def test_the_active_a_fenced_a_non_standby_and_a_not_ready_target_are_refused() -> None:
    s = snap(fresh("ionos", role="active"), fresh("stackit"), fresh("otc", role="fenced"),  # type: ignore[arg-type]
             fresh("scs", ready=False, why=("backup: no verdict yet",)))
    assert c.refusals(s, "stackit", "failover", RPO_POLICY) == []
    assert "ionos is the active site" in c.refusals(s, "ionos", "failover", RPO_POLICY)[0]
    assert c.refusals(s, "otc", "switchover", RPO_POLICY)[0].startswith("otc: fenced")
    assert c.refusals(s, "scs", "failover", RPO_POLICY) == ["scs: not ready: backup: no verdict yet"]
    assert c.refusals(s, "nowhere", "failover", RPO_POLICY) == ["nowhere: no signals"]


def test_no_override_lifts_the_active_a_fenced_or_a_non_standby_target() -> None:
    s = snap(fresh("ionos", role="active"), fresh("stackit", ready=False, why=("storage: down",)),  # type: ignore[arg-type]
             fresh("otc", role="fenced"), fresh("scs", role="draining"))
    assert "no override" in c.binding_refusals(s, "ionos")[0]
    assert c.binding_refusals(s, "otc")[0].startswith("otc: fenced; `failover unfence otc --yes`")
    assert c.binding_refusals(s, "scs") == ["scs: role draining, not a standby"]
    assert c.binding_refusals(s, "stackit") == []  # not ready: refused, but an operator may override
    assert c.refusals(s, "stackit", "failover", RPO_POLICY) != []


def test_no_replicated_backup_within_the_rpo_is_refused_unless_stale_is_allowed() -> None:
    old = dataclasses.replace(site("stackit"), newest_backup=BackupRef("b0", NOW - timedelta(seconds=900)))
    s = snap(site("ionos", role="active", health=Health.DOWN), old, site("otc"))
    assert c.refusals(s, "stackit", "failover", RPO_POLICY) == [
        "stackit: newest replicated backup b0 is 900s old, beyond the RPO of 300s"]
    assert c.refusals(s, "stackit", "failover", RPO_POLICY, allow_stale=True) == []
    assert c.refusals(s, "otc", "failover", RPO_POLICY) == ["otc: no replicated backup"]
    d = c.decide(s, RPO_POLICY)
    assert d.verdict is c.Verdict.NO_TARGET  # the daemon applies the same rule


def test_failed_runs_back_off_then_try_the_next_standby_then_stop_for_a_human() -> None:
    down = fresh("ionos", role="active", health=Health.DOWN)
    sites = (down, fresh("stackit"), fresh("otc"))
    one = (c.FailedRun("1", "stackit", NOW - timedelta(seconds=5), "select-backup failed"),)
    d = c.decide(snap(*sites, failed_runs=one), RPO_POLICY)  # type: ignore[arg-type]
    assert d.verdict is c.Verdict.HOLD and "backing off 10s" in d.sentence and "failure 1 of at most 3" in d.sentence
    later = (c.FailedRun("1", "stackit", NOW - timedelta(seconds=11)),)
    d = c.decide(snap(*sites, failed_runs=later), RPO_POLICY)  # type: ignore[arg-type]
    assert d.verdict is c.Verdict.FAILOVER and d.target == "otc"  # the failed target goes last
    two = (*later, c.FailedRun("2", "otc", NOW - timedelta(seconds=15)))
    d = c.decide(snap(*sites, failed_runs=two), RPO_POLICY)  # type: ignore[arg-type]
    assert d.verdict is c.Verdict.HOLD and "backing off 20s" in d.sentence  # doubled
    three = (*two, c.FailedRun("3", "stackit", NOW - timedelta(seconds=500), "boom"))
    d = c.decide(snap(*sites, failed_runs=three), RPO_POLICY)  # type: ignore[arg-type]
    assert d.verdict is c.Verdict.HOLD and not d.acts
    assert "3 failover runs failed in a row" in d.sentence and "a human must decide" in d.sentence
