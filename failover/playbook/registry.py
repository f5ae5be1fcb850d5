"""The action registry: playbook ``uses:`` names → typed, documented async functions.

Actions register themselves with the :func:`action` decorator at import time (importing
:mod:`failover.actions` registers the product's actions). Each action declares a pydantic model
for its ``with:`` parameters, so the loader can reject a bad playbook before anything runs, and
whether it *mutates* the world: the engine checks the run's fencing epoch before every mutating
action and refuses a stale one.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar, cast

from pydantic import BaseModel

from failover.playbook.model import Step, StepContext, StepResult
from failover.playbook.observers import RunObserver
from failover.store import RunRecord, Store

logger = logging.getLogger(__name__)

P = TypeVar("P", bound=BaseModel)
ActionFn = Callable[[StepContext, BaseModel], Awaitable[StepResult]]
BUILTIN_PACKAGE = "failover.actions"


class UnknownActionError(LookupError):
    """No action is registered under the name (the loader reports it with file:line)."""


@dataclass(frozen=True)
class ActionSpec:
    name: str
    params: type[BaseModel]
    fn: ActionFn
    default_timeout: float
    mutating: bool

    @property
    def doc(self) -> str:
        return (getattr(self.fn, "__doc__", None) or "").strip()


_actions: dict[str, ActionSpec] = {}


def action(name: str, *, params: type[P], timeout: float = 60.0, mutating: bool = True
           ) -> Callable[[Callable[[StepContext, P], Awaitable[StepResult]]],
                         Callable[[StepContext, P], Awaitable[StepResult]]]:
    """Register the decorated ``async def fn(ctx, params) -> StepResult`` as action ``name``.

    ``timeout`` is the default per-attempt timeout in seconds (a step's ``timeout:`` overrides it);
    ``mutating=False`` marks read-only actions, which run without the fencing-epoch check.
    Registering a *different* function under a taken name is a programming error (ValueError).
    """

    def register(fn: Callable[[StepContext, P], Awaitable[StepResult]]
                 ) -> Callable[[StepContext, P], Awaitable[StepResult]]:
        existing = _actions.get(name)
        if existing is not None and _qualname(existing.fn) != _qualname(fn):
            raise ValueError(f"action {name!r} is already registered by {_qualname(existing.fn)}")
        _actions[name] = ActionSpec(name=name, params=params, fn=cast(ActionFn, fn),
                                    default_timeout=float(timeout), mutating=mutating)
        return fn

    return register


def _qualname(fn: object) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', '?')}"


def get(name: str) -> ActionSpec:
    """The action registered as ``name``; :class:`UnknownActionError` (a LookupError) otherwise."""
    spec = _actions.get(name)
    if spec is None:
        known = ", ".join(sorted(_actions)) or "none registered"
        raise UnknownActionError(f"unknown action {name!r} (known: {known})")
    return spec


def names() -> list[str]:
    return sorted(_actions)


#: ``await gate(store, run, step, key)`` before a step runs: None lets it run, a string skips it
#: (journaled ``skipped`` with that reason); a gate may wait (step mode waits for ``runbook next``)
StepGate = Callable[[Store, RunRecord, Step, str], Awaitable[str | None]]
#: builds an observer every engine gets (the audit trail); called with the engine's store
ObserverFactory = Callable[[Store], RunObserver]
_gates: dict[str, StepGate] = {}
_observer_factories: dict[str, ObserverFactory] = {}


def step_gate(fn: StepGate) -> StepGate:
    """Register ``fn`` as a gate the engine awaits before every step (idempotent by qualname)."""
    _gates[_qualname(fn)] = fn
    return fn


def gates() -> list[StepGate]:
    return list(_gates.values())


def engine_observer(factory: ObserverFactory) -> ObserverFactory:
    """Register an observer factory; every engine adds one observer from it (idempotent)."""
    _observer_factories[_qualname(factory)] = factory
    return factory


def default_observers(store: Store) -> list[RunObserver]:
    return [factory(store) for factory in _observer_factories.values()]


def ensure_builtin() -> None:
    """Import the product's actions so that they are registered (idempotent)."""
    try:
        importlib.import_module(BUILTIN_PACKAGE)
    except ImportError as exc:
        logger.warning("cannot import the built-in actions (%s): %s", BUILTIN_PACKAGE, exc)
