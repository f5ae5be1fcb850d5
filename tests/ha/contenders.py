"""A light HA harness on a real etcd cluster: daemon-like contenders and a fake world.

Each :class:`Contender` does what a daemon instance does for leadership — renew or acquire the
etcd lease every tick, take office (raise the epoch by CAS, adopt the unfinished run), execute
the run with the real playbook :class:`~failover.playbook.engine.Engine` while it can prove its
lease, and cancel it the moment it cannot — but instead of probing sites it shares one scripted
failover run, and instead of clouds it writes to a :class:`World` that, like a real cloud API,
does **not** check epochs: it only records who wrote what, when, under which epoch. So a write
by a deposed leader after a newer epoch was established shows up as a *double actor*.

Every contender reaches each etcd member through its own :class:`~failover.lab.proxy.FaultProxy`,
so a test can cut one contender off etcd (a partition) without touching the others. The proxies
run on their own event loop in a thread (:class:`ProxyThread`): the store's calls are synchronous
and would otherwise block the very loop that must forward them. Used by
``tests/ha/test_partitions.py`` and ``bench/partitions.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict

from failover.core import errors, tasks
from failover.ha import coordinator
from failover.lab.etcd import EtcdCluster
from failover.lab.proxy import FaultProxy, ProxyMode
from failover.playbook import registry
from failover.playbook.engine import Engine, StepContext, StepResult
from failover.playbook.model import Playbook, Stage, Step
from failover.store import RunPhase
from failover.store.etcd import EtcdStore

logger = logging.getLogger("tests.ha.contenders")
T = TypeVar("T")

STEPS = ("fence", "restore-0", "restore-1", "restore-2", "restore-3", "scale", "dns-switch", "mark-active")


class ProxyThread:
    """An event loop in a daemon thread that hosts fault proxies."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="proxies", daemon=True)
        self.thread.start()

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=10)

    def proxy(self, **kw: Any) -> FaultProxy:
        async def make() -> FaultProxy:
            p = FaultProxy(**kw)
            await p.start()
            return p
        return self.call(make())

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)


@dataclass(frozen=True)
class Write:
    at: float
    actor: str
    epoch: int
    key: str
    first: bool  #: the effect did not exist before (False: an idempotent repeat)


@dataclass
class World:
    """The clouds, as far as a failover is concerned: idempotent effects keyed by run and step."""

    writes: list[Write] = field(default_factory=list)
    effects: dict[str, str] = field(default_factory=dict)

    def apply(self, actor: str, epoch: int, key: str) -> None:
        first = key not in self.effects
        self.effects.setdefault(key, actor)
        self.writes.append(Write(time.monotonic(), actor, epoch, key, first))


@dataclass
class Services:
    world: World
    actor: str
    delay: tuple[float, float] = (0.02, 0.12)


class EffectParams(BaseModel):
    model_config = ConfigDict(extra="forbid")


@registry.action("ha-effect", params=EffectParams, timeout=10)
async def effect(ctx: StepContext, p: EffectParams) -> StepResult:
    """A cloud call: some latency, then one idempotent write carrying the run's epoch."""
    s: Services = ctx.services
    await asyncio.sleep(random.uniform(*s.delay))
    s.world.apply(s.actor, ctx.epoch, f"{ctx.run_id}/{ctx.key}")
    await asyncio.sleep(random.uniform(*s.delay))
    return {"by": s.actor}


def playbook() -> Playbook:
    return Playbook(name="failover", description="harness", params={},
                    stages=tuple(Stage(name=k, steps=(Step(id=k, uses="ha-effect", retries=3),)) for k in STEPS))


@dataclass
class Office:
    actor: str
    epoch: int
    at: float


class Contender:
    """A daemon-like instance (see module docstring). ``start_run``: the first leader creates the run."""

    def __init__(self, name: str, cluster: EtcdCluster, *, prefix: str, world: World, offices: list[Office],
                 proxies: ProxyThread, ttl: float = 2.0, tick: float = 0.2) -> None:
        self.name = name
        self.thread = proxies
        self.proxies = {m.name: proxies.proxy(target_host=m.host, target_port=m.client_port, name=f"{name}->{m.name}")
                        for m in cluster.members}
        self.prefix, self.world, self.offices, self.ttl, self.tick = prefix, world, offices, ttl, tick
        self.store: EtcdStore | None = None
        self.leading = False
        self._run: asyncio.Task[Any] | None = None
        self._loop: asyncio.Task[Any] | None = None
        self._watch: asyncio.Task[Any] | None = None

    async def start(self) -> None:
        # all contenders share one event loop here (a daemon has its own process): short blocking
        self.store = EtcdStore([p.url for p in self.proxies.values()], prefix=self.prefix, timeout=0.5,
                               retry_for=0.6, cooldown=1.0)
        self._loop = tasks.create_guarded_task(self._run_loop(), name=f"contender {self.name}")

    async def partition(self, cut: bool = True) -> None:
        for p in self.proxies.values():
            self.thread.call(p.set_mode(ProxyMode.DOWN if cut else ProxyMode.PASS))

    async def kill(self) -> None:
        """As kill -9: everything stops at once, nothing is released (the lease must expire)."""
        to_stop = [t for t in (self._loop, self._run, self._watch) if t is not None]
        await tasks.cancel_and_wait(*to_stop)
        self.leading = False

    async def close(self) -> None:
        await self.kill()
        for p in self.proxies.values():
            self.thread.call(p.close())
        if self.store is not None:
            self.store.close()

    async def _run_loop(self) -> None:
        assert self.store is not None
        store = self.store
        engine = Engine(store=store, services=Services(self.world, self.name), holder=self.name,
                        retry_base_delay=0.05, retry_max_delay=0.2)
        while True:
            try:
                leading = store.renew_lease(self.name, self.ttl) or store.acquire_lease(self.name, self.ttl)
            except errors.TemporaryError:
                leading = store.holds_lease()
            if not leading or not store.holds_lease():
                if self._run is not None:
                    await tasks.cancel_and_wait(self._run)
                    self._run = None
                if self.leading:
                    logger.info("%s stands down", self.name)
                self.leading = False
                with contextlib.suppress(errors.FailoverError):
                    if store.lease_holder() not in (None, self.name):
                        store.stand_down()
            else:
                with contextlib.suppress(errors.FailoverError):
                    self._lead(store, engine)
            await asyncio.sleep(self.tick)

    def _lead(self, store: EtcdStore, engine: Engine) -> None:
        if not self.leading:
            coordinator.take_office(store, self.name)
            self.offices.append(Office(self.name, int(store.fence or 0), time.monotonic()))
            self.leading = True
        if self._run is not None and not self._run.done():
            return
        runs = store.list_runs(limit=5)
        pending = [r for r in runs if not r.phase.terminal]
        if not runs:
            run = store.create_run(playbook="failover", kind="failover", params={}, epoch=int(store.fence or 0),
                                   definition=playbook().to_json(), run_id="1")
            pending = [run]
        if pending:
            self._run = tasks.create_guarded_task(engine.execute(pending[0].id), name=f"{self.name} run")
            self._watch = tasks.create_guarded_task(self._lease_watch(store), name=f"{self.name} lease watch")

    async def _lease_watch(self, store: EtcdStore) -> None:
        while self._run is not None and not self._run.done():
            if not store.holds_lease():
                await tasks.cancel_and_wait(self._run)
                return
            await asyncio.sleep(0.05)


def double_actors(world: World, offices: list[Office]) -> list[Write]:
    """Writes made under an epoch after a newer epoch had taken office."""
    out = []
    for w in world.writes:
        if any(o.epoch > w.epoch and o.at < w.at for o in offices):
            out.append(w)
    return out


def run_succeeded_once(store: EtcdStore) -> bool:
    runs = store.list_runs(limit=10)
    if len(runs) != 1 or runs[0].phase is not RunPhase.SUCCEEDED:
        return False
    done = [s.key for s in store.step_records(runs[0].id) if s.status.value == "succeeded"]
    return sorted(done) == sorted(STEPS)
