"""A daemon on etcd keeps the lease it takes, even when taking office takes longer than the TTL (a
loaded machine): the lease is renewed from the moment it is taken, not from the end of taking
office. Before, the fresh leader's lease expired unrenewed and the lab saw a new leader every few
seconds. A real etcd; taking office is slowed down in the store."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from failover import daemon as daemon_mod
from failover.config import loader, runtime
from failover.core import tasks
from failover.lab.etcd import EtcdCluster
from failover.store.etcd import EtcdStore
from tests.ha.test_alert_vote import write_config

TTL = 2.0


class SlowOffice(EtcdStore):
    """Raising the epoch takes twice the lease TTL (as the rest of a cycle may on a loaded machine)."""

    def bump_epoch(self) -> int:
        time.sleep(2 * TTL)
        return super().bump_epoch()


async def test_a_leader_whose_taking_office_outlasts_the_ttl_keeps_its_lease(
        etcd_cluster: EtcdCluster, prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAILOVER_STATE_DIR", str(tmp_path / "state"))
    path = write_config(tmp_path, etcd_cluster.endpoints, prefix, vote=False)
    path.write_text(path.read_text().replace("lease_ttl: 5", f"lease_ttl: {TTL}"))
    rt = runtime.resolve(loader.load(path))
    store = SlowOffice(etcd_cluster.endpoints, prefix=prefix, timeout=2.0)
    d = daemon_mod.Daemon(rt, store=store, holder="slow-leader")
    other = EtcdStore(etcd_cluster.endpoints, prefix=prefix)
    try:
        await d.guarded_cycle()  # takes the lease, then office (slowly)
        assert d.leading and store.current_epoch() == 1, d.last_cycle_error
        assert other.lease_holder() == "slow-leader" and store.holds_lease()
        assert not other.acquire_lease("usurper", TTL)  # the lease never lapsed
        await d.guarded_cycle()
        assert d.leading and store.current_epoch() == 1  # still the same term: no second taking office
    finally:
        await tasks.cancel_and_wait(*d._tasks)
        await d.close()
        other.close()
