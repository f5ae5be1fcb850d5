"""Retrying temporary failures with tenacity, honouring a server's requested delay.

A :class:`~failover.core.errors.TemporaryError` is retried with exponential backoff and jitter; when
it carries ``delay`` (for example from ``Retry-After``), that delay is used instead, capped by
``max_delay``. A :class:`~failover.core.errors.PermanentError` is never retried.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import tenacity

from failover.core import errors

T = TypeVar("T")


def _wait(base: float, max_delay: float) -> Callable[[tenacity.RetryCallState], float]:
    backoff = tenacity.wait_exponential_jitter(multiplier=base, max=max_delay, jitter=base)

    def wait(state: tenacity.RetryCallState) -> float:
        outcome = state.outcome
        if outcome is not None and outcome.failed:
            exc = outcome.exception()
            if isinstance(exc, errors.TemporaryError) and exc.delay is not None:
                return min(max(exc.delay, 0.0), max_delay)
        return float(backoff(state))

    return wait


async def call(
    fn: Callable[[], Awaitable[T]],
    *,
    attempts: int = 4,
    base_delay: float = 0.2,
    max_delay: float = 10.0,
) -> T:
    """Await ``fn()`` until it succeeds, retrying only :class:`TemporaryError`.

    After ``attempts`` tries the last error is re-raised unchanged.
    """
    retrying = tenacity.AsyncRetrying(
        stop=tenacity.stop_after_attempt(attempts),
        wait=_wait(base_delay, max_delay),
        retry=tenacity.retry_if_exception_type(errors.TemporaryError),
        reraise=True,
    )
    async for attempt in retrying:
        with attempt:
            return await fn()
    raise AssertionError("unreachable: tenacity either returns or re-raises")
