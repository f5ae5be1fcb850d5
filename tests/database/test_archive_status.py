"""Each standby's archived WAL, read from its bucket: shown in ``status`` next to the backup age, and a
readiness condition (``policy.max_wal_age``) that says why a standby is not ready."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from failover import s3
from failover.cli import tables
from failover.health.model import Health, SiteView
from failover.pgwal import watch
from failover.services import utcnow
from tests.database.conftest import MAX_WAL_AGE
from tests.e2e.conftest import Lab, wait_for

STANDBYS = ("stackit-eu01", "otc-eu-de", "scs-pco-prod1")


def ready_view(name: str) -> SiteView:
    return SiteView(name=name, role="standby", health=Health.HEALTHY, ready=True)


async def test_every_standby_holds_fresh_wal_and_status_shows_its_age(pg_lab: Lab) -> None:
    doc = pg_lab.cli("status", "--live", "--json")
    for name in STANDBYS:
        site = doc["sites"][name]
        assert site["wal"]["opendesk"]["newest_segment"], site
        assert site["wal_age_s"] is not None and site["wal_age_s"] < MAX_WAL_AGE, site
        assert "backup_age_s" in site
        assert not any("WAL" in r for r in site["ready_reasons"]), site["ready_reasons"]
    assert "wal_age_s" not in doc["sites"]["ionos-de-fra"]  # the active site archives; it holds no copy
    screen = tables.status_lines(doc, width=160)
    header = next(line for line in screen if line.split()[:2] == ["site", "provider"])
    assert header.split()[5:7] == ["lag", "wal"], header  # the archived-WAL age, beside the replication lag


async def test_a_standby_whose_archived_wal_is_too_old_is_not_ready_and_says_why(pg_lab: Lab) -> None:
    rt = pg_lab.runtime()
    async with s3.ClientPool() as pool:
        now = utcnow()
        later = watch.WalWatcher(rt, pool, clock=lambda: now + timedelta(seconds=MAX_WAL_AGE + 30))
        await later.read_once({n: "standby" for n in STANDBYS})
        views = later.apply({n: ready_view(n) for n in STANDBYS})
    for name in STANDBYS:
        assert not views[name].ready
        assert any("newest archived WAL is" in r and f"(max {MAX_WAL_AGE:.0f}s)" in r
                   for r in views[name].ready_reasons), views[name].ready_reasons


async def test_a_standby_whose_archive_cannot_be_read_is_not_ready(pg_lab: Lab) -> None:
    pg_lab.cli("lab", "break", "otc-eu-de", "--mode", "storage")
    try:
        rt = pg_lab.runtime()
        async with s3.ClientPool() as pool:
            watcher = watch.WalWatcher(rt, pool, clock=utcnow)
            await watcher.read_once({"otc-eu-de": "standby", "stackit-eu01": "standby"})
            views = watcher.apply({"otc-eu-de": ready_view("otc-eu-de"), "stackit-eu01": ready_view("stackit-eu01")})
    finally:
        pg_lab.cli("lab", "heal", "otc-eu-de")
    assert not views["otc-eu-de"].ready
    assert any("cannot read the WAL archive" in r for r in views["otc-eu-de"].ready_reasons)
    assert views["stackit-eu01"].ready, views["stackit-eu01"].ready_reasons

    async def archived_again() -> bool:  # healed: archiving to OTC catches up
        async with s3.ClientPool() as pool:
            w = watch.WalWatcher(rt, pool, clock=utcnow)
            await w.read_once({"otc-eu-de": "standby"})
            return dataclasses.replace(w.apply({"otc-eu-de": ready_view("otc-eu-de")})["otc-eu-de"]).ready

    await wait_for(archived_again, timeout=60, what="OTC's archive readable and fresh after the heal")


async def test_the_age_counts_up_to_the_active_sites_outage_start_not_beyond(pg_lab: Lab) -> None:
    """A lost active site archives nothing more: a standby must not turn unready for that reason."""
    rt = pg_lab.runtime()
    async with s3.ClientPool() as pool:
        now = utcnow()
        later = watch.WalWatcher(rt, pool, clock=lambda: now + timedelta(seconds=MAX_WAL_AGE + 30))
        await later.read_once({"stackit-eu01": "standby"})
        lost_active = SiteView(name="ionos-de-fra", role="active", health=Health.DOWN, outage_started_at=now)
        views = later.apply({"ionos-de-fra": lost_active, "stackit-eu01": ready_view("stackit-eu01")})
    assert views["stackit-eu01"].ready, views["stackit-eu01"].ready_reasons
