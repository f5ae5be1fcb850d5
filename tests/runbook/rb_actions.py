"""A trivial action for the runbook tests (no services needed); registered on import."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from failover.playbook import registry
from failover.playbook.engine import StepContext, StepResult


class NoteParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = ""


@registry.action("rb-note", params=NoteParams, timeout=5, mutating=False)
async def note(ctx: StepContext, p: NoteParams) -> StepResult:
    """Return the step key and the text."""
    return {"key": ctx.key, "text": p.text}
