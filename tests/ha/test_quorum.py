"""The quorum of observers and stale data in decide(): pure, on hand-built snapshots."""

from __future__ import annotations

from datetime import timedelta

from failover import controller as c
from failover.ha import quorum
from failover.health.model import Health
from tests.test_controller import NOW, POLICY, site, snap

MEMBERS = {"obs-a": {}, "obs-b": {}, "obs-c": {}}


def verdicts(**health: str) -> dict[str, dict[str, dict[str, str]]]:
    at = (NOW - timedelta(seconds=1)).isoformat()
    return {obs.replace("_", "-"): {"ionos": {"health": h, "at": at, "reason": "kube: connection refused"
                                              if h == "down" else ""}} for obs, h in health.items()}


def test_all_observers_see_the_active_down_and_the_sentence_names_the_votes() -> None:
    votes = quorum.tally(MEMBERS, verdicts(obs_a="down", obs_b="down", obs_c="down"), now=NOW, max_age=10)
    d = c.decide(snap(site("ionos", role="active", health=Health.DOWN), site("stackit"), votes=votes), POLICY)
    assert d.verdict is c.Verdict.FAILOVER and d.target == "stackit"
    assert d.sentence.startswith("ionos down for 3 of 3 observers (obs-a down: kube: connection refused;")


def test_one_observer_cut_off_never_triggers_a_failover_and_the_split_is_named() -> None:
    votes = quorum.tally(MEMBERS, verdicts(obs_a="down", obs_b="healthy", obs_c="healthy"), now=NOW, max_age=10)
    d = c.decide(snap(site("ionos", role="active", health=Health.DOWN), site("stackit"), votes=votes), POLICY)
    assert d.verdict is c.Verdict.HOLD and not d.acts
    assert d.sentence.startswith("ionos down for 1 of 3 observers (obs-a down: kube: connection refused; "
                                 "obs-b healthy; obs-c healthy); no quorum of observers")


def test_a_majority_confirms_even_when_the_leader_itself_still_reaches_the_site() -> None:
    votes = quorum.tally(MEMBERS, verdicts(obs_a="healthy", obs_b="down", obs_c="down"), now=NOW, max_age=10)
    d = c.decide(snap(site("ionos", role="active"), site("stackit"), votes=votes), POLICY)
    assert d.verdict is c.Verdict.FAILOVER and d.sentence.startswith("ionos down for 2 of 3 observers")


def test_stale_or_missing_verdicts_block_rather_than_confirm() -> None:
    old = verdicts(obs_a="down", obs_b="down")
    old["obs-b"]["ionos"]["at"] = (NOW - timedelta(seconds=60)).isoformat()
    votes = quorum.tally(MEMBERS, old, now=NOW, max_age=10)
    assert [v.health for v in votes["ionos"].votes] == ["down", "stale", "stale"]
    d = c.decide(snap(site("ionos", role="active", health=Health.DOWN), site("stackit"), votes=votes), POLICY)
    assert d.verdict is c.Verdict.HOLD and "down for 1 of 3 observers" in d.sentence


def test_a_lone_observer_is_not_a_quorum() -> None:
    votes = quorum.tally({"obs-a": {}}, verdicts(obs_a="down"), now=NOW, max_age=10)
    d = c.decide(snap(site("ionos", role="active", health=Health.DOWN), site("stackit"), votes=votes), POLICY)
    assert d.verdict is c.Verdict.HOLD and "at least 2" in d.sentence


def test_stale_checks_make_the_active_unknown_and_decide_holds_saying_why() -> None:
    from failover.health import checks
    from failover.health.model import CheckKind

    kube = checks.Check("kube", CheckKind.KUBE, fail_after=1, recover_after=1)
    kube.observe(checks.Sample(ok=False, detail="refused", at=NOW - timedelta(seconds=30)))
    results, stale = checks.freshen([kube.result()], now=NOW, max_age=10)
    assert results[0].passing is None and stale == ("kube: stale: last sample 30s ago",)
    verdict = checks.site_health(results, critical_majority=0.5)
    assert verdict.health is Health.UNKNOWN
    active = site("ionos", role="active", health=Health.UNKNOWN)
    active = type(active)(**{**active.__dict__, "reasons": stale})
    d = c.decide(snap(active, site("stackit")), POLICY)
    assert d.verdict is c.Verdict.UNKNOWN and not d.acts
    assert d.sentence == "ionos health unknown (kube: stale: last sample 30s ago); holding: no failover on stale data"
