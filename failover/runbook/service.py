"""The runbook's operations — start, next, confirm, skip, abort, approve — each checked and audited.

Every function validates first and changes nothing on bad input (InputError, exit 2); a start that
a safety rule blocks is refused (PermanentError, exit 1) with the rule's sentence and the way to
override it. Each accepted action is one audit entry naming the operator.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from failover.config import models
from failover.core import errors, secrets
from failover.playbook.engine import Engine
from failover.playbook.model import Playbook
from failover.runbook import safety, state
from failover.runbook.operators import Actor, require_role
from failover.store import JSON, RunPhase, RunRecord, StepStatus, Store

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Started:
    run_id: str
    verdict: safety.Verdict
    params: dict[str, JSON]


def find_run(store: Store, run_id: str | None) -> RunRecord:
    """The run named, or the one in progress (InputError when there is none)."""
    if run_id is None:
        for candidate in store.list_runs(limit=20):
            if not candidate.phase.terminal:
                return candidate
        raise errors.InputError("no run in progress; `failover history` lists past runs (give --run ID)")
    run = store.get_run(run_id)
    if run is None:
        raise errors.InputError(f"no run {run_id!r}; `failover history` lists runs")
    return run


def _live(store: Store, run_id: str | None) -> RunRecord:
    run = find_run(store, run_id)
    if run.phase.terminal:
        raise errors.InputError(f"run {run.id} is {run.phase.value}; nothing to do")
    return run


async def notify(cfg: models.Config, doc: Mapping[str, JSON]) -> int:
    """POST ``doc`` to every configured webhook; returns how many took it (never raises)."""
    delivered = 0
    async with httpx.AsyncClient(timeout=5) as client:
        for url in cfg.notify:
            try:
                (await client.post(url, json=dict(doc))).raise_for_status()
                delivered += 1
            except Exception as exc:  # a notice never blocks an operator
                logger.warning("notify %s failed: %s", url, secrets.redact(str(exc)))
    return delivered


async def start(*, cfg: models.Config, store: Store, playbook: Playbook, source: str, target: str, actor: Actor,
                roles: Mapping[str, str], step_mode: bool, break_glass: tuple[str, str] | None, now: datetime,
                status: Mapping[str, Any] | None, backup_schedule: str) -> Started:
    """Check the rules, create the run (pending: the daemon or the caller executes it), audit it."""
    if target not in roles or source not in roles:
        raise errors.InputError(f"unknown site; sites: {', '.join(roles)}")
    if target == source:
        raise errors.InputError(f"--to {target} is the source site; nothing to move")
    if roles[target] != models.Role.STANDBY.value:
        raise errors.InputError(f"{target} is {roles[target]}, not a standby (`failover unfence {target} --yes` "
                                "re-admits a cleaned-up fenced site)")
    unplanned = "allow_stale" in playbook.params
    last = store.get_state("last_failover_at")
    facts = safety.Facts(target=target, unplanned=unplanned, now=now, cooldown_s=cfg.policy.cooldown,
                         last_failover_at=datetime.fromisoformat(last) if isinstance(last, str) else None,
                         status=status, status_max_age_s=max(10.0, cfg.health.interval * 3))
    found = safety.refusals(facts)
    overrides: set[str] = set()
    if break_glass is not None:
        rule, reason = break_glass
        if rule not in safety.RULES:
            raise errors.InputError(f"--break-glass {rule}: unknown rule (rules: {', '.join(safety.RULES)})")
        if not reason.strip():
            raise errors.InputError("--break-glass needs --reason TEXT: why the rule may be overridden")
        if not actor.authenticated:
            raise errors.InputError("break glass needs a configured operator (`operators:` in the config)")
        require_role(actor, cfg.policy.break_glass_role, "break glass")
        if rule not in {r.rule for r in found}:
            raise errors.InputError(f"--break-glass {rule}: that rule does not block this start; nothing to "
                                    f"override (blocking: {', '.join(r.rule for r in found) or 'none'})")
        overrides.add(rule)
    verdict = safety.evaluate(found, overrides)
    if not verdict.allowed:
        text = "; ".join(f"{r.rule}: {r.sentence}" for r in verdict.blocking)
        raise errors.PermanentError(f"refused: {text}. An operator with role {cfg.policy.break_glass_role} may "
                                    "override one rule: --break-glass RULE --reason TEXT")
    store.bump_epoch()
    offered: dict[str, JSON] = {
        "from": source, "to": target, "outage_started_at": now.isoformat(), "detected_at": now.isoformat(),
        "backup_schedule": backup_schedule, "allow_stale": "stale-backup" in overrides, "backup": "",
    }
    params = {k: v for k, v in offered.items() if k in playbook.params}
    run_id = await Engine(store=store, services=None).start(playbook, params=params, kind=playbook.name)
    glass = tuple(state.BreakGlass(rule=r.rule, reason=break_glass[1], by=actor.name, at=now.isoformat(),
                                   sentence=r.sentence) for r in verdict.overridden if break_glass is not None)
    state.save_meta(store, run_id, state.RunMeta(requester=actor.name, step_mode=step_mode, break_glass=glass))
    store.append_audit(actor=actor.name, action="run.requested", run=run_id, subject=playbook.name,
                       details={"params": params, "step_mode": step_mode, "authenticated": actor.authenticated})
    for g in glass:
        await announce_break_glass(cfg, store, g, run_id)
    return Started(run_id=run_id, verdict=verdict, params=params)


async def announce_break_glass(cfg: models.Config, store: Store, g: state.BreakGlass, run_id: str | None) -> None:
    """Make an override loud: one audit entry, a WARNING log line and a notice to every webhook.
    The one path for ``runbook start --break-glass`` and ``failover run --force``."""
    store.append_audit(actor=g.by, action="break-glass", run=run_id, subject=g.rule,
                       details={"rule": g.rule, "reason": g.reason, "sentence": g.sentence})
    where = f"run {run_id}" if run_id else "a manual run"
    logger.warning("BREAK GLASS by %s on %s: rule %s overridden (%s): %s", g.by, where, g.rule, g.sentence, g.reason)
    await notify(cfg, {"event": "break-glass", "run": run_id, "rule": g.rule, "reason": g.reason, "by": g.by,
                       "message": f"BREAK GLASS: {g.by} overrode {g.rule} ({g.sentence}) for {where}: {g.reason}"})


def parse_evidence(items: Sequence[str]) -> dict[str, JSON]:
    """``--evidence field=value`` (or plain text, kept as ``note``)."""
    out: dict[str, JSON] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if sep and name.strip() and " " not in name.strip():
            out[name.strip()] = value.strip()
        else:
            note = out.get("note")
            out["note"] = f"{note}; {item}" if isinstance(note, str) else item
    return out


def confirm(*, store: Store, actor: Actor, run_id: str | None, key: str, evidence: Mapping[str, JSON]) -> list[str]:
    """Sign a waiting manual step; returns who has signed it so far."""
    run = _live(store, run_id)
    waits = {w.key: w for w in store.waits(run.id)}
    wait = waits.get(key)
    if wait is None or wait.kind != "confirm":
        waiting = ", ".join(f"{k} ({w.kind})" for k, w in waits.items()) or "nothing"
        raise errors.InputError(f"step {key} of run {run.id} is not waiting for a confirmation (waiting: {waiting})")
    detail = wait.detail if isinstance(wait.detail, dict) else {}
    role = str(detail.get("role") or "")
    require_role(actor, role, f"confirm {key}")
    meta = state.meta(store, run.id)
    if not detail.get("requester_may_confirm", True) and actor.name == meta.requester:
        raise errors.InputError(f"{actor.name} requested run {run.id} and cannot approve it: four eyes need "
                                "another operator")
    before = state.signed(store, run.id, key, "confirm")
    if any(s.operator == actor.name for s in before):
        raise errors.InputError(f"{actor.name} already confirmed {key}; it needs a different operator "
                                f"({detail.get('approvers', 1)} in all)")
    given = {**state.evidence_of(before), **evidence}
    wanted = detail.get("evidence")
    fields = [str(f) for f in wanted] if isinstance(wanted, list) else []
    missing = [f for f in fields if not given.get(f)]
    if missing:
        raise errors.InputError(f"{key} needs evidence: {', '.join(f'--evidence {f}=…' for f in missing)}")
    store.add_signoff(run.id, key, action="confirm", operator=actor.name, detail={"evidence": dict(evidence)})
    store.append_audit(actor=actor.name, action="step.confirm", run=run.id, subject=key,
                       details={"evidence": dict(evidence), "role": role})
    return [s.operator for s in state.signed(store, run.id, key, "confirm")]


def release_next(*, store: Store, actor: Actor, run_id: str | None) -> list[str]:
    """Step mode: let every step that waits for ``next`` run; returns their keys."""
    run = _live(store, run_id)
    waits = store.waits(run.id)
    ready = [w.key for w in waits if w.kind == "next"]
    if not ready:
        others = ", ".join(f"{w.key} waits for a confirmation" for w in waits) or "nothing waits"
        raise errors.InputError(f"run {run.id}: no step waits for `next` ({others})")
    for key in ready:
        store.add_signoff(run.id, key, action="next", operator=actor.name)
        store.append_audit(actor=actor.name, action="step.next", run=run.id, subject=key)
    return ready


def skip(*, cfg: models.Config, store: Store, actor: Actor, run_id: str | None, key: str, reason: str) -> None:
    """Skip a step that has not succeeded (manual: its role; automated: the approver role)."""
    if not reason.strip():
        raise errors.InputError("skip needs --reason TEXT")
    run = _live(store, run_id)
    if not isinstance(run.definition, dict):
        raise errors.InputError(f"run {run.id} has no playbook definition")
    steps = {s.id: s for s in Playbook.from_json(run.definition).steps()}
    step = steps.get(key.split("[", 1)[0])
    if step is None:
        raise errors.InputError(f"run {run.id} has no step {key!r} (steps: {', '.join(steps)})")
    if any(r.key == key and r.status is StepStatus.SUCCEEDED for r in store.step_records(run.id)):
        raise errors.InputError(f"step {key} already succeeded; nothing to skip")
    role = str(step.with_.get("role")) if step.uses == "manual" else cfg.policy.approver_role
    require_role(actor, role, f"skip {key}")
    store.add_signoff(run.id, key, action="skip", operator=actor.name, detail={"reason": reason})
    store.append_audit(actor=actor.name, action="step.skip", run=run.id, subject=key, details={"reason": reason})


def abort(*, cfg: models.Config, store: Store, actor: Actor, run_id: str | None, reason: str) -> RunRecord:
    """Cancel the run: nothing more starts (a step already running finishes; the rest is skipped)."""
    if not reason.strip():
        raise errors.InputError("abort needs --reason TEXT")
    run = _live(store, run_id)
    require_role(actor, cfg.policy.approver_role, "abort a run")
    done = store.update_run(run.id, phase=RunPhase.CANCELLED, error=f"aborted by {actor.name}: {reason}")
    store.append_audit(actor=actor.name, action="run.abort", run=run.id, subject=run.playbook,
                       details={"reason": reason})
    return done


def approve(*, cfg: models.Config, store: Store, actor: Actor, run_id: str) -> tuple[list[str], bool]:
    """Sign a run that waits for approval; it proceeds once ``policy.approvers`` different operators
    with ``policy.approver_role`` (never its requester) have signed. Returns (signers, approved)."""
    run = find_run(store, run_id)
    if run.phase is not RunPhase.WAITING_APPROVAL:
        raise errors.InputError(f"run {run.id} is {run.phase.value}, not waiting for approval")
    require_role(actor, cfg.policy.approver_role, f"approve run {run.id}")
    meta = state.meta(store, run.id)
    if actor.name == meta.requester:
        raise errors.InputError(f"{actor.name} requested run {run.id} and cannot approve it: four eyes need "
                                "another operator")
    if not store.add_signoff(run.id, state.RUN_KEY, action="approve", operator=actor.name):
        raise errors.InputError(f"{actor.name} already approved run {run.id}; it needs a different operator "
                                f"({cfg.policy.approvers} in all)")
    store.append_audit(actor=actor.name, action="run.approve", run=run.id, subject=run.playbook)
    names = list(dict.fromkeys(s.operator for s in state.signed(store, run.id, state.RUN_KEY, "approve")))
    if len(names) >= cfg.policy.approvers:
        store.approve_run(run.id, ", ".join(names))
        return names, True
    return names, False


__all__ = ["Started", "abort", "approve", "confirm", "find_run", "notify", "parse_evidence", "release_next", "skip",
           "start"]
