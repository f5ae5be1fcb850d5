"""Alerts in: Alertmanager's webhook turned into one more signal about a site.

A firing alert labelled ``site=<name>`` becomes a failing check ``alert:<alertname>`` of that
site, so it shows in ``status``, on the page and in the decision's sentence ("ionos-de-fra
degraded (alert:HighErrorRate: 5xx above 5%)"). By itself it never triggers a failover: it is a
non-critical check, which can only make a site ``degraded``. With ``api.alerts_vote`` it counts
as one critical component check — one vote among the workplace's components, which tips a site
to ``down`` only together with failing components of its own.

The alerts are kept in the store (state key ``alerts``), so a restarted daemon still knows them;
an alert is dropped when Alertmanager says it is resolved or when its ``endsAt`` has passed
(Alertmanager re-sends firing alerts with a fresh ``endsAt``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from failover.core import errors
from failover.health import checks
from failover.health.model import CheckKind, CheckResult, Health, SiteView
from failover.store import JSON

STATE_KEY = "alerts"


class _Loose(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Alert(_Loose):
    status: Literal["firing", "resolved"]
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: datetime | None = None  # Alertmanager's field names
    endsAt: datetime | None = None
    fingerprint: str | None = None


class WebhookMessage(_Loose):
    """Alertmanager's webhook payload (``version: "4"``)."""

    version: str = "4"
    status: Literal["firing", "resolved"]
    receiver: str = ""
    alerts: list[Alert]


@dataclasses.dataclass(frozen=True)
class SiteAlert:
    key: str
    site: str
    name: str
    summary: str
    starts_at: datetime | None
    ends_at: datetime | None

    def to_json(self) -> dict[str, JSON]:
        return {"site": self.site, "name": self.name, "summary": self.summary,
                "starts_at": self.starts_at.isoformat() if self.starts_at else None,
                "ends_at": self.ends_at.isoformat() if self.ends_at else None}


def _key(alert: Alert) -> str:
    return alert.fingerprint or "|".join(f"{k}={v}" for k, v in sorted(alert.labels.items()))


def _parse(value: JSON) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


class AlertBook:
    """The firing alerts per site (persisted in the store)."""

    def __init__(self, store: Any, sites: Mapping[str, object], *, vote: bool, fail_after: int,
                 critical_majority: float, clock: Callable[[], datetime]) -> None:
        self.store = store
        self.sites = set(sites)
        self.vote = vote
        self.fail_after = fail_after
        self.critical_majority = critical_majority
        self.clock = clock
        self._last: dict[str, SiteAlert] = {}

    def receive(self, message: WebhookMessage) -> dict[str, int]:
        """Record a webhook; returns how many alerts were taken, resolved, and ignored (no known site)."""
        book = self._load()
        taken = resolved = ignored = 0
        for alert in message.alerts:
            site = alert.labels.get("site")
            key = _key(alert)
            if site not in self.sites:
                ignored += 1
                continue
            if alert.status == "resolved":
                resolved += int(book.pop(key, None) is not None)
                continue
            summary = alert.annotations.get("summary") or alert.annotations.get("description") or ""
            book[key] = SiteAlert(key, site, alert.labels.get("alertname", "alert"), summary[:200],
                                  alert.startsAt, alert.endsAt)
            taken += 1
        self._save(book)
        return {"firing": taken, "resolved": resolved, "ignored": ignored}

    def firing(self) -> list[SiteAlert]:
        now = self.clock()
        return [a for a in self._load().values() if a.ends_at is None or a.ends_at > now or a.ends_at.year < 2]

    def by_site(self) -> dict[str, list[SiteAlert]]:
        out: dict[str, list[SiteAlert]] = {}
        for a in self.firing():
            out.setdefault(a.site, []).append(a)
        return out

    def apply(self, views: dict[str, SiteView]) -> dict[str, SiteView]:
        """The views with each firing alert as one more failing check (health recomputed)."""
        for site, alerts in self.by_site().items():
            view = views.get(site)
            if view is None:
                continue
            extra = tuple(CheckResult(name=f"alert:{a.name}", kind=CheckKind.COMPONENT, passing=False,
                                      detail=a.summary or "firing", consecutive_failures=self.fail_after,
                                      critical=self.vote, failing_since=a.starts_at) for a in alerts)
            results = extra + view.checks  # first: a decision sentence shows the first reasons
            verdict = checks.site_health(results, critical_majority=self.critical_majority)
            health = view.health if view.health is Health.UNKNOWN else verdict.health
            views[site] = dataclasses.replace(
                view, checks=results, health=health, reasons=verdict.reasons,
                outage_started_at=verdict.outage_started_at if health is Health.DOWN else view.outage_started_at,
                down_checks=verdict.down_checks or view.down_checks)
        return views

    # --- persistence -----------------------------------------------------------------------------
    def _load(self) -> dict[str, SiteAlert]:
        try:
            raw = self.store.get_state(STATE_KEY)
        except errors.FailoverError:  # the store cannot answer (etcd): the alerts last read
            return dict(self._last)
        out: dict[str, SiteAlert] = {}
        if isinstance(raw, dict):
            for key, item in raw.items():
                if isinstance(item, dict):
                    out[key] = SiteAlert(key, str(item.get("site")), str(item.get("name")),
                                         str(item.get("summary") or ""), _parse(item.get("starts_at")),
                                         _parse(item.get("ends_at")))
        self._last = out
        return out

    def _save(self, book: dict[str, SiteAlert]) -> None:
        now = self.clock()
        keep: dict[str, JSON] = {k: a.to_json() for k, a in book.items()
                                 if a.ends_at is None or a.ends_at > now or a.ends_at.year < 2}
        self.store.set_state(STATE_KEY, keep)

