"""Test actions for the engine tests (registered on import) and the crash hooks of the runner.

``t-echo`` records when it starts and ends (for ordering/parallelism assertions) and can be told to
fail; ``t-effect`` performs an idempotent side effect in a separate SQLite file (unique key from
run id + step key) and can SIGKILL its own process before or after the effect.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from failover.core import errors
from failover.playbook import registry
from failover.playbook.engine import StepContext, StepResult
from failover.playbook.observers import RunObserver
from failover.store import RunRecord, StepRecord


@dataclass
class Services:
    events: list[tuple[str, str, float]] = field(default_factory=list)
    effects_db: Path | None = None
    crash_file: Path | None = None


def svc(ctx: StepContext) -> Services:
    assert isinstance(ctx.services, Services)
    return ctx.services


class EchoParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    value: Any = None
    sleep: float = 0.0
    fail_times: int = 0
    fail_delay: float | None = None
    permanent: bool = False
    boom: str = ""


@registry.action("t-echo", params=EchoParams, timeout=5)
async def echo(ctx: StepContext, p: EchoParams) -> StepResult:
    s = svc(ctx)
    s.events.append((ctx.key, "start", time.monotonic()))
    try:
        ctx.progress(f"echo {ctx.key} attempt {ctx.attempt}")
        await asyncio.sleep(p.sleep)
        if p.boom:
            raise RuntimeError(p.boom)
        if p.permanent:
            raise errors.PermanentError(f"{ctx.key} refuses")
        if ctx.attempt <= p.fail_times:
            raise errors.TemporaryError(f"{ctx.key} not yet", delay=p.fail_delay)
        return {"value": p.value, "key": ctx.key, "attempt": ctx.attempt}
    finally:
        s.events.append((ctx.key, "end", time.monotonic()))


@registry.action("t-read", params=EchoParams, timeout=5, mutating=False)
async def read(ctx: StepContext, p: EchoParams) -> StepResult:
    return {"value": p.value}


class EffectParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    value: Any = None


def effects_db(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(str(path), isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE IF NOT EXISTS effects (key TEXT PRIMARY KEY, token TEXT NOT NULL, input TEXT)")
    db.execute("CREATE TABLE IF NOT EXISTS calls (id INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL)")
    return db


def maybe_crash(services: Services, point: str) -> None:
    """SIGKILL this process the first time it reaches ``point`` (remembered in the crash file)."""
    if services.crash_file is None:
        return
    seen = services.crash_file.read_text().split() if services.crash_file.exists() else []
    if point in seen:
        return
    with services.crash_file.open("a") as f:
        f.write(point + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.kill(os.getpid(), signal.SIGKILL)


@registry.action("t-effect", params=EffectParams, timeout=10)
async def effect(ctx: StepContext, p: EffectParams) -> StepResult:
    s = svc(ctx)
    assert s.effects_db is not None
    db = effects_db(s.effects_db)
    try:
        key = f"{ctx.run_id}/{ctx.key}"
        db.execute("INSERT INTO calls (key) VALUES (?)", (key,))
        maybe_crash(s, f"{ctx.key}:before")
        db.execute("INSERT OR IGNORE INTO effects (key, token, input) VALUES (?, ?, ?)",
                   (key, uuid.uuid4().hex, str(p.value)))
        maybe_crash(s, f"{ctx.key}:after")
        token = db.execute("SELECT token FROM effects WHERE key = ?", (key,)).fetchone()[0]
    finally:
        db.close()
    return {"token": token, "input": p.value}


class CrashAfterJournal(RunObserver):
    def __init__(self, services: Services) -> None:
        self.services = services

    async def step_finished(self, run: RunRecord, step: StepRecord) -> None:
        if str(step.status) == "succeeded":
            maybe_crash(self.services, f"{step.key}:journaled")
