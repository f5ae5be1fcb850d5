"""Drill scenarios as documents: what is practised, against which targets, and what must happen.

A scenario is a YAML file (``drills/*.yaml``) validated like the config: every problem is reported
with file and line before anything runs (Velero ``ValidationErrors`` style), including references
to sites and components that the config does not know. Sites in injects and expectations may be
named directly or by role at the drill's start: ``active``, ``standby`` (the first standby in
preference order) or ``standbys`` (every standby).

Timeline entries say *when* (``at``: seconds after T0, or ``"T+5s"``, ``"T+1m30s"``) and *what*
(``do``): a lab fault on a site (``down``, ``blackhole``, ``slow``, ``storage``, ``provider-api``,
``component=NAME``), ``dns-provider-outage``, ``corrupt-newest-backup`` (on a standby's bucket),
``heal`` (every fault, the active site first) or ``note`` (a tabletop inject, text only).
"""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import Any

import pydantic
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from failover.config import loader, models, yamlpos
from failover.core import errors, resources

SITE_FAULTS = ("down", "blackhole", "slow", "storage", "provider-api")
ROLE_WORDS = ("active", "standby", "standbys")
_T = re.compile(r"^T\+(?:(?P<m>\d+(?:\.\d+)?)m)?(?:(?P<s>\d+(?:\.\d+)?)s)?$")


class DrillType(StrEnum):
    """BSI 200-4 exercise types this product runs."""

    #: technical scenario simulation in the lab (Funktionstest / Szenario-Simulation)
    LAB = "lab"
    #: isolated recovery on a real standby (Funktionstest Ausweich-RZ), production untouched
    TEST_FAILOVER = "test-failover"
    #: Planbesprechung: the timeline is read and discussed; nothing is injected
    TABLETOP = "tabletop"

    @property
    def german(self) -> str:
        return {"lab": "Szenario-Simulation im Labor (technischer Funktionstest)",
                "test-failover": "Funktionstest Ausweichstandort (isolierte Test-Wiederherstellung)",
                "tabletop": "Planbesprechung (Tabletop)"}[self.value]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Goals(_Model):
    rto: float | None = Field(default=None, gt=0, description="WAZ target, seconds (outage start -> verified)")
    rpo: float | None = Field(default=None, ge=0, description="maximum tolerable data-loss window, seconds")
    no_failover: bool = Field(default=False, description="the goal is that nothing fails over (flaps, faults)")
    step_budgets: dict[str, float] = Field(default_factory=dict, description="step key -> seconds")
    text: str = ""


class Participant(_Model):
    name: str
    role: str
    organisation: str = ""


class Inject(_Model):
    at: float = Field(ge=0, description="seconds after T0 (or 'T+5s', 'T+1m')")
    do: str
    site: str | None = None
    text: str = ""

    @field_validator("at", mode="before")
    @classmethod
    def _at(cls, value: Any) -> Any:
        if isinstance(value, str):
            m = _T.match(value.strip())
            if not m or not (m.group("m") or m.group("s")):
                raise ValueError(f"{value!r}: write seconds (5) or 'T+5s' / 'T+1m30s'")
            return float(m.group("m") or 0) * 60 + float(m.group("s") or 0)
        return value

    @model_validator(mode="after")
    def _shape(self) -> Inject:
        kind = self.kind
        if kind == "unknown":
            raise ValueError(f"do: unknown inject {self.do!r}; use one of {', '.join(SITE_FAULTS)}, "
                             "component=NAME, dns-provider-outage, corrupt-newest-backup, heal or note")
        if kind in ("fault", "component", "corrupt") and not self.site:
            raise ValueError(f"do: {self.do} needs `site:` (a site name, active, standby or standbys)")
        if kind == "note" and not self.text:
            raise ValueError("do: note needs `text:`")
        return self

    @property
    def kind(self) -> str:
        if self.do in SITE_FAULTS:
            return "fault"
        if self.do.startswith("component="):
            return "component"
        return {"dns-provider-outage": "dns", "corrupt-newest-backup": "corrupt", "heal": "heal",
                "note": "note"}.get(self.do, "unknown")

    def describe(self) -> str:
        if self.kind == "note":
            return self.text
        where = f" on {self.site}" if self.site else ""
        extra = f" ({self.text})" if self.text else ""
        return f"{self.do}{where}{extra}"


class Expectations(_Model):
    takes_over: str | None = Field(default=None, description="site (or role word) that must become active")
    decision: str | None = Field(default=None, description="a decision sentence must contain this")
    max_rto: float | None = Field(default=None, gt=0)
    max_records_lost: int | None = Field(default=None, ge=0)
    max_data_loss: float | None = Field(default=None, ge=0, description="data-loss window, seconds")
    no_action: bool = Field(default=False, description="no failover run may start")
    restored_backup: str | None = Field(default=None, pattern="^(newest|previous)$",
                                        description="which backup (at the first inject) the run restores")
    standby_ready: bool | None = Field(default=None, description="false: the standby lost its readiness "
                                       "during the drill; true: it stayed ready throughout")
    site_health: dict[str, str] = Field(default_factory=dict,
                                        description="site -> health it must show at some point")

    @model_validator(mode="after")
    def _consistent(self) -> Expectations:
        if self.no_action and self.takes_over:
            raise ValueError("no_action and takes_over contradict each other; keep one")
        for site, health in self.site_health.items():
            if health not in ("healthy", "degraded", "down", "unknown"):
                raise ValueError(f"site_health.{site}: {health!r} is not healthy, degraded, down or unknown")
        return self


class Scenario(_Model):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    title: str = ""
    type: DrillType
    scope: str = ""
    description: str = ""
    goals: Goals = Goals()
    participants: tuple[Participant, ...] = ()
    timeline: tuple[Inject, ...] = ()
    expectations: Expectations = Expectations()
    settle: float = Field(default=6.0, ge=0, description="seconds to keep observing after the last inject")
    run_timeout: float = Field(default=150.0, gt=0, description="seconds a failover run may take")
    standby: str | None = Field(default=None, description="test-failover: the standby (default: preferred)")

    @model_validator(mode="after")
    def _ordered(self) -> Scenario:
        times = [i.at for i in self.timeline]
        if times != sorted(times):
            raise ValueError("timeline: entries must be in time order")
        if self.type is DrillType.LAB and not any(i.kind != "note" for i in self.timeline):
            raise ValueError("timeline: a lab drill needs at least one inject that is not a note")
        return self

    @property
    def duration(self) -> float:
        return max((i.at for i in self.timeline), default=0.0)


def _references(located: yamlpos.Located, sc: Scenario, cfg: models.Config,
                profile: models.WorkplaceProfile) -> list[errors.Issue]:
    sites = {s.name for s in cfg.sites}
    allowed = sorted(sites) + list(ROLE_WORDS)
    components = {c.name: bool(c.workloads) for c in profile.components}
    issues: list[errors.Issue] = []
    for i, inj in enumerate(sc.timeline):
        if inj.site is not None and inj.site not in sites and inj.site not in ROLE_WORDS:
            issues.append(located.issue(("timeline", i, "site"),
                          f"timeline[{i}].site: unknown site {inj.site!r} (use one of {', '.join(allowed)})"))
        if inj.kind == "component":
            name = inj.do.split("=", 1)[1]
            if not components.get(name):
                known = ", ".join(sorted(n for n, has in components.items() if has))
                issues.append(located.issue(("timeline", i, "do"),
                              f"timeline[{i}].do: component {name!r} has no workloads to fail (known: {known})"))
        if sc.type is DrillType.TABLETOP and inj.kind != "note":
            issues.append(located.issue(("timeline", i, "do"),
                          f"timeline[{i}].do: a tabletop drill injects nothing; write `do: note`"))
    ex = sc.expectations
    for key, site in (("takes_over", ex.takes_over), ("standby", sc.standby)):
        if site is not None and site not in sites and site not in ROLE_WORDS:
            where = ("expectations", key) if key == "takes_over" else (key,)
            issues.append(located.issue(where, f"{key}: unknown site {site!r} (use one of {', '.join(allowed)})"))
    for site in ex.site_health:
        if site not in sites and site not in ROLE_WORDS:
            issues.append(located.issue(("expectations", "site_health", site),
                                        f"expectations.site_health: unknown site {site!r}"))
    for key in sc.goals.step_budgets:
        if not re.match(r"^[a-z0-9-]+(\[[0-9]+\])?$", key):
            issues.append(located.issue(("goals", "step_budgets", key),
                                        f"goals.step_budgets: {key!r} is not a step key (e.g. restore, dns-switch)"))
    return issues


def load(path: Path, cfg: models.Config, profile: models.WorkplaceProfile) -> Scenario:
    """Load and validate one scenario; ScenarioError lists every problem with file:line."""
    try:
        located = yamlpos.load_file(path)
    except errors.ConfigError as exc:
        raise ScenarioError(exc.issues) from None
    if not isinstance(located.data, dict):
        raise ScenarioError([located.issue((), "a scenario must be a mapping (name, type, timeline, ...)")])
    try:
        sc = Scenario.model_validate(located.data)
    except pydantic.ValidationError as exc:
        raise ScenarioError([errors.Issue(i.file, i.line, i.message.replace(
            "`failover config schema` lists every field", "docs/drills.md lists every field"))
            for i in loader._pydantic_issues(located, exc)]) from None
    issues = _references(located, sc, cfg, profile)
    if issues:
        raise ScenarioError(issues)
    return sc


class ScenarioError(errors.InputError):
    """A scenario file is invalid; ``issues`` lists every problem, not only the first."""


def drill_dirs(config_path: Path) -> list[Path]:
    """Scenarios beside the config's directory first, then the ones shipped with the product."""
    try:
        shipped = resources.data_dir("drills")
    except (ModuleNotFoundError, FileNotFoundError):
        shipped = Path(__file__).resolve().parents[2] / "drills"
    return [config_path.parent.parent / "drills", shipped]


def find(name_or_path: str, config_path: Path) -> Path:
    """A scenario by path, or by name in :func:`drill_dirs`."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.exists():
            raise ScenarioError([errors.Issue(str(path), None, "no such scenario file")])
        return path
    for directory in drill_dirs(config_path):
        for candidate in (directory / f"{name_or_path}.yaml", directory / f"{name_or_path}.yml"):
            if candidate.exists():
                return candidate
    known = sorted({p.stem for d in drill_dirs(config_path) if d.is_dir() for p in d.glob("*.yaml")})
    raise ScenarioError([errors.Issue(name_or_path, None,
                                      f"no scenario of that name (known: {', '.join(known) or 'none'})")])
