"""Measuring a lab drill from the daemon's journal: decisions, the failover run's steps and its
RTO / data-loss figures, and the site health the daemon published while the drill ran.

Nothing here estimates: times come from the journal (``runs``, ``steps``, ``decisions``) and from
the daemon's ``status`` document, sampled by :class:`HealthSampler`; records lost are counted by
the world driver's users.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta
from typing import Any

from failover.drill.model import DecisionEntry, HealthSample, Measurements, StepTiming
from failover.store import RunRecord


class HealthSampler:
    """Samples the daemon's status document; keeps a sample when a site's view changes."""

    def __init__(self, store: Any, *, interval: float = 0.4) -> None:
        self.store = store
        self.interval = interval
        self.samples: list[HealthSample] = []
        self.reasons: dict[str, dict[str, str]] = {}  #: standby -> check -> last not-ready reason
        self.since: datetime | None = None  #: reasons count from here (T0); before is warm-up
        self._last: dict[str, tuple[str, str, bool]] = {}

    def status(self) -> dict[str, Any]:
        doc = self.store.get_state("status")
        return doc if isinstance(doc, dict) else {}

    def sample(self, at: datetime) -> None:
        for name, site in (self.status().get("sites") or {}).items():
            key = (str(site.get("role")), str(site.get("health")), bool(site.get("ready")))
            if site.get("role") == "standby" and not site.get("ready") and self.since and at >= self.since:
                for reason in site.get("ready_reasons") or []:
                    check = str(reason).split(":", 1)[0]
                    self.reasons.setdefault(name, {})[check] = str(reason)
            if self._last.get(name) != key:
                self._last[name] = key
                self.samples.append(HealthSample(ts=at, site=name, role=key[0], health=key[1], ready=key[2]))

    def restart(self, at: datetime) -> None:
        self._last.clear()
        self.sample(at)

    async def run(self, clock: Any) -> None:
        while True:
            with contextlib.suppress(Exception):
                self.sample(clock())
            await asyncio.sleep(self.interval)


def decisions_since(store: Any, since: datetime) -> list[DecisionEntry]:
    out = []
    for d in reversed(store.decisions(limit=500)):
        if d.ts >= since:
            payload = d.payload if isinstance(d.payload, dict) else {}
            out.append(DecisionEntry(ts=d.ts, sentence=d.sentence, verdict=payload.get("verdict")))
    return out


def run_since(store: Any, since: datetime) -> RunRecord | None:
    """The first failover run created after ``since`` (the drill's T0)."""
    runs = [r for r in store.list_runs(limit=20) if r.created_at >= since - timedelta(seconds=0.5)]
    return min(runs, key=lambda r: r.seq) if runs else None


def steps_of(store: Any, run_id: str, budgets: dict[str, float]) -> list[StepTiming]:
    out = []
    for s in store.step_records(run_id):
        base = s.key.split("[", 1)[0]
        detail = s.error or (s.progress[-1] if s.progress else "")
        out.append(StepTiming(key=s.key, status=str(s.status), started_at=s.started_at, finished_at=s.finished_at,
                              duration_s=s.duration, attempt=s.attempt, detail=detail[:300],
                              budget_s=budgets.get(s.key, budgets.get(base))))
    return out


def _time(value: Any) -> datetime | None:
    if not value or not isinstance(value, str):
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _seconds(later: datetime | None, earlier: datetime | None) -> float | None:
    if later is None or earlier is None:
        return None
    return round((later - earlier).total_seconds(), 3)


def fill_from_run(m: Measurements, store: Any, run: RunRecord, first_fault: datetime | None) -> None:
    """RTO, detection, data loss and the restored backup from the run's journal."""
    m.failover_run, m.run_phase = run.id, str(run.phase)
    params = run.params or {}
    m.target = str(params.get("to")) if params.get("to") else None
    m.outage_started_at = _time(params.get("outage_started_at"))
    m.detected_at = _time(params.get("detected_at"))
    for s in store.step_records(run.id):
        out = s.output if isinstance(s.output, dict) else {}
        if s.key == "select-backup" and str(s.status) == "succeeded":
            m.backup = str(out.get("backup"))
            m.backup_completed_at = _time(out.get("completed_at"))
        if s.key == "mark-active" and str(s.status) == "succeeded":
            m.verified_at = _time(out.get("verified_at"))
            m.rto_s = out.get("rto_s") if isinstance(out.get("rto_s"), (int, float)) else None
            m.rto_from_detection_s = out.get("rto_from_detection_s") \
                if isinstance(out.get("rto_from_detection_s"), (int, float)) else None
            window = out.get("data_loss_window_s")
            m.data_loss_window_s = float(window) if isinstance(window, (int, float)) else None
    m.rto_from_inject_s = _seconds(m.verified_at, first_fault)
    m.detection_s = _seconds(m.detected_at, first_fault)
