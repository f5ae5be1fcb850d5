"""Event-loop lag: how late the watcher's own process runs its timers.

A probe that times out because the *prober* was starved of CPU (an overloaded host, a stalled
event loop) says nothing about the site. An overloaded daemon must never look like an outage, so
a failed sample taken while the loop lagged by more than a share of the probe's timeout is
discarded as "no verdict" instead of being counted against the site.
"""

from __future__ import annotations

import asyncio
from collections import deque


class LoopLag:
    """Ticks every ``tick`` seconds and remembers how late each tick fired (``keep`` seconds)."""

    def __init__(self, *, tick: float = 0.05, keep: float = 30.0) -> None:
        self.tick = tick
        self.keep = keep
        self._samples: deque[tuple[float, float]] = deque()
        self._expected: float | None = None

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._expected = loop.time() + self.tick
            await asyncio.sleep(self.tick)
            now = loop.time()
            self._samples.append((now, max(0.0, now - self._expected)))
            while self._samples and self._samples[0][0] < now - self.keep:
                self._samples.popleft()

    def worst_since(self, since: float) -> float:
        """The largest lag seen from ``since`` (loop time) until now, the pending tick included."""
        worst = max((lag for at, lag in self._samples if at >= since), default=0.0)
        if self._expected is not None:
            worst = max(worst, asyncio.get_running_loop().time() - self._expected)
        return worst

    def percentile(self, q: float) -> float:
        lags = sorted(lag for _, lag in self._samples)
        return lags[min(len(lags) - 1, int(q * len(lags)))] if lags else 0.0
