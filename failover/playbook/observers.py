"""Run observers: the notifier, the metrics, the live CLI view and the report watch a run here.

An observer subclasses :class:`RunObserver` and overrides the hooks it cares about; every hook is
a no-op by default. The engine calls hooks through :func:`notify`, which catches and logs (at
debug) anything an observer raises: a broken notifier must never abort a failover (Chaos Toolkit's
``RunEventHandler``); a hook is also bounded by :data:`HOOK_TIMEOUT_S`. Hooks are called after
the journal write they describe, so an observer never reports something the journal does not hold.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from failover.core import secrets
from failover.store import RunRecord, StepRecord

logger = logging.getLogger(__name__)


class RunObserver:
    """Base class with no-op hooks."""

    async def run_started(self, run: RunRecord) -> None:
        """The run entered ``running`` (also when it is resumed after a crash)."""

    async def step_started(self, run: RunRecord, step: StepRecord) -> None:
        """An attempt of a step was journaled as started."""

    async def step_progress(self, run: RunRecord, step: StepRecord, message: str) -> None:
        """An action reported progress (``ctx.progress``); already journaled."""

    async def step_finished(self, run: RunRecord, step: StepRecord) -> None:
        """An attempt ended (succeeded, retrying, failed, skipped); ``step`` is the final record."""

    async def run_finished(self, run: RunRecord) -> None:
        """The run reached a terminal phase."""


#: a hook that takes longer is abandoned (a hung webhook must not stall a failover)
HOOK_TIMEOUT_S = 10.0


async def notify(observers: Sequence[RunObserver], hook: Callable[[RunObserver], Awaitable[None]], *,
                 timeout: float = HOOK_TIMEOUT_S) -> None:
    """Call ``hook(observer)`` for each observer, each bounded by ``timeout``; failures are logged
    at debug, never raised."""
    for observer in observers:
        try:
            async with asyncio.timeout(timeout):
                await hook(observer)
        except Exception as exc:  # an observer's bug (or a timeout) must not abort a failover
            logger.debug("observer %s failed: %s: %s", type(observer).__name__, type(exc).__name__,
                         secrets.redact(str(exc)))
