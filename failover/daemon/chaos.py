"""The chaos hook of the crash tests (off unless ``FAILOVER_CRASH_AFTER_STEPS`` is set)."""

from __future__ import annotations

import logging
import os
import signal
from typing import Any

from failover.playbook.observers import RunObserver

logger = logging.getLogger("failover.daemon")


class CrashAfterSteps(RunObserver):
    """Chaos hook for crash tests: SIGKILL this process right after one of ``keys`` is journaled
    as succeeded (``FAILOVER_CRASH_AFTER_STEPS=fence,select-backup,...``). Off unless set."""

    def __init__(self, keys: set[str]) -> None:
        self.keys = keys

    @classmethod
    def from_env(cls) -> CrashAfterSteps | None:
        raw = os.environ.get("FAILOVER_CRASH_AFTER_STEPS", "")
        keys = {k.strip() for k in raw.split(",") if k.strip()}
        return cls(keys) if keys else None

    async def step_finished(self, run: Any, step: Any) -> None:
        key = str(step.key)
        if str(step.status) == "succeeded" and (key in self.keys or "*" in self.keys):
            logger.warning("chaos hook: killing the daemon after step %s", key)
            os.kill(os.getpid(), signal.SIGKILL)
