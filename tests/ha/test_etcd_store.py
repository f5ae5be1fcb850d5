"""The etcd store against a real etcd cluster: the Store contract, the lease, the fencing epoch."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from failover.core import errors
from failover.store import RunPhase, StepStatus
from failover.store.etcd import EtcdStore

Open = Callable[..., EtcdStore]


def test_runs_journal_decisions_and_state_round_trip(etcd_store: Open) -> None:
    store = etcd_store()
    run = store.create_run(playbook="failover", kind="failover", params={"to": "b"}, epoch=0,
                           definition={"name": "failover"})
    assert run.id == "1" and store.create_run(playbook="p", kind="k", params={}, epoch=0).id == "2"
    with pytest.raises(errors.PermanentError):
        store.create_run(playbook="p", kind="k", params={}, epoch=0, run_id="1")
    rec = store.record_step_start("1", "fence", step_id="fence", attempt=1)
    store.append_progress(rec.record_id, "scaled 3 workloads")
    end = store.record_step_end(rec.record_id, status=StepStatus.SUCCEEDED, output={"scaled": 3})
    assert end.status is StepStatus.SUCCEEDED and end.progress == ("scaled 3 workloads",) and end.duration is not None
    assert [s.key for s in store.step_records("1")] == ["fence"]
    store.update_run("1", phase=RunPhase.RUNNING)
    assert store.get_run("1").phase is RunPhase.RUNNING  # type: ignore[union-attr]
    assert [r.id for r in store.list_runs(phases=["running"])] == ["1"]
    store.append_decision("a"), store.append_decision("b")
    assert [d.sentence for d in store.decisions(limit=1)] == ["b"]
    assert store.cas_state("active", None, "a") and not store.cas_state("active", None, "b")
    assert store.cas_state("active", "a", "b") and store.get_state("active") == "b"


def test_one_holder_at_a_time_and_the_lease_expires(etcd_store: Open) -> None:
    a, b = etcd_store(), etcd_store()
    assert a.acquire_lease("a", 2) and not b.acquire_lease("b", 2)
    assert b.lease_holder() == "a" and a.renew_lease("a", 2)
    deadline = time.monotonic() + 10
    while not b.acquire_lease("b", 2):  # a stops renewing (it died): its lease expires within the TTL
        assert time.monotonic() < deadline, "the dead holder's lease never expired"
        time.sleep(0.2)
    assert not a.renew_lease("a", 2) and not a.holds_lease()


def test_only_the_holder_raises_the_epoch_and_a_stale_write_is_refused(etcd_store: Open) -> None:
    old, new = etcd_store(), etcd_store()
    assert old.acquire_lease("old", 2)
    e1 = old.bump_epoch()
    run = old.create_run(playbook="failover", kind="failover", params={}, epoch=e1)
    step = old.record_step_start(run.id, "restore[group=1]", step_id="restore", attempt=1)
    old.release_lease("old")  # (as if it expired while old was cut off)
    assert new.acquire_lease("new", 2)
    with pytest.raises(errors.LeaseLostError):
        old.bump_epoch()
    e2 = new.bump_epoch()
    assert e2 == e1 + 1
    new.update_run(run.id, epoch=e2)  # the new leader adopts the run
    with pytest.raises(errors.StaleEpochError, match=f"epoch {e1} refused"):
        old.record_step_end(step.record_id, status=StepStatus.SUCCEEDED, output={"restored": True})
    assert [s.status for s in new.step_records(run.id)] == [StepStatus.RUNNING]  # the late write did not land
    assert new.refusals()[-1]["epoch"] == e1 and new.refusals()[-1]["current"] == e2
    new.record_step_end(step.record_id, status=StepStatus.INTERRUPTED)  # the new leader's write lands


def test_no_quorum_is_a_temporary_error_not_a_hang(etcd_store: Open) -> None:
    store = etcd_store(endpoints=["http://127.0.0.1:9"])  # nothing listens: refused at once
    with pytest.raises(errors.TemporaryError, match="etcd unavailable"):
        store.get_state("x")
    assert store.lease_holder() is None
