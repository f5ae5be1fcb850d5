"""Steps no API can do: ``uses: manual`` waits for people, and step mode holds automated steps.

A manual step (call the provider, inform the institutions' service desks, the Krisenstab's
decision) names the **role** that must confirm it, how many different operators of that role must
(``approvers: 2`` is four eyes), Markdown **instructions**, a **checklist** and the **evidence**
fields to fill. The action journals that it waits (a ``waits`` row, a progress line every observer
sees, a webhook notice to the role) and then polls the store for sign-offs, so a daemon killed
with ``-9`` resumes the step and simply waits again: the confirmations people gave meanwhile are
rows in the store, not messages in memory. Who may sign is checked when signing
(:mod:`failover.runbook.service`); the action only counts distinct operators.

The step gate (:func:`step_gate`) runs before every step of every run: an operator's ``skip``
skips the step; in a step-mode run each automated step waits for ``failover runbook next``.
"""

from __future__ import annotations

import asyncio
import logging

from pydantic import BaseModel, ConfigDict, Field

from failover.core import secrets
from failover.playbook import registry
from failover.playbook.model import JSON, Step, StepContext, StepResult
from failover.runbook import state
from failover.store import RunRecord, Store

logger = logging.getLogger(__name__)

#: how often a waiting step looks for sign-offs (seconds)
POLL_S = 0.3


class ManualParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str
    role: str = Field(description="the role whose operators confirm the step")
    instructions: str = Field(default="", description="Markdown: what to do, whom to call")
    checklist: list[str] = Field(default_factory=list, description="items to tick (the printed handbook)")
    evidence: list[str] = Field(default_factory=list, description="evidence fields to fill when confirming")
    approvers: int = Field(default=1, ge=1, le=9, description="different operators of the role who must confirm")
    requester_may_confirm: bool = Field(default=True, description="false: the run's requester cannot sign")


def wait_detail(p: ManualParams) -> dict[str, JSON]:
    return {"title": p.title, "role": p.role, "approvers": p.approvers, "evidence": list(p.evidence),
            "checklist": list(p.checklist), "instructions": p.instructions,
            "requester_may_confirm": p.requester_may_confirm and p.approvers < 2}


@registry.action("manual", params=ManualParams, timeout=30 * 86400.0, mutating=False)
async def manual(ctx: StepContext, p: ManualParams) -> StepResult:
    """Wait until enough operators of the role confirmed (or one skipped) this step."""
    key = ctx.key
    ctx.store.set_wait(ctx.run_id, key, kind="confirm", detail=wait_detail(p))
    who = f"{p.approvers} operators" if p.approvers > 1 else "an operator"
    ctx.progress(f"waiting for {who} with role {p.role} to confirm: {p.title} "
                 f"(`failover runbook confirm {key} --as NAME`)")
    await _notify_role(ctx, p)
    while True:
        reason = state.skip_reason(ctx.store, ctx.run_id, key)
        if reason is not None:
            ctx.store.clear_wait(ctx.run_id, key)
            return {"skipped": True, "reason": reason}
        confirms = state.signed(ctx.store, ctx.run_id, key, "confirm")
        names = list(dict.fromkeys(s.operator for s in confirms))
        if len(names) >= p.approvers:
            ctx.store.clear_wait(ctx.run_id, key)
            ctx.progress(f"confirmed by {', '.join(names)}")
            return {"confirmed_by": list[JSON](names), "evidence": state.evidence_of(confirms),
                    "confirmed_at": max(s.at for s in confirms).isoformat()}
        await asyncio.sleep(POLL_S)


async def _notify_role(ctx: StepContext, p: ManualParams) -> None:
    """POST the request to the configured webhooks (best effort: a notice never fails the step)."""
    http = getattr(ctx.services, "http", None)
    runtime = getattr(ctx.services, "runtime", None)
    if http is None or runtime is None:
        return
    operators = [o.name for o in runtime.config.operators if p.role in o.roles]
    doc = {"event": "manual-step", "run": ctx.run_id, "step": ctx.key, "role": p.role, "operators": operators,
           "approvers": p.approvers, "message": f"run {ctx.run_id}: {p.title} — waiting for role {p.role}"}
    for url in runtime.config.notify:
        try:
            (await http.post(url, json=doc)).raise_for_status()
        except Exception as exc:  # a notice must never fail the step
            logger.warning("notify %s failed: %s", url, secrets.redact(str(exc)))


@registry.step_gate
async def step_gate(store: Store, run: RunRecord, step: Step, key: str) -> str | None:
    """Skip what an operator skipped; in step mode hold each automated step until ``next``."""
    if not hasattr(store, "signoffs"):  # a store without the runbook's tables: nothing to gate
        return None
    reason = state.skip_reason(store, run.id, key)
    if reason is not None or step.uses == "manual":
        return reason
    if not state.meta(store, run.id).step_mode:
        return None
    if state.signed(store, run.id, key, "next"):
        return None
    store.set_wait(run.id, key, kind="next", detail={"uses": step.uses, "title": step.id})
    logger.info("run %s: step mode: %s waits for `failover runbook next`", run.id, key)
    while True:
        await asyncio.sleep(POLL_S)
        reason = state.skip_reason(store, run.id, key)
        if reason is not None or state.signed(store, run.id, key, "next"):
            store.clear_wait(run.id, key)
            return reason


__all__ = ["ManualParams", "manual", "step_gate"]
