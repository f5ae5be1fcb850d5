"""The typed playbook: what the loader produces, the engine executes and a run keeps a copy of.

A playbook is a sequence of **stages** run in order; the **steps** of a stage run in parallel. Each
step names an action from :mod:`failover.playbook.registry` and passes it ``with:`` parameters whose
strings may hold ``{{ ... }}`` templates (:mod:`failover.playbook.templating`), resolved when the step
runs. The model is frozen and serialisable (:meth:`Playbook.to_json` / :meth:`Playbook.from_json`):
a run stores the definition it started with, so a resumed run after ``kill -9`` executes exactly
the same graph even if the file changed meanwhile.

:class:`RunPhase` and :class:`StepStatus` live in :mod:`failover.store` (the store persists them and
must not import the engine) and are re-exported here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from failover.store import JSON, RunPhase, StepStatus, Store

#: What an action returns: JSON outputs, usable by later steps as ``{{ outputs.<step-id>.<key> }}``.
StepResult = dict[str, JSON]

PARAM_TYPES: dict[str, tuple[type, ...]] = {"str": (str,), "int": (int,), "bool": (bool,), "list": (list,)}


class OnFailure(StrEnum):
    """What a failed step does to its run."""

    #: the run fails once the other steps of the stage have finished (default)
    ABORT = "abort"
    #: the failure is journaled and the run goes on (best-effort steps: fencing, notifications)
    CONTINUE = "continue"


@dataclass(frozen=True)
class ParamSpec:
    """One run parameter: its type (str|int|bool|list), whether it is required, its default."""

    name: str
    type: str
    required: bool = False
    default: JSON = None

    def accepts(self, value: JSON) -> bool:
        kinds = PARAM_TYPES[self.type]
        return isinstance(value, kinds) and not (self.type == "int" and isinstance(value, bool))


@dataclass(frozen=True)
class Step:
    """One typed step; with ``foreach`` it runs once per item (journal key ``id[as=item]``)."""

    id: str
    uses: str
    with_: Mapping[str, JSON] = field(default_factory=dict)
    timeout: float | None = None  #: seconds; None: the action's default
    retries: int = 0  #: extra attempts after a TemporaryError (or a timeout)
    on_failure: OnFailure = OnFailure.ABORT
    foreach: JSON = None  #: a template (or literal list) yielding the items
    as_: str = "item"  #: the item's name in the journal key (and an alias of ``item`` in templates)
    sequential: bool = False  #: iterations in order, stopping at the first failure
    line: int | None = None  #: where the step starts in its file (for messages)


@dataclass(frozen=True)
class Stage:
    name: str
    steps: tuple[Step, ...]


@dataclass(frozen=True)
class Playbook:
    name: str
    description: str
    params: Mapping[str, ParamSpec]
    stages: tuple[Stage, ...]
    source: str = "<memory>"

    def steps(self) -> list[Step]:
        return [s for stage in self.stages for s in stage.steps]

    def to_json(self) -> dict[str, JSON]:
        return {
            "name": self.name, "description": self.description, "source": self.source,
            "params": {n: {"type": p.type, "required": p.required, "default": p.default}
                       for n, p in self.params.items()},
            "stages": [{"name": st.name, "steps": [_step_json(s) for s in st.steps]} for st in self.stages],
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Playbook:
        params = {str(n): ParamSpec(name=str(n), type=str(p["type"]), required=bool(p["required"]),
                                    default=p["default"]) for n, p in dict(doc["params"]).items()}
        stages = tuple(Stage(name=str(st["name"]), steps=tuple(_step_from(s) for s in st["steps"]))
                       for st in doc["stages"])
        return cls(name=str(doc["name"]), description=str(doc.get("description", "")), params=params,
                   stages=stages, source=str(doc.get("source", "<memory>")))


def _step_json(s: Step) -> dict[str, JSON]:
    return {"id": s.id, "uses": s.uses, "with": dict(s.with_), "timeout": s.timeout, "retries": s.retries,
            "on_failure": s.on_failure.value, "foreach": s.foreach, "as": s.as_, "sequential": s.sequential,
            "line": s.line}


def _step_from(d: Mapping[str, Any]) -> Step:
    return Step(id=str(d["id"]), uses=str(d["uses"]), with_=dict(d.get("with") or {}),
                timeout=d.get("timeout"), retries=int(d.get("retries", 0)),
                on_failure=OnFailure(d.get("on_failure", "abort")), foreach=d.get("foreach"),
                as_=str(d.get("as", "item")), sequential=bool(d.get("sequential", False)), line=d.get("line"))


@dataclass
class StepContext:
    """What an action gets besides its parameters.

    ``attempt`` counts from 1 across retries *and* resumes; actions make their side effects
    idempotent with a key derived from ``run_id`` and the step key (``step_id`` + ``iteration``),
    never from ``attempt``.
    """

    run_id: str
    step_id: str
    iteration: str | None  #: a foreach iteration: ``"group=1"`` (key ``restore[group=1]``); else None
    epoch: int  #: the run's fencing epoch; mutating actions carry it to the systems they change
    attempt: int
    services: Any  #: the daemon's service bundle (providers, kube, dns, store); opaque to the engine
    store: Store
    log: logging.LoggerAdapter[logging.Logger]
    on_progress: Callable[[str], None] | None = None

    @property
    def key(self) -> str:
        """The journal key of this step (``restore[group=1]`` for a foreach iteration)."""
        return self.step_id if self.iteration is None else f"{self.step_id}[{self.iteration}]"

    def progress(self, message: str) -> None:
        """Journal ``message`` on the current attempt and show it in live views (observers)."""
        if self.on_progress is not None:
            self.on_progress(message)
        else:
            self.log.info("%s", message)


__all__ = ["JSON", "OnFailure", "ParamSpec", "Playbook", "RunPhase", "Stage", "Step", "StepContext",
           "StepResult", "StepStatus"]
