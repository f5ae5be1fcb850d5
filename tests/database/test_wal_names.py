"""WAL arithmetic and the readiness rule, without a lab: names, positions and reasons."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from failover.config import models
from failover.health.model import Health, SiteView
from failover.pgwal import archive, recovery

T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def test_segment_names_follow_postgres_for_any_segment_size() -> None:
    mib, default = 1 << 20, 16 << 20
    assert recovery.segment_name(1, recovery.parse_lsn("0/8C00000"), mib) == "00000001000000000000008C"
    assert recovery.segment_name(2, recovery.parse_lsn("1/00000028"), mib) == "000000020000000100000000"
    assert recovery.segment_name(1, recovery.parse_lsn("0/3000148"), default) == "000000010000000000000003"
    assert recovery.segment_name(1, recovery.parse_lsn("2/FF000000"), default) == "0000000100000002000000FF"


def profile() -> models.WorkplaceProfile:
    return models.WorkplaceProfile(name="p", components=(models.Component(
        name="postgresql", title="PostgreSQL", group=1, data=("keycloak", models.PostgresData(kind="postgresql"))),))


def test_readiness_names_every_reason() -> None:
    view = SiteView(name="s", role="standby", health=Health.HEALTHY, ready=True)
    seg = archive.Segment("000000010000000000000005", "k", T0)
    cases = {
        "archived WAL not read yet": {},
        "cannot read the WAL archive (boom)": {"opendesk": archive.WalStatus("opendesk", None, T0, error="boom")},
        "no WAL archived to this site": {"opendesk": archive.WalStatus("opendesk", None, T0, backups=1)},
        "newest archived WAL is 90s old (max 60s)": {"opendesk": archive.WalStatus("opendesk", seg, T0, backups=1)},
        "no base backup in this site's repository yet": {"opendesk": archive.WalStatus("opendesk", seg, T0)},
    }
    for reason, statuses in cases.items():
        out = archive.readiness(view, statuses, profile(), max_wal_age=60, now=T0 + timedelta(seconds=90))
        assert not out.ready and any(reason in r for r in out.ready_reasons), (reason, out.ready_reasons)
    fresh = {"opendesk": archive.WalStatus("opendesk", seg, T0, backups=1)}
    assert archive.readiness(view, fresh, profile(), max_wal_age=60, now=T0 + timedelta(seconds=5)).ready
    assert archive.readiness(view, {}, profile(), max_wal_age=None, now=T0).ready  # no bound: no condition
