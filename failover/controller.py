"""The controller cycle: one immutable snapshot in, one decision with one human sentence out.

``decide`` is a pure function of the snapshot and the policy (after Patroni's ``_run_cycle``),
testable without asyncio or I/O. The daemon builds the snapshot, calls ``decide``, acts on the
decision (start or continue a run), and logs the sentence once — tests, drills and reports
assert on that sentence.

Safety rules encoded here:
* only a ``down`` active site triggers a failover (``degraded`` never does: a flapping probe is
  absorbed by the checks' hysteresis and by this rule);
* a target must be a ready standby that meets the constraints; a fenced site never is;
* no new run while one is in progress, while automation is paused, or within the cool-down;
* failed runs back off exponentially (``failed_run_backoff`` doubling) and, after
  ``max_failed_runs`` in a row, the controller stops and asks for a human — never a run storm;
  a standby a failed run targeted goes to the end of the order, so the next run tries another.

:func:`refusals` is the one rule for whether a site may be a failover or switchover target; the
daemon's choice, ``failover run`` and ``failover plan`` all ask it, so they never disagree.
* never on stale data: a check whose last sample is too old is unknown, and an unknown active site
  holds (the sentence says which checks are stale);
* with several observers (``snapshot.votes``), only a quorum of them confirms an outage: the
  sentence names the votes ("ionos-de-fra down for 3 of 3 observers …"), and a split vote holds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from failover.config import models
from failover.ha import quorum
from failover.health.model import Health, SiteView


class Verdict(StrEnum):
    STEADY = "steady"  #: active site healthy or degraded; nothing to do
    UNKNOWN = "unknown"  #: not enough signals about the active site yet
    FAILOVER = "failover"  #: start a failover run now (policy automatic)
    REQUEST_APPROVAL = "request-approval"  #: create a failover run that waits for approval
    NO_TARGET = "no-target"  #: active down, but no standby may take over: alert loudly
    HOLD = "hold"  #: active down, but paused / cooling down / manual policy
    IN_PROGRESS = "in-progress"  #: a run is already under way


@dataclass(frozen=True)
class RunSummary:
    id: str
    playbook: str
    phase: str
    step: str | None = None


@dataclass(frozen=True)
class FailedRun:
    """An automatic run that failed, in the current streak (since the last success or `resume`)."""

    id: str
    target: str
    finished_at: datetime
    error: str = ""


@dataclass(frozen=True)
class Snapshot:
    now: datetime
    active: str
    sites: Mapping[str, SiteView]
    paused: bool = False
    run: RunSummary | None = None
    last_failover_at: datetime | None = None
    failed_runs: tuple[FailedRun, ...] = ()  #: oldest first
    votes: Mapping[str, quorum.SiteVotes] | None = None  #: None: one observer (no quorum to count)


@dataclass(frozen=True)
class PolicyView:
    """The parts of the config the decision depends on."""

    mode: models.PolicyMode
    standby_order: tuple[str, ...]
    jurisdictions: tuple[str, ...] = ()
    attestations: tuple[str, ...] = ()
    cooldown_s: float = 600.0
    rpo_s: float | None = None  #: None: the backup's age is judged by readiness alone
    failed_run_backoff_s: float = 30.0
    max_failed_runs: int = 3
    min_observers: int = 2

    @classmethod
    def from_config(cls, cfg: models.Config) -> PolicyView:
        return cls(
            mode=cfg.policy.mode,
            standby_order=tuple(s.name for s in cfg.standby_order()),
            jurisdictions=cfg.policy.constraints.jurisdictions,
            attestations=cfg.policy.constraints.attestations,
            cooldown_s=cfg.policy.cooldown,
            rpo_s=cfg.policy.rpo,
            failed_run_backoff_s=cfg.policy.failed_run_backoff,
            max_failed_runs=cfg.policy.max_failed_runs,
            min_observers=cfg.coordination.min_observers,
        )


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    sentence: str
    source: str
    target: str | None = None
    skipped: tuple[tuple[str, str], ...] = ()  #: (site, why it was not chosen)
    outage_started_at: datetime | None = None
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def acts(self) -> bool:
        return self.verdict in (Verdict.FAILOVER, Verdict.REQUEST_APPROVAL)


def _problems(view: SiteView | None, policy: PolicyView, *, now: datetime,
              allow_stale: bool = False) -> list[str]:
    """Why a site cannot be a target, most decisive first (empty: it can)."""
    if view is None:
        return ["no signals"]
    if view.role == models.Role.FENCED.value:
        return ["fenced"]
    if view.role != models.Role.STANDBY.value:
        return [f"role {view.role}"]
    out: list[str] = []
    if policy.jurisdictions and view.jurisdiction not in policy.jurisdictions:
        out.append(f"jurisdiction {view.jurisdiction} not allowed")
    missing = [a for a in policy.attestations if a not in view.attestations]
    if missing:
        out.append(f"lacks attestation {', '.join(missing)}")
    if view.health is Health.DOWN:
        out.append("down")
    reasons = [r for r in view.ready_reasons if not (allow_stale and r.startswith("backup:"))]
    if not view.ready and (reasons or not allow_stale):
        out.append("not ready: " + ("; ".join(reasons) or "unknown"))
    if policy.rpo_s is not None and not allow_stale:
        backup = view.newest_backup
        if backup is None:
            out.append("no replicated backup")
        elif (age := (now - backup.completed_at).total_seconds()) > policy.rpo_s:
            out.append(f"newest replicated backup {backup.name} is {age:.0f}s old, beyond the RPO of "
                       f"{policy.rpo_s:.0f}s")
    return out


def _why_not(view: SiteView | None, name: str, policy: PolicyView, now: datetime) -> str | None:
    """Why ``name`` cannot be the target, or None if it can."""
    problems = _problems(view, policy, now=now)
    return problems[0] if problems else None


def binding_refusals(snapshot: Snapshot, target: str) -> list[str]:
    """The refusals no override lifts: the active site (a failover to it fences and overwrites the
    workplace that serves users), a fenced site (``failover unfence`` re-admits it once cleaned up)
    and any site that is not a standby."""
    if target == snapshot.active:
        return [f"{target} is the active site: no override runs a failover onto the serving workplace"]
    view = snapshot.sites.get(target)
    if view is not None and view.role == models.Role.FENCED.value:
        return [f"{target}: fenced; `failover unfence {target} --yes` re-admits it once it is cleaned up and ready"]
    if view is not None and view.role != models.Role.STANDBY.value:
        return [f"{target}: role {view.role}, not a standby"]
    return []


def refusals(snapshot: Snapshot, target: str, kind: str, policy: PolicyView, *,
             allow_stale: bool = False) -> list[str]:
    """Why a ``kind`` run (failover, switchover) to ``target`` must be refused now (empty: it may run).

    Pure. The one rule behind the daemon's target choice, ``failover run`` and ``failover plan``:
    never the active site (a failover to it fences and overwrites the serving workplace), never a
    fenced site or a non-standby, never a standby that is down, not ready, outside the constraints,
    or without a replicated backup within the RPO (unless ``allow_stale``; a switchover takes and
    replicates its own final backup, so for it the replicated backup's age does not count).
    """
    allow_stale = allow_stale or kind == "switchover"
    if target == snapshot.active:
        return [f"{target} is the active site: a {kind} to it would fence and overwrite the workplace "
                "that serves users now"]
    view = snapshot.sites.get(target)
    problems = _problems(view, policy, now=snapshot.now, allow_stale=allow_stale)
    if view is not None and view.role == models.Role.FENCED.value:
        problems = ["fenced (it lost the role in an earlier failover; `failover unfence` it once it is "
                    "cleaned up and ready)"]
    return [f"{target}: {p}" for p in problems]


def _order(snapshot: Snapshot, policy: PolicyView) -> list[str]:
    """Preference order, with standbys a failed run of the current streak targeted moved last."""
    failed = {f.target for f in snapshot.failed_runs}
    return sorted(policy.standby_order, key=lambda n: n in failed)


def choose_target(snapshot: Snapshot, policy: PolicyView) -> tuple[str | None, tuple[tuple[str, str], ...]]:
    """The first standby in preference order that may take over, and why the others may not."""
    skipped: list[tuple[str, str]] = []
    for name in _order(snapshot, policy):
        if name == snapshot.active:
            continue
        reason = _why_not(snapshot.sites.get(name), name, policy, snapshot.now)
        if reason is None:
            return name, tuple(skipped)
        skipped.append((name, reason))
    return None, tuple(skipped)


def _ready_standbys(snapshot: Snapshot, policy: PolicyView) -> Sequence[str]:
    return [n for n in policy.standby_order
            if n != snapshot.active and _why_not(snapshot.sites.get(n), n, policy, snapshot.now) is None]


def _reasons(reasons: Sequence[str], *, limit: int = 3) -> str:
    """The first few reasons, then how many more: a decision is read at 3 a.m."""
    if not reasons:
        return "down rule met"
    shown = "; ".join(reasons[:limit])
    return f"{shown}; and {len(reasons) - limit} more" if len(reasons) > limit else shown


def _skipped_text(skipped: Sequence[tuple[str, str]]) -> str:
    return "; ".join(f"{site} skipped ({why})" for site, why in skipped)


def decide(snapshot: Snapshot, policy: PolicyView) -> Decision:
    """What to do this cycle. Pure: no I/O, no clock, no randomness."""
    active = snapshot.active
    view = snapshot.sites.get(active)
    if snapshot.run is not None:
        step = f" at step {snapshot.run.step}" if snapshot.run.step else ""
        return Decision(Verdict.IN_PROGRESS, f"{snapshot.run.playbook} run {snapshot.run.id} "
                        f"{snapshot.run.phase}{step}", source=active)
    votes = snapshot.votes.get(active) if snapshot.votes is not None else None
    if votes is not None and (votes.down or (view is not None and view.health is Health.DOWN)):
        if not votes.confirmed(policy.min_observers):
            return Decision(Verdict.HOLD, f"{votes.text()}; no quorum of observers (a majority, at least "
                            f"{policy.min_observers}); no action", source=active)
        view = _confirmed_view(view, active, votes)
    if view is None or view.health is Health.UNKNOWN:
        stale = [r for r in (view.reasons if view else ()) if "stale" in r]
        if stale:
            return Decision(Verdict.UNKNOWN, f"{active} health unknown ({_reasons(stale)}); holding: no failover "
                            "on stale data", source=active)
        return Decision(Verdict.UNKNOWN, f"{active} health unknown (collecting signals); no action",
                        source=active)
    if view.health is not Health.DOWN:
        ready = _ready_standbys(snapshot, policy)
        state = "healthy" if view.health is Health.HEALTHY else f"degraded ({_reasons(view.reasons)})"
        standby = f"standbys ready: {', '.join(ready)}" if ready else "NO standby ready"
        return Decision(Verdict.STEADY, f"{active} {state}; {standby}; no action", source=active)

    why = _reasons(view.reasons)
    down = f"{active} down for {view.down_checks} checks ({why})" if votes is None else votes.text()
    target, skipped = choose_target(snapshot, policy)
    skipped_text = f"; {_skipped_text(skipped)}" if skipped else ""
    def down_decision(verdict: Verdict, sentence: str, *, with_target: bool = True) -> Decision:
        return Decision(verdict, sentence, source=active, target=target if with_target else None,
                        skipped=skipped, outage_started_at=view.outage_started_at if view else None)

    if snapshot.paused:
        return down_decision(Verdict.HOLD, f"{down}; automation paused; no action (`failover resume`)",
                             with_target=False)
    held = _failed_runs_hold(snapshot, policy, down)
    if held is not None:
        return down_decision(Verdict.HOLD, held, with_target=False)
    if target is None:
        return down_decision(Verdict.NO_TARGET, f"{down}{skipped_text}; NO standby may take over; "
                             "not failing over: operator action needed")
    if snapshot.last_failover_at is not None:
        since = (snapshot.now - snapshot.last_failover_at).total_seconds()
        if since < policy.cooldown_s:
            return down_decision(Verdict.HOLD, f"{down}; last failover {since:.0f}s ago, within the "
                                 f"cool-down of {policy.cooldown_s:.0f}s; no action")
    if policy.mode is models.PolicyMode.MANUAL:
        return down_decision(Verdict.HOLD, f"{down}{skipped_text}; {target} ready; policy manual: "
                             f"run `failover run failover --to {target}`")
    if policy.mode is models.PolicyMode.APPROVAL:
        return down_decision(Verdict.REQUEST_APPROVAL, f"{down}{skipped_text}; {target} ready; "
                             "failover run waits for approval")
    return down_decision(Verdict.FAILOVER, f"{down}{skipped_text}; {target} ready; starting failover")


def _failed_runs_hold(snapshot: Snapshot, policy: PolicyView, down: str) -> str | None:
    """The sentence of a hold because of failed runs (a human is needed, or back off), or None."""
    failed = snapshot.failed_runs
    if not failed:
        return None
    last = failed[-1]
    what = f"run {last.id} to {last.target} failed" + (f" ({last.error[:120]})" if last.error else "")
    if len(failed) >= policy.max_failed_runs:
        return (f"{down}; {len(failed)} failover runs failed in a row, last {what}; stopping automatic "
                "failover: a human must decide (`failover history`; then `failover run failover --to SITE` "
                "or `failover resume` to let the daemon try again)")
    wait = policy.failed_run_backoff_s * 2 ** (len(failed) - 1)
    since = (snapshot.now - last.finished_at).total_seconds()
    if since < wait:
        return (f"{down}; {what} {since:.0f}s ago; backing off {wait:.0f}s before the next attempt "
                f"(failure {len(failed)} of at most {policy.max_failed_runs})")
    return None
def _confirmed_view(view: SiteView | None, active: str, votes: quorum.SiteVotes) -> SiteView:
    """The active site as the quorum sees it: down, since the earliest down observer saw it fail."""
    reasons = tuple(f"{v.observer}: {v.reason}" for v in votes.down if v.reason)
    if view is not None and view.health is Health.DOWN:
        return view
    base = view or SiteView(name=active, role=models.Role.ACTIVE.value, health=Health.UNKNOWN)
    return dataclasses.replace(base, health=Health.DOWN, reasons=reasons,
                               outage_started_at=votes.outage_started_at, down_checks=len(votes.down))
