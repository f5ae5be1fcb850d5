"""A run's runbook facts and the sign-offs people give, kept in the store so they survive ``kill -9``.

The engine's step gate and the ``manual`` action read them while they wait; the CLI writes them.
Sign-offs are rows (``confirm``, ``skip``, ``next``, ``approve``) keyed by run, step key and
operator, so the same operator signing twice counts once — the four-eyes rule counts operators.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from failover.store import JSON, RunPhase, SignoffRecord, Store

#: the journal key under which a run-level approval is signed
RUN_KEY = "(run)"


@dataclass(frozen=True)
class BreakGlass:
    """One overridden safety rule: who, why, when."""

    rule: str
    reason: str
    by: str
    at: str
    sentence: str  #: what the rule would have said


@dataclass(frozen=True)
class RunMeta:
    requester: str = "daemon"
    step_mode: bool = False
    break_glass: tuple[BreakGlass, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, JSON]:
        return {"requester": self.requester, "step_mode": self.step_mode,
                "break_glass": [asdict(b) for b in self.break_glass]}


def _key(run_id: str) -> str:
    return f"runbook.run.{run_id}"


def meta(store: Store, run_id: str) -> RunMeta:
    raw = store.get_state(_key(run_id))
    if not isinstance(raw, dict):
        return RunMeta()
    glass = raw.get("break_glass")
    return RunMeta(requester=str(raw.get("requester") or "daemon"), step_mode=bool(raw.get("step_mode")),
                   break_glass=tuple(BreakGlass(**{k: str(v) for k, v in g.items()})
                                     for g in (glass if isinstance(glass, list) else []) if isinstance(g, dict)))


def save_meta(store: Store, run_id: str, value: RunMeta) -> None:
    store.set_state(_key(run_id), value.to_json())


def signed(store: Store, run_id: str, key: str, action: str) -> list[SignoffRecord]:
    return [s for s in store.signoffs(run_id, key) if s.action == action]


def skip_reason(store: Store, run_id: str, key: str) -> str | None:
    """Why ``key`` must not run: the run was aborted, or an operator skipped it (or its foreach step)."""
    run = store.get_run(run_id)
    if run is not None and run.phase is RunPhase.CANCELLED:
        return f"the run was aborted ({run.error or 'no reason given'})"
    step_id = key.split("[", 1)[0]
    for k in dict.fromkeys((key, step_id)):
        skips = signed(store, run_id, k, "skip")
        if skips:
            detail = skips[0].detail
            reason = detail.get("reason") if isinstance(detail, dict) else None
            return f"{reason or 'no reason given'} ({skips[0].operator})"
    return None


def evidence_of(signoffs: list[SignoffRecord]) -> dict[str, JSON]:
    """The evidence fields the sign-offs filled, later ones winning."""
    out: dict[str, JSON] = {}
    for s in signoffs:
        given = s.detail.get("evidence") if isinstance(s.detail, dict) else None
        if isinstance(given, dict):
            out.update(given)
    return out


def break_glass_of(store: Store, run_id: str | None) -> list[dict[str, JSON]]:
    """The break-glass overrides of a run as JSON (``[]`` without a run or the runbook's state)."""
    if run_id is None:
        return []
    return [{"rule": g.rule, "reason": g.reason, "by": g.by, "at": g.at, "sentence": g.sentence}
            for g in meta(store, run_id).break_glass]
