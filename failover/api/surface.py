"""The daemon's operations surface in one object: API server, metrics, alerts in, notifications out.

The daemon calls four small hooks (so its own code stays about watching and deciding):
``adjust(views)`` adds firing alerts to the snapshot's site views, ``after_cycle`` feeds the
metrics and queues notices for runs a decision just created, the :class:`Notifier` watches runs
as an engine observer, and ``start(supervisor)`` adds the HTTP server and the notification
delivery to the daemon's supervised tasks (their restarts show in ``failover_task_restarts_total``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import TYPE_CHECKING, Any

from failover.api import alerts as alerts_mod
from failover.api import auth
from failover.core import errors, tasks
from failover.health.model import SiteView
from failover.metrics import Metrics
from failover.notify.notifier import Notifier

if TYPE_CHECKING:
    from failover import controller
    from failover.daemon import CycleResult, Daemon

logger = logging.getLogger(__name__)

class Surface:
    def __init__(self, daemon: Daemon) -> None:
        cfg = daemon.cfg
        self.daemon = daemon
        self.store = daemon.store
        self.api_cfg = cfg.api
        clock = daemon.services.clock
        self.metrics = Metrics(store=daemon.store, clock=clock)
        self.alerts = alerts_mod.AlertBook(daemon.store, {s.name: s for s in cfg.sites},
                                           vote=bool(cfg.api and cfg.api.alerts_vote),
                                           fail_after=cfg.health.fail_after,
                                           critical_majority=cfg.health.critical_majority, clock=clock)
        self.url: str | None = None
        self.notifier = Notifier(cfg.notifications, state_dir=daemon.runtime.state_dir, store=daemon.store,
                                 link=self.link, clock=clock,
                                 count=lambda ch, outcome: self.metrics.notifications.labels(ch, outcome).inc())
        daemon.engine.observers.append(self.notifier)
        daemon.watcher.on_sample = self.metrics.observe_probe
        self.metrics.outbox_pending = lambda: len(self.notifier.outbox.pending())
        self.metrics.alerts_firing = lambda: {s: len(a) for s, a in self.alerts.by_site().items()}
        self.metrics.task_restarts = lambda: {n: int(t["restarts"]) for n, t in daemon.supervisor.snapshot().items()}
        self.last_cycle: float | None = None
        self.sentence = ""  #: this cycle's decision (the journal keeps it only when it changes)
        self._auth: auth.Authenticator | None = None

    # --- hooks called by the daemon ------------------------------------------------------------------
    def adjust(self, views: dict[str, SiteView]) -> dict[str, SiteView]:
        return self.alerts.apply(views)

    def after_cycle(self, snap: controller.Snapshot, result: CycleResult) -> None:
        self.last_cycle = time.monotonic()
        self.sentence = result.sentence
        self.metrics.observe_cycle(snap, result.decision)
        if result.run_id is not None and result.decision.acts:
            approval = result.decision.verdict.value == "request-approval"
            try:
                self.notifier.run_created(result.run_id, approval=approval, sentence=result.sentence)
            except errors.FailoverError as exc:  # a notice must never cost a cycle
                logger.warning("cannot queue the notice for run %s: %s", result.run_id, exc)

    # --- helpers for the handlers ----------------------------------------------------------------
    def link(self, run_id: str) -> str | None:
        base = (self.api_cfg.public_url if self.api_cfg and self.api_cfg.public_url else self.url)
        return f"{base.rstrip('/')}/runs/{run_id}" if base else None

    @property
    def authenticator(self) -> auth.Authenticator:
        if self._auth is None:
            tokens = self.api_cfg.tokens if self.api_cfg else ()
            self._auth = auth.TokenAuthenticator.from_config(tokens)
        return self._auth

    def ready(self) -> bool:
        interval = self.daemon.cfg.health.interval
        return self.last_cycle is not None and time.monotonic() - self.last_cycle < max(10.0, interval * 5)

    def status(self) -> dict[str, Any]:
        """The ``status --json`` document, with the current run, alerts and notification failures."""
        from failover import daemon as daemon_mod

        stored = self.store.get_state("status")
        doc: dict[str, Any] = dict(stored) if isinstance(stored, dict) else {"active": None, "sites": {}}
        run = daemon_mod.current_run(self.store)
        step = self.daemon._current_step(str(run.id)) if run is not None else None
        doc["run"] = None if run is None else {"id": str(run.id), "playbook": run.playbook,
                                               "phase": str(run.phase), "step": step}
        doc["paused"] = bool(self.store.get_state("paused"))
        doc["decision"] = self.sentence or None
        doc["alerts"] = [a.to_json() for a in self.alerts.firing()]
        doc["notifications"] = self.notifier.report()
        return doc

    # --- the supervised tasks ---------------------------------------------------------------------------
    def start(self, supervisor: tasks.Supervisor) -> None:
        """Start the notification delivery and (when configured) the API server as supervised tasks."""
        supervisor.supervise("notification delivery", self.notifier.deliver_forever)
        if self.api_cfg is not None:
            supervisor.supervise("api server", self._serve_api)

    async def _serve_api(self) -> None:
        from failover.api import server

        assert self.api_cfg is not None
        self._auth = auth.TokenAuthenticator.from_config(self.api_cfg.tokens)  # read the secrets once, now
        runner, url = await server.start(self, self.api_cfg)
        self.url = url
        info = self.daemon.runtime.state_dir / "api.json"
        info.write_text(json.dumps({"url": url}), encoding="utf-8")
        logger.info("API, metrics and status page at %s", url)
        try:
            await asyncio.Event().wait()
        finally:
            info.unlink(missing_ok=True)
            await runner.cleanup()
