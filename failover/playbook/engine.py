"""The playbook engine: runs a playbook as a journaled run that survives ``kill -9``.

Why it is built this way:

* **Every attempt is journaled before it runs and completed in ``finally``** (Chaos Toolkit's
  journal, one record per attempt). On :meth:`Engine.execute` after a crash, attempts still marked
  ``running`` become ``interrupted`` and run again; steps already ``succeeded`` are skipped and their
  outputs come from the journal, so templates of later steps see exactly the values of the first
  execution. Side effects are made exactly-once by the actions themselves (an idempotency key from
  the run id and the step key), which is why every action must be idempotent.
* **A step never raises out of the engine** (kopf's ``execute_handler_once``): a
  :class:`~failover.core.errors.TemporaryError` is retried (``retries:``; backoff through
  :mod:`failover.core.retry`, honouring ``.delay``); a :class:`~failover.core.errors.PermanentError` fails the
  step; any other exception fails it with its type and redacted message. Only cancellation
  propagates (the daemon lost the lease): the attempt is journaled ``interrupted`` and the run stays
  ``running`` for the next lease holder to resume.
* **Timeouts are temporary**: a step attempt is bounded by ``asyncio.timeout`` (the step's
  ``timeout:`` or the action's default) and an expiry raises TemporaryError, so it is retried like
  a 503. A slow cloud API is the common cause of a timeout in a failover, and every action is
  idempotent, so retrying is safe; a step that must not be retried says ``retries: 0``.
* **Fencing**: before every attempt of a *mutating* action the run's epoch is compared with the
  store's current fencing epoch; an older run gets StaleEpochError, which fails the step *and*
  the run whatever ``on_failure`` says, without retry.
* Observers are called after the journal write they describe and can never break a run.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ValidationError

from failover.core import errors, retry, secrets, tasks
from failover.playbook import registry, templating
from failover.playbook.model import JSON, OnFailure, Playbook, Step, StepContext, StepResult
from failover.playbook.observers import RunObserver, notify
from failover.store import RunPhase, RunRecord, StepRecord, StepStatus, Store

__all__ = ["Engine", "StepContext", "StepResult", "resolve_params"]

logger = logging.getLogger(__name__)


def utcnow() -> datetime:
    return datetime.now(UTC)


def resolve_params(playbook: Playbook, given: Mapping[str, JSON]) -> dict[str, JSON]:
    """Typed run parameters: defaults filled in, every problem reported at once (PlaybookError).

    Parameters the playbook does not declare are dropped with a warning, so a caller that offers
    more context than a playbook uses never blocks a failover."""
    issues: list[errors.Issue] = []
    out: dict[str, JSON] = {}
    for name in sorted(set(given) - set(playbook.params)):
        logger.warning("playbook %s declares no parameter %r; ignored", playbook.name, name)
    for name, spec in playbook.params.items():
        if name in given:
            if not spec.accepts(given[name]):
                issues.append(errors.Issue(playbook.source, None, f"param {name}: expected {spec.type}, "
                                                                  f"got {type(given[name]).__name__}"))
            out[name] = given[name]
        elif spec.required:
            issues.append(errors.Issue(playbook.source, None, f"param {name}: required"))
        else:
            out[name] = spec.default
    if issues:
        raise errors.PlaybookError(issues)
    return out


@dataclass(frozen=True)
class Outcome:
    """How one step (all its iterations) ended."""

    key: str
    ok: bool
    error: str | None = None
    fatal: bool = False  #: fails the run whatever on_failure says (stale epoch)


class _Unexpected(errors.PermanentError):
    """An action raised something that is not one of our error types."""


class Engine:
    """Starts runs and executes (or resumes) them; see the module docstring."""

    def __init__(self, *, store: Store, services: Any, observers: Sequence[RunObserver] = (),
                 clock: Callable[[], datetime] = utcnow, retry_base_delay: float = 1.0,
                 retry_max_delay: float = 30.0, holder: str | None = None) -> None:
        #: when set, every mutating attempt first checks that this actor still holds the lease
        self.holder = holder
        self.store = store
        self.services = services
        # plus the observers registered with the actions (the audit trail, once failover.actions is imported)
        self.observers = [*observers, *registry.default_observers(store)]
        self.clock = clock
        self.retry_base_delay = retry_base_delay
        self.retry_max_delay = retry_max_delay

    async def start(self, playbook: Playbook, *, params: Mapping[str, JSON], run_id: str | None = None,
                    wait_for_approval: bool = False, kind: str = "failover") -> str:
        """Create the run (journaled, with the current fencing epoch and a copy of the playbook)
        and return its id. Does not execute it. PlaybookError for bad parameters."""
        resolved = resolve_params(playbook, params)
        phase = RunPhase.WAITING_APPROVAL if wait_for_approval else RunPhase.PENDING
        run = self.store.create_run(playbook=playbook.name, kind=kind, params=resolved,
                                    epoch=self.store.current_epoch(), phase=phase,
                                    definition=playbook.to_json(), run_id=run_id)
        logger.info("run %s (%s) created: %s", run.id, playbook.name, phase.value)
        return run.id

    async def execute(self, run_id: str) -> RunRecord:
        """Run or resume ``run_id`` to a terminal phase and return its record.

        Safe to call again after a crash. A terminal run is returned as is; a run waiting for
        approval is returned unchanged. Cancellation propagates (the run stays ``running``)."""
        run = self.store.get_run(run_id)
        if run is None:
            raise errors.InputError(f"no run {run_id!r}")
        if run.phase.terminal or run.phase is RunPhase.WAITING_APPROVAL:
            logger.debug("run %s is %s; nothing to execute", run_id, run.phase.value)
            return run
        if not isinstance(run.definition, dict):
            raise errors.PermanentError(f"run {run_id} has no playbook definition")
        playbook = Playbook.from_json(run.definition)
        execution = _Execution(self, run, playbook)
        execution.close_interrupted()
        execution.run = self.store.update_run(run_id, phase=RunPhase.RUNNING,
                                              started_at=run.started_at or self.clock())
        await notify(self.observers, lambda o: o.run_started(execution.run))
        failure = await execution.run_stages()
        phase = RunPhase.FAILED if failure else RunPhase.SUCCEEDED
        aborted = self.store.get_run(run_id)
        if aborted is not None and aborted.phase is RunPhase.CANCELLED:  # an operator aborted it meanwhile
            phase, failure = RunPhase.CANCELLED, aborted.error
        final = self.store.update_run(run_id, phase=phase, finished_at=self.clock(), error=failure)
        logger.info("run %s %s%s", run_id, phase.value, f": {failure}" if failure else "")
        await notify(self.observers, lambda o: o.run_finished(final))
        return final

    async def resume_all(self) -> list[RunRecord]:
        """Execute every non-terminal run that may run (pending, running, or approved), oldest first."""
        runs = self.store.list_runs(limit=1000, phases=[RunPhase.PENDING, RunPhase.RUNNING])
        return [await self.execute(r.id) for r in sorted(runs, key=lambda r: r.seq)]


class _Execution:
    """The state of one execution of one run: outputs so far, attempt numbers."""

    def __init__(self, engine: Engine, run: RunRecord, playbook: Playbook) -> None:
        self.engine = engine
        self.store = engine.store
        self.run = run
        self.playbook = playbook
        self.outputs: dict[str, JSON] = {}
        self.done: dict[str, JSON] = {}
        self.attempts: dict[str, int] = {}

    def close_interrupted(self) -> None:
        """Journal attempts a dead process left ``running`` as interrupted; remember finished work."""
        for rec in self.store.step_records(self.run.id):
            self.attempts[rec.key] = max(self.attempts.get(rec.key, 0), rec.attempt)
            if rec.status is StepStatus.RUNNING:
                self.store.record_step_end(rec.record_id, status=StepStatus.INTERRUPTED,
                                           finished_at=self.engine.clock(),
                                           error="the process ended during this attempt; resumed")
            elif rec.status is StepStatus.SUCCEEDED:
                self.done[rec.key] = rec.output
                if rec.key == rec.step_id:
                    self.outputs[rec.step_id] = rec.output

    async def run_stages(self) -> str | None:
        """Every stage in order; returns the run's error (None: succeeded)."""
        for index, stage in enumerate(self.playbook.stages):
            running = [tasks.create_guarded_task(self.run_step(step),
                                                 name=f"run {self.run.id} step {step.id}")
                       for step in stage.steps]
            try:
                results = await asyncio.gather(*running)
            except asyncio.CancelledError:
                await tasks.cancel_and_wait(*running)
                raise
            failures = [o or Outcome(key=s.id, ok=False, error="internal error (see the log)")
                        for s, o in zip(stage.steps, results, strict=True) if o is None or not o.ok]
            aborting = [o for o in failures if o.fatal or self._step(o.key).on_failure is OnFailure.ABORT]
            if aborting:
                first = aborting[0]
                await self.skip_rest(index + 1, first.key)
                return f"step {first.key} failed: {first.error}"
        return None

    def _step(self, key: str) -> Step:
        step_id = key.split("[", 1)[0]
        return next(s for s in self.playbook.steps() if s.id == step_id)

    async def skip_rest(self, from_stage: int, because: str) -> None:
        for stage in self.playbook.stages[from_stage:]:
            for step in stage.steps:
                rec = self.store.record_step_start(self.run.id, step.id, step_id=step.id, attempt=0,
                                                   started_at=self.engine.clock(), status=StepStatus.SKIPPED)
                rec = self.store.record_step_end(rec.record_id, status=StepStatus.SKIPPED,
                                                 finished_at=self.engine.clock(),
                                                 error=f"not run: step {because} aborted the run")
                await self.finished(rec)

    async def finished(self, rec: StepRecord) -> None:
        await notify(self.engine.observers, lambda o: o.step_finished(self.run, rec))

    def scope(self, item: JSON = None, *, as_: str | None = None) -> dict[str, JSON]:
        scope: dict[str, JSON] = {"params": dict(self.run.params), "outputs": dict(self.outputs),
                                  "run": {"id": self.run.id, "epoch": self.run.epoch}}
        if as_ is not None:
            scope["item"] = item
            scope[as_] = item
        return scope

    async def run_step(self, step: Step) -> Outcome:
        if step.foreach is None:
            return await self.run_one(step, key=step.id, iteration=None, scope=self.scope())
        try:
            items = templating.render(step.foreach, self.scope())
            if not isinstance(items, list):
                raise errors.PermanentError(f"foreach: expected a list, got {type(items).__name__}")
            labels = [f"{step.as_}={it if isinstance(it, str) else json.dumps(it, separators=(',', ':'))}"
                      for it in items]
            if len(set(labels)) != len(labels):
                raise errors.PermanentError(f"foreach: duplicate items in {items!r}")
        except errors.FailoverError as exc:
            return await self.journal_failure(step, step.id, None, exc)
        runs = [(it, label) for it, label in zip(items, labels, strict=True)]
        outcomes: list[Outcome] = []
        if step.sequential:
            for it, label in runs:
                outcomes.append(await self.iteration(step, it, label))
                if not outcomes[-1].ok:
                    break
        else:
            children = [tasks.create_guarded_task(self.iteration(step, it, label),
                                                  name=f"run {self.run.id} step {step.id}[{label}]")
                        for it, label in runs]
            try:
                done = await asyncio.gather(*children)
            except asyncio.CancelledError:
                await tasks.cancel_and_wait(*children)
                raise
            outcomes = [o or Outcome(key=step.id, ok=False, error="internal error") for o in done]
        failed = [o for o in outcomes if not o.ok]
        self.outputs[step.id] = {"items": [self.done.get(f"{step.id}[{label}]") for _, label in runs]}
        if failed:
            return Outcome(key=failed[0].key, ok=False, error=failed[0].error,
                           fatal=any(o.fatal for o in failed))
        return Outcome(key=step.id, ok=True)

    async def iteration(self, step: Step, item: JSON, label: str) -> Outcome:
        return await self.run_one(step, key=f"{step.id}[{label}]", iteration=label,
                                  scope=self.scope(item, as_=step.as_))

    async def journal_failure(self, step: Step, key: str, iteration: str | None,
                              exc: BaseException) -> Outcome:
        """A step that cannot even start (bad template, unknown action, invalid parameters)."""
        error = _describe(exc)
        attempt = self.attempts[key] = self.attempts.get(key, 0) + 1
        rec = self.store.record_step_start(self.run.id, key, step_id=step.id, attempt=attempt,
                                           started_at=self.engine.clock())
        await notify(self.engine.observers, lambda o: o.step_started(self.run, rec))
        end = self.store.record_step_end(rec.record_id, status=StepStatus.FAILED,
                                         finished_at=self.engine.clock(), error=error)
        await notify(self.engine.observers, lambda o: o.step_finished(self.run, end))
        return Outcome(key=key, ok=False, error=error)

    async def journal_skip(self, step: Step, key: str, iteration: str | None, reason: str) -> Outcome:
        """An operator skipped the step: journaled ``skipped``; the run goes on (later templates that
        read its outputs fail, which is why a skip names its reason)."""
        output: JSON = {"skipped": True, "reason": reason}
        rec = self.store.record_step_start(self.run.id, key, step_id=step.id, attempt=0,
                                           started_at=self.engine.clock(), status=StepStatus.SKIPPED)
        end = self.store.record_step_end(rec.record_id, status=StepStatus.SKIPPED, finished_at=self.engine.clock(),
                                         output=output, error=f"skipped by an operator: {reason}")
        await self.finished(end)
        self.done[key] = output
        if iteration is None:
            self.outputs[step.id] = output
        return Outcome(key=key, ok=True)

    async def run_one(self, step: Step, *, key: str, iteration: str | None,
                      scope: Mapping[str, JSON]) -> Outcome:
        if key in self.done:
            logger.debug("run %s: %s already succeeded; output restored from the journal", self.run.id, key)
            return Outcome(key=key, ok=True)
        try:
            spec = registry.get(step.uses)
            rendered = templating.render(dict(step.with_), scope)
            try:
                params = spec.params.model_validate(rendered)
            except ValidationError as exc:
                raise errors.PermanentError(f"invalid parameters for {step.uses}: {exc}") from exc
        except (LookupError, errors.FailoverError) as exc:
            return await self.journal_failure(step, key, iteration, exc)
        for gate in registry.gates():  # step mode and skips (failover.actions.manual); may wait
            reason = await gate(self.store, self.run, step, key)
            if reason is not None:
                return await self.journal_skip(step, key, iteration, reason)
        attempt = _Attempt(self, step, key=key, iteration=iteration, spec=spec, params=params)
        try:
            output = await retry.call(attempt, attempts=step.retries + 1,
                                      base_delay=self.engine.retry_base_delay,
                                      max_delay=self.engine.retry_max_delay)
        except errors.FailoverError as exc:
            return Outcome(key=key, ok=False, error=_describe(exc),
                           fatal=isinstance(exc, errors.StaleEpochError))
        self.done[key] = output
        if iteration is None:
            self.outputs[step.id] = output
        return Outcome(key=key, ok=True)


class _Attempt:
    """One callable per step for :func:`failover.core.retry.call`: each call is one journaled attempt."""

    def __init__(self, ex: _Execution, step: Step, *, key: str, iteration: str | None,
                 spec: registry.ActionSpec, params: BaseModel) -> None:
        self.ex, self.step, self.key, self.iteration = ex, step, key, iteration
        self.spec, self.params = spec, params
        self.tries = 0

    async def __call__(self) -> StepResult:
        ex, engine = self.ex, self.ex.engine
        self.tries += 1
        number = ex.attempts[self.key] = ex.attempts.get(self.key, 0) + 1
        rec = ex.store.record_step_start(ex.run.id, self.key, step_id=self.step.id, attempt=number,
                                         started_at=engine.clock())
        await notify(engine.observers, lambda o: o.step_started(ex.run, rec))
        pending: list[asyncio.Task[Any]] = []

        def progress(message: str) -> None:
            text = secrets.redact(message)
            ex.store.append_progress(rec.record_id, text)
            pending.append(tasks.create_guarded_task(
                notify(engine.observers, lambda o: o.step_progress(ex.run, rec, text)),
                name=f"progress of {self.key}"))

        ctx = StepContext(run_id=ex.run.id, step_id=self.step.id, iteration=self.iteration,
                          epoch=ex.run.epoch, attempt=number, services=engine.services, store=ex.store,
                          log=logging.LoggerAdapter(logging.getLogger(f"failover.actions.{self.spec.name}"),
                                                    {"run": ex.run.id, "step": self.key}),
                          on_progress=progress)
        status, output, error = StepStatus.FAILED, None, None
        try:
            output = await self.invoke(ctx)
            status = StepStatus.SUCCEEDED
            return output
        except errors.UnconfirmedError as exc:
            status, error = StepStatus.UNCONFIRMED, secrets.redact(str(exc))
            output = dict(json.loads(json.dumps(exc.output)))
            return output
        except errors.TemporaryError as exc:
            status = StepStatus.RETRYING if self.tries <= self.step.retries else StepStatus.FAILED
            error = _describe(exc)
            raise
        except errors.FailoverError as exc:
            error = _describe(exc)
            raise
        except asyncio.CancelledError:
            status = StepStatus.INTERRUPTED
            error = "the run was cancelled (lease lost or shutdown)"
            raise
        finally:
            end = ex.store.record_step_end(rec.record_id, status=status, finished_at=engine.clock(),
                                           output=output if status in (StepStatus.SUCCEEDED,
                                                                       StepStatus.UNCONFIRMED) else None,
                                           error=error)
            if status is StepStatus.INTERRUPTED:
                for task in pending:
                    task.cancel()
            else:
                if pending:  # progress hooks are bounded by notify's timeout
                    await asyncio.wait(pending)
                await notify(engine.observers, lambda o: o.step_finished(ex.run, end))
            _log_end(end)

    async def invoke(self, ctx: StepContext) -> StepResult:
        """The action itself: epoch check, timeout, exception translation, output check."""
        run = self.ex.run
        if self.spec.mutating and self.ex.engine.holder is not None:
            holder = self.ex.store.lease_holder()
            if holder != self.ex.engine.holder:
                # not a failure of the step: this actor must stop, and the lease's holder resumes
                logger.warning("run %s: lease held by %s, not %s; stopping before %s", run.id, holder,
                               self.ex.engine.holder, ctx.key)
                task = asyncio.current_task()
                assert task is not None
                task.cancel()
                await asyncio.sleep(0)
        if self.spec.mutating:
            current = self.ex.store.current_epoch()
            if current > run.epoch:
                raise errors.StaleEpochError(
                    f"run {run.id} carries fencing epoch {run.epoch}, the current epoch is {current}: "
                    "a newer actor took over; refusing to mutate")
        timeout = self.step.timeout or self.spec.default_timeout
        try:
            async with asyncio.timeout(timeout):
                result = await self.spec.fn(ctx, self.params)
        except TimeoutError as exc:
            raise errors.TemporaryError(f"{self.spec.name} timed out after {timeout:g}s") from exc
        except (errors.TemporaryError, errors.PermanentError, errors.UnconfirmedError):
            raise
        except Exception as exc:
            raise _Unexpected(f"{type(exc).__name__}: {exc}") from exc
        if not isinstance(result, dict):
            raise errors.ProtocolError(f"{self.spec.name} returned {type(result).__name__}, not a dict")
        try:
            return dict(json.loads(json.dumps(result)))
        except (TypeError, ValueError) as exc:
            raise errors.ProtocolError(f"{self.spec.name} returned a non-JSON output: {exc}") from exc


def _describe(exc: BaseException) -> str:
    """The journal's error text: our plain errors as their message, anything else with its type."""
    if type(exc) in (errors.TemporaryError, errors.PermanentError, _Unexpected):
        return secrets.redact(str(exc))
    return secrets.redact(f"{type(exc).__name__}: {exc}")


def _log_end(rec: StepRecord) -> None:
    level = logging.INFO if rec.status is StepStatus.SUCCEEDED else logging.WARNING
    logger.log(level, "run %s step %s attempt %d %s%s", rec.run_id, rec.key, rec.attempt, rec.status.value,
               f": {rec.error}" if rec.error else "")
