"""The safety rules that block a runbook start, and break glass: overriding exactly one of them.

Route 53 ARC's safety rules are the model: a rule blocks, an authorised person may override it,
and the override is loud. :func:`evaluate` is pure — the facts in, the blocking and the overridden
refusals out — so the controller's own refusal checks can take the same ``overrides`` argument
with one small call. The rules:

* ``cooldown`` — the last failover was less than ``policy.cooldown`` ago (unplanned failovers);
* ``standby-not-ready`` — the daemon has not reported the target ready (apart from its backup age);
* ``no-quorum`` — the observers do not agree that the active site is down (when they report one);
* ``stale-backup`` — the target's newest backup is older than the RPO (unplanned failovers; the
  override passes ``allow_stale`` to the playbook).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

RULES = ("cooldown", "standby-not-ready", "no-quorum", "stale-backup")


@dataclass(frozen=True)
class Refusal:
    rule: str
    sentence: str


@dataclass(frozen=True)
class Facts:
    """What the rules look at (read from the store by the caller)."""

    target: str
    unplanned: bool  #: a failover (not a planned switchover or failback)
    now: datetime
    cooldown_s: float
    last_failover_at: datetime | None
    status: Mapping[str, Any] | None  #: the daemon's fresh ``status`` document, if any
    status_max_age_s: float


@dataclass(frozen=True)
class Verdict:
    blocking: tuple[Refusal, ...]
    overridden: tuple[Refusal, ...]

    @property
    def allowed(self) -> bool:
        return not self.blocking


def refusals(f: Facts) -> list[Refusal]:
    """Every rule that blocks now, with the sentence an operator reads."""
    out: list[Refusal] = []
    if f.unplanned and f.last_failover_at is not None:
        since = (f.now - f.last_failover_at).total_seconds()
        if since < f.cooldown_s:
            out.append(Refusal("cooldown", f"the last failover was {since:.0f}s ago, within the cool-down of "
                                           f"{f.cooldown_s:.0f}s"))
    site = (f.status or {}).get("sites", {}).get(f.target) if f.status else None
    if not isinstance(site, Mapping):
        out.append(Refusal("standby-not-ready", f"no daemon has reported on {f.target} in the last "
                                                f"{f.status_max_age_s:.0f}s (is `failover daemon` running?)"))
    elif not site.get("ready"):
        reasons = [str(r) for r in site.get("ready_reasons") or []]
        backup = [r for r in reasons if r.startswith("backup")]
        other = [r for r in reasons if not r.startswith("backup")] or ([] if backup else ["not ready"])
        if other:
            out.append(Refusal("standby-not-ready", f"{f.target} is not ready: {'; '.join(other[:3])}"))
        if backup and f.unplanned:
            out.append(Refusal("stale-backup", f"{f.target}: {'; '.join(backup)}"))
    quorum = (f.status or {}).get("quorum")
    if isinstance(quorum, Mapping) and quorum.get("agreed") is False:
        out.append(Refusal("no-quorum", f"the observers do not agree the active site is down: "
                                        f"{quorum.get('sentence') or 'no quorum'}"))
    return out


def evaluate(found: Collection[Refusal], overrides: Collection[str]) -> Verdict:
    """Split refusals into blocking and overridden; an override only lifts the rule it names."""
    return Verdict(blocking=tuple(r for r in found if r.rule not in overrides),
                   overridden=tuple(r for r in found if r.rule in overrides))
