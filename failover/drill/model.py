"""What a drill measured: one typed document, stored in the journal and rendered by the report.

The same document is the ``--json`` output of ``drill run`` and ``drill report --format json``, so
other tools read exactly what the Übungsbericht shows.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Outcome(StrEnum):
    PASSED = "passed"  #: every expectation met
    FAILED = "failed"  #: at least one expectation not met (see the findings)
    ABORTED = "aborted"  #: the drill could not run to the end (steady state never reached, an error)


class InjectRecord(_Model):
    at_s: float
    ts: datetime
    what: str
    site: str | None = None
    ok: bool = True
    detail: str = ""


class DecisionEntry(_Model):
    ts: datetime
    sentence: str
    verdict: str | None = None


class StepTiming(_Model):
    key: str
    status: str
    started_at: datetime
    finished_at: datetime | None = None
    duration_s: float | None = None
    attempt: int = 1
    detail: str = ""
    budget_s: float | None = None


class HealthSample(_Model):
    ts: datetime
    site: str
    role: str
    health: str
    ready: bool


class Measurements(_Model):
    t0: datetime
    active_at_start: str
    standby_at_start: str | None = None
    failover_run: str | None = None
    run_phase: str | None = None
    target: str | None = None
    backup: str | None = None
    backup_completed_at: datetime | None = None
    outage_started_at: datetime | None = None
    detected_at: datetime | None = None
    verified_at: datetime | None = None
    rto_s: float | None = Field(default=None, description="watcher's outage start -> verified (WAZ)")
    rto_from_inject_s: float | None = Field(default=None, description="first fault injected -> verified")
    rto_from_detection_s: float | None = None
    detection_s: float | None = Field(default=None, description="first fault injected -> detected")
    data_loss_window_s: float | None = None
    records_written: int | None = None
    records_lost: int | None = None
    dns_ttl_s: int | None = None
    newest_backup_at_inject: str | None = None
    previous_backup_at_inject: str | None = None


class ExpectationResult(_Model):
    name: str
    expected: str
    actual: str
    passed: bool


class Finding(_Model):
    severity: str  #: "critical" | "warning" | "info"
    title: str
    detail: str
    measure: str = ""
    owner: str = ""
    due: str = ""


class DrillResult(_Model):
    id: str
    scenario: str
    title: str
    type: str
    label: str
    outcome: Outcome
    started_at: datetime
    finished_at: datetime
    injects: list[InjectRecord] = Field(default_factory=list)
    decisions: list[DecisionEntry] = Field(default_factory=list)
    steps: list[StepTiming] = Field(default_factory=list)
    health: list[HealthSample] = Field(default_factory=list)
    measurements: Measurements
    expectations: list[ExpectationResult] = Field(default_factory=list)
    findings: list[Finding] = Field(default_factory=list)
    verification: list[str] = Field(default_factory=list)
    error: str | None = None
