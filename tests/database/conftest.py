"""One lab with PostgreSQL for the database tests: a site database per site, pgBackRest archiving
the active site's WAL to every standby's bucket through stunnel in front of each moto_server.
Started once per session (it takes the longest of any lab: three base backups) and torn down."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.e2e.conftest import REPO, Lab

MAX_WAL_AGE = 60.0  # generous: archiving on a loaded 2-core machine lags by tens of seconds


def make_config(tmp: Path) -> Path:
    data = yaml.safe_load((REPO / "config" / "lab.yaml").read_text())
    data["workplace"]["profile"] = str(REPO / "config" / "workplaces" / "opendesk.yaml")
    data["health"].update({"interval": 1.0, "timeout": 5.0, "storage_timeout": 10.0, "fail_after": 3,
                           "recover_after": 2})
    data["lab"].update({"postgres": True, "archive_timeout": 2, "etcd_members": 0, "backup_interval": "@every 5s",
                        "sync_period": 0.5, "ready_delay": 0.3, "restore_item_delay": 0.0, "slow_latency": 3.0})
    # a loaded CI machine takes minutes to detect and decide: the Velero RPO must not expire meanwhile
    data["policy"].update({"cooldown": 300, "max_wal_age": MAX_WAL_AGE, "rpo": 600})
    path = tmp / "lab.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture(scope="session")
def pg_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    tmp = tmp_path_factory.mktemp("pgwal")
    lab = Lab(config=make_config(tmp), state=tmp / "state")
    try:
        lab.cli("lab", "up", "--json", timeout=180)
        yield lab
    finally:
        lab.cli("lab", "down", check=False)
