"""The persistent outbox: one file per (notice, channel) delivery in the state directory.

A notice is written here before anything is sent, so a daemon killed at any point re-sends what
was not confirmed delivered after its restart (at-least-once). Each file is replaced atomically
(write to a temp file, ``os.replace``); a delivered one is deleted; one that ran out of attempts
moves to ``failed/`` and stays there for the operator (and the status page) to see.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from failover.core import secrets


@dataclass(frozen=True)
class Notice:
    """What a notification says: the event, the decision's sentence, the run's link and figures."""

    id: str  #: stable: the same event gives the same id (receivers may de-duplicate on it)
    event: str  #: failover-succeeded, failover-failed, approval-needed, …
    title: str
    sentence: str  #: the controller's decision sentence behind the run
    run_id: str | None = None
    link: str | None = None
    source: str | None = None
    target: str | None = None
    phase: str | None = None
    rto_s: float | None = None
    rto_from_detection_s: float | None = None
    data_loss_window_s: float | None = None
    backup: str | None = None
    error: str | None = None

    def text(self) -> str:
        """The plain-text body (Matrix ``body``, e-mail body)."""
        lines = [self.title, "", self.sentence]
        if self.rto_s is not None:
            lines.append(f"RTO: {self.rto_s:.1f} s from the outage start"
                         + (f" ({self.rto_from_detection_s:.1f} s from detection)"
                            if self.rto_from_detection_s is not None else ""))
        if self.data_loss_window_s is not None:
            lines.append(f"Data-loss window: {self.data_loss_window_s:.1f} s (restored backup {self.backup})")
        if self.error:
            lines.append(f"Error: {self.error}")
        if self.link:
            lines.append(f"Run: {self.link}")
        return secrets.redact("\n".join(lines))


@dataclass
class Delivery:
    notice: Notice
    channel: str
    attempts: int = 0
    next_at: str = ""  #: ISO time of the next attempt ("" = now)
    last_error: str = ""
    history: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.notice.id}--{self.channel}"


class Outbox:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.failed_dir = directory / "failed"

    def put(self, delivery: Delivery) -> bool:
        """Queue a delivery unless the same (notice, channel) is queued or gave up already."""
        path = self._path(delivery.key)
        if path.exists() or (self.failed_dir / path.name).exists():
            return False
        self._write(path, delivery)
        return True

    def due(self, now: datetime) -> Iterator[Delivery]:
        for path in sorted(self.dir.glob("*.json")):
            d = self._read(path)
            if d is not None and (not d.next_at or datetime.fromisoformat(d.next_at) <= now):
                yield d

    def pending(self) -> list[Delivery]:
        return [d for p in sorted(self.dir.glob("*.json")) if (d := self._read(p)) is not None]

    def failed(self) -> list[Delivery]:
        return [d for p in sorted(self.failed_dir.glob("*.json")) if (d := self._read(p)) is not None]

    def delivered(self, delivery: Delivery) -> None:
        self._path(delivery.key).unlink(missing_ok=True)

    def retry(self, delivery: Delivery, error: str, *, now: datetime, backoff: float, attempts: int) -> bool:
        """Record a failed attempt; returns False when the delivery was given up (moved to failed/)."""
        delivery.attempts += 1
        delivery.last_error = secrets.redact(error)[:300]
        delivery.history = [*delivery.history[-4:], f"{now.isoformat()} {delivery.last_error}"]
        delay = min(300.0, backoff * 2 ** (delivery.attempts - 1))
        delivery.next_at = (now + timedelta(seconds=delay)).isoformat()
        if delivery.attempts >= attempts:
            self.failed_dir.mkdir(parents=True, exist_ok=True)
            self._write(self.failed_dir / f"{delivery.key}.json", delivery)
            self.delivered(delivery)
            return False
        self._write(self._path(delivery.key), delivery)
        return True

    # --- files -----------------------------------------------------------------------------------
    def _path(self, key: str) -> Path:
        return self.dir / f"{key}.json"

    def _write(self, path: Path, delivery: Delivery) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(delivery)), encoding="utf-8")
        os.replace(tmp, path)

    @staticmethod
    def _read(path: Path) -> Delivery | None:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            notice = Notice(**raw.pop("notice"))
            return Delivery(notice=notice, **raw)
        except (OSError, ValueError, TypeError, KeyError):
            return None  # a half-written file (it is replaced atomically, so: a foreign one)
