"""The quorum of observers: a site is down for the controller only when most live observers say so.

One daemon sees the world from one network position, and "IONOS is down" looks exactly like "my
path to IONOS is down". So every instance probes every site and publishes its verdict per site
with the time it was formed; the leader counts them. The rule (pure, testable without I/O):

* an observer is *live* while its membership key exists (it is on its own short etcd lease);
* a verdict older than ``max_age`` counts as no vote (the observer is live but blind: it blocks
  rather than confirms, so a frozen observer can never tip the balance);
* an outage is **confirmed** when more than half of the live observers, and at least
  ``min_observers`` (2), see the site down. One observer cut off from a site, or from etcd, can
  therefore never trigger anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Vote:
    observer: str
    health: str  #: healthy | degraded | down | unknown | stale
    age_s: float
    reason: str = ""
    since: datetime | None = None  #: when that observer's checks began failing


@dataclass(frozen=True)
class SiteVotes:
    site: str
    votes: tuple[Vote, ...]  #: one per live observer (``stale`` when its verdict is too old or missing)

    @property
    def live(self) -> int:
        return len(self.votes)

    @property
    def down(self) -> tuple[Vote, ...]:
        return tuple(v for v in self.votes if v.health == "down")

    def confirmed(self, min_observers: int) -> bool:
        return len(self.down) >= min_observers and 2 * len(self.down) > self.live

    @property
    def outage_started_at(self) -> datetime | None:
        starts = [v.since for v in self.down if v.since is not None]
        return min(starts) if starts else None

    def text(self) -> str:
        """``ionos-de-fra down for 1 of 3 observers (obs-a down: kube: refused; obs-b healthy; …)``"""
        parts = "; ".join(f"{v.observer} {v.health}" + (f": {v.reason}" if v.reason and v.health != "healthy" else "")
                          for v in self.votes)
        return f"{self.site} down for {len(self.down)} of {self.live} observers ({parts})"


def tally(members: Mapping[str, Any], verdicts: Mapping[str, Any], *, now: datetime,
          max_age: float) -> dict[str, SiteVotes]:
    """Per site, the vote of every live member (see module docstring). ``verdicts`` maps an observer
    to ``{site: {"health", "at", "since", "reason"}}`` as published."""
    sites: dict[str, list[Vote]] = {}
    all_sites = {s for v in verdicts.values() if isinstance(v, dict) for s in v}
    for observer in sorted(members):
        published = verdicts.get(observer)
        mine = published if isinstance(published, dict) else {}
        for site in all_sites:
            sites.setdefault(site, []).append(_vote(observer, mine.get(site), now=now, max_age=max_age))
    return {site: SiteVotes(site, tuple(votes)) for site, votes in sites.items()}


def _vote(observer: str, entry: Any, *, now: datetime, max_age: float) -> Vote:
    if not isinstance(entry, dict) or "at" not in entry:
        return Vote(observer, "stale", float("inf"), "no verdict published")
    at = datetime.fromisoformat(str(entry["at"]))
    age = max(0.0, (now - at).total_seconds())
    if age > max_age:
        return Vote(observer, "stale", age, f"verdict {age:.0f}s old")
    since = datetime.fromisoformat(str(entry["since"])) if entry.get("since") else None
    return Vote(observer, str(entry.get("health", "unknown")), age, str(entry.get("reason", "")), since)
