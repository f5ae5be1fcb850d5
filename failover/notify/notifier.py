"""Notifications out: notices about runs, queued in the outbox and delivered in the background.

:class:`Notifier` is a run observer (it never blocks or fails a run: it only writes a file to the
outbox) plus the daemon's hook for decisions that create runs (a failover starting, a run waiting
for approval). :meth:`Notifier.deliver_forever` is the background task that sends what is due,
retrying with exponential backoff; every outcome is counted and the last failures are kept for
``status`` and the page. Which channels: the ones listed for the site the workplace moves away
from (they must not depend on it), else all.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from failover.config.surface import NotificationsConfig
from failover.core import errors, secrets
from failover.notify import channels
from failover.notify.outbox import Delivery, Notice, Outbox
from failover.playbook.observers import RunObserver
from failover.store import RunRecord

logger = logging.getLogger(__name__)

TITLES = {
    "started": "Failover started: {source} -> {target}",
    "approval": "Failover waits for approval: {source} -> {target}",
    "succeeded": "Failover done: workplace now on {target}",
    "failed": "Failover FAILED: {source} -> {target}",
    "cancelled": "Failover cancelled: {source} -> {target}",
}


class Notifier(RunObserver):
    def __init__(self, cfg: NotificationsConfig | None, *, state_dir: Path, store: Any,
                 link: Callable[[str], str | None], clock: Callable[[], datetime],
                 count: Callable[[str, str], None] = lambda channel, outcome: None) -> None:
        self.cfg = cfg or NotificationsConfig()
        self.outbox = Outbox(state_dir / "outbox")
        self.store = store
        self.link = link
        self.clock = clock
        self.count = count
        self.wake = asyncio.Event()

    # --- what to say -----------------------------------------------------------------------------
    def notice(self, run: RunRecord, event: str, *, sentence: str | None = None) -> Notice:
        from failover import daemon as daemon_mod  # the run document lives with the daemon

        doc = daemon_mod.run_document(self.store, str(run.id))
        source, target = doc.get("from"), doc.get("to")
        stamp = re.sub(r"[^0-9]", "", run.created_at.isoformat())[:14]
        return Notice(
            id=f"run{run.id}-{stamp}-{event}", event=f"{run.kind}-{event}",
            title=TITLES.get(event, "{source} -> {target}").format(source=source, target=target),
            sentence=sentence or self.decision_sentence(str(run.id)) or f"{run.kind} run {run.id}: {run.phase}",
            run_id=str(run.id), link=self.link(str(run.id)), source=source, target=target, phase=str(run.phase),
            rto_s=doc.get("rto_s"), rto_from_detection_s=doc.get("rto_from_detection_s"),
            data_loss_window_s=doc.get("data_loss_window_s"), backup=doc.get("backup"),
            error=secrets.redact(str(doc["error"])) if doc.get("error") else None)

    def decision_sentence(self, run_id: str) -> str | None:
        for d in self.store.decisions(limit=200):
            if isinstance(d.payload, dict) and str(d.payload.get("run")) == run_id:
                return str(d.sentence)
        return None

    def enqueue(self, notice: Notice) -> int:
        """Queue ``notice`` for its channels; returns how many deliveries were queued (never raises)."""
        queued = 0
        try:
            for name in self.cfg.for_site(notice.source):
                queued += int(self.outbox.put(Delivery(notice=notice, channel=name)))
        except OSError as exc:  # a full disk must not stop a failover
            logger.warning("cannot queue notice %s: %s", notice.id, exc)
        if queued:
            self.wake.set()
        return queued

    # --- observer hooks ----------------------------------------------------------------------------
    async def run_finished(self, run: RunRecord) -> None:
        self.enqueue(self.notice(run, str(run.phase)))

    def run_created(self, run_id: str, *, approval: bool, sentence: str) -> None:
        run = self.store.get_run(run_id)
        if run is not None:
            self.enqueue(self.notice(run, "approval" if approval else "started", sentence=sentence))

    # --- delivery ------------------------------------------------------------------------------------
    async def deliver_due(self, http: httpx.AsyncClient) -> int:
        """One pass over the outbox; returns how many deliveries succeeded."""
        ok = 0
        for delivery in list(self.outbox.due(self.clock())):
            channel = self.cfg.channels.get(delivery.channel)
            if channel is None:
                self.outbox.retry(delivery, f"channel {delivery.channel!r} is no longer configured",
                                  now=self.clock(), backoff=self.cfg.backoff, attempts=1)
                continue
            sender = channels.sender_for(channel, http=http, timeout=self.cfg.timeout)
            try:
                async with asyncio.timeout(self.cfg.timeout):
                    await sender.send(delivery)
            except (errors.FailoverError, TimeoutError) as exc:
                why = str(exc) or type(exc).__name__
                kept = self.outbox.retry(delivery, why, now=self.clock(), backoff=self.cfg.backoff,
                                         attempts=self.cfg.attempts)
                self.count(delivery.channel, "failed" if kept else "gave_up")
                logger.warning("notice %s via %s failed (attempt %d%s): %s", delivery.notice.id, delivery.channel,
                               delivery.attempts, "" if kept else ", giving up", secrets.redact(why))
                continue
            self.outbox.delivered(delivery)
            self.count(delivery.channel, "delivered")
            logger.info("notice %s delivered via %s", delivery.notice.id, delivery.channel)
            ok += 1
        return ok

    async def deliver_forever(self) -> None:
        async with httpx.AsyncClient(timeout=self.cfg.timeout) as http:
            while True:
                await self.deliver_due(http)
                self.wake.clear()
                try:
                    async with asyncio.timeout(1.0):
                        await self.wake.wait()
                except TimeoutError:
                    pass

    def report(self) -> dict[str, Any]:
        """Pending and given-up deliveries with their last errors (for status and the page)."""
        def row(d: Delivery) -> dict[str, Any]:
            return {"notice": d.notice.id, "channel": d.channel, "attempts": d.attempts, "last_error": d.last_error}

        return {"pending": [row(d) for d in self.outbox.pending()],
                "failed": [row(d) for d in self.outbox.failed()]}
