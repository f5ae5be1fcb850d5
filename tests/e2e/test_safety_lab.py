"""Issue 13's adversarial scenarios, replayed in the lab: each must now end safely.

Two labs, each proving several defects fixed (a lab start is the expensive part):

1. refusals, the down rule, the fence and the lease: a failover to the active site is refused by
   ``run`` and ``plan``, and to a standby without a replicated backup; two daemon processes on one
   state dir (no ``--name``) and the active site's Kubernetes API cut off while its ingress serves:
   no failover; then the site goes down for users: exactly one run, its fence journaled
   ``unconfirmed`` (never succeeded), DNS on the new site, the re-fencer confirms the fence later,
   and a fenced site is refused as a target;
2. corrupt backups: every replicated backup on the preferred standby has a truncated tarball, and
   on the next standby the newest backup's metadata is garbage (after the daemon cached it) and the
   second newest is a gzip of garbage: the first run fails at select-backup and marks the bad ones,
   the daemon backs off (no run storm), and the second run restores an older good backup on the
   next standby.
"""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from failover import daemon as daemon_mod
from failover import identity, s3
from failover.velero import bucket, layout, verify
from tests.e2e.conftest import LAB_OPERATOR, LAB_OPERATOR_ENV, Lab, make_config, newest_run, wait_for
from tests.e2e.test_failover_lab import ACTIVE, assert_served_by, finished_run

pytestmark = pytest.mark.timeout(1800)  # a hang guard; ~2 min each on a quiet machine

#: probe margins for a machine shared by many test suites: the scenarios are about the rules, and a
#: probe that times out on a loaded CPU must not look like the outage under test
HEALTH = {"interval": 2.0, "timeout": 5.0, "storage_timeout": 20.0}


@pytest.fixture
def safety_lab(tmp_path: Path) -> Iterator[Callable[..., Lab]]:
    started: list[Lab] = []

    def start(**policy: Any) -> Lab:
        config = make_config(tmp_path, rpo=900, **policy)
        data = yaml.safe_load(config.read_text())
        data["health"].update(HEALTH)
        config.write_text(yaml.safe_dump(data, sort_keys=False))
        lab = Lab(config=config, state=tmp_path / "state")
        lab.cli("lab", "up", "--json", timeout=300)
        started.append(lab)
        return lab

    yield start
    for lab in started:
        lab.cli("lab", "down", check=False)




def start_daemon(lab: Lab, log: Path) -> subprocess.Popen[bytes]:
    env = lab.env()
    env.pop("FAILOVER_NODE", None)  # no --name, no node name: the situation of defect 5
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "failover.cli", "--config", str(lab.config), "daemon"],
                                env=env, stdout=out, stderr=out)


def status_doc(lab: Lab) -> dict[str, Any] | None:
    doc = daemon_mod.open_store(lab.runtime()).get_state("status")
    return doc if isinstance(doc, dict) else None


async def test_refusals_api_only_outage_two_daemons_and_unconfirmed_fence(safety_lab: Callable[..., Lab],
                                                                          tmp_path: Path) -> None:
    lab = safety_lab()
    # defect 1: no daemon; a failover to the active site is refused by run and plan, changing nothing
    refused = lab.cli("run", "failover", "--to", ACTIVE, check=False)
    assert refused["rc"] == 1 and f"refused: {ACTIVE} is the active site" in refused["err"], refused
    plan = lab.cli("plan", "failover", "--to", ACTIVE, "--json", check=False)
    assert plan["changes_made"] is False and any("is the active site" in r for r in plan["would_refuse"]), plan
    text_plan = lab.cli("plan", "switchover", "--to", ACTIVE, check=False)
    assert text_plan["rc"] == 1 and "would refuse" in text_plan["out"], text_plan
    early = lab.cli("run", "failover", "--to", "stackit-eu01", check=False)  # nothing replicated yet
    assert early["rc"] == 1 and "stackit-eu01: not ready" in early["err"], early
    forced = lab.cli("run", "failover", "--to", ACTIVE, "--force", check=False)
    assert forced["rc"] == 2 and "--reason" in forced["err"], forced
    forced = lab.cli("run", "failover", "--to", ACTIVE, "--force", "--reason", "drill", "--as", LAB_OPERATOR,
                     check=False, extra_env=LAB_OPERATOR_ENV)
    assert forced["rc"] == 1 and "no override lifts this refusal" in forced["err"], forced  # never the active site
    store = daemon_mod.open_store(lab.runtime())
    assert store.list_runs(limit=5) == [] and daemon_mod.active_of(store, lab.runtime().config) == ACTIVE

    # defect 5: two daemons on one state dir, no names
    procs = [start_daemon(lab, tmp_path / f"daemon-{i}.log") for i in range(2)]
    try:
        def stackit_ready() -> bool:
            doc = status_doc(lab)
            return bool(doc and doc["sites"]["stackit-eu01"]["ready"])

        await wait_for(stackit_ready, timeout=300, what="stackit-eu01 ready in the daemons' status")
        holder = store.lease_holder()
        assert holder is not None and identity.parse(holder) is not None, holder
        assert identity.parse(holder)[1] in {p.pid for p in procs}  # type: ignore[index]

        # defect 4: the kube API is lost, users are still served: degraded, never a failover
        lab.cli("lab", "break", ACTIVE, "--mode", "api-only")

        def degraded_by_kube() -> bool:
            sentences = [d.sentence for d in store.decisions(limit=200)]
            return any(s.startswith(f"{ACTIVE} degraded (") and "kube" in s for s in sentences)

        await wait_for(degraded_by_kube, timeout=120, what="the daemon's verdict: degraded (kube …)")
        await assert_served_by(lab, ACTIVE, timeout=20)  # users get their apps from the active site
        first = (status_doc(lab) or {}).get("updated_at")
        for _ in range(5):  # five more controller cycles with the API down
            seen = (status_doc(lab) or {}).get("updated_at")
            await wait_for(lambda seen=seen: (status_doc(lab) or {}).get("updated_at") != seen, timeout=60,
                           what="the next controller cycle")
        assert (status_doc(lab) or {}).get("updated_at") != first
        doc = status_doc(lab) or {}
        assert doc["sites"][ACTIVE]["health"] == "degraded", doc["sites"][ACTIVE]
        assert store.list_runs(limit=5) == [], "no failover while users reach the active site"
        await assert_served_by(lab, ACTIVE, timeout=20)

        # the site is lost for users too: exactly one run by the two daemons
        lab.cli("lab", "break", ACTIVE, "--mode", "down")

        async def done() -> Any:
            runs = store.list_runs(limit=5)
            return runs if runs and str(runs[0].phase) in daemon_mod.TERMINAL else None

        runs = await wait_for(done, timeout=400, what="a finished failover run")
        assert len(runs) == 1, [str(r.id) for r in runs]
        run = daemon_mod.run_document(store, str(runs[0].id))
        assert run["phase"] == "succeeded" and run["to"] == "stackit-eu01", run
        fence = [s for s in run["steps"] if s["key"] == "fence"]
        assert [s["status"] for s in fence] == ["unconfirmed"], fence
        assert fence[0]["output"]["confirmed"] is False and fence[0]["output"]["users_reach_site"] is False
        assert "not confirmed" in fence[0]["error"]
        await assert_served_by(lab, "stackit-eu01", timeout=20)  # every name answers the new site only
        sentences = [d.sentence for d in store.decisions(limit=300)]
        assert any("holds the lease; standing by" in s for s in sentences), sentences[:20]  # names the holder

        # the old site's API comes back: the re-fencer reaches it and confirms the fence
        lab.cli("lab", "heal", ACTIVE)

        def confirmed() -> bool:
            return any(d.sentence.startswith(f"re-fencer: {ACTIVE} reached") for d in store.decisions(limit=50))

        await wait_for(confirmed, timeout=300, what="the re-fencer's confirmation")
        plan = lab.cli("plan", "failover", "--to", ACTIVE, "--json", check=False)
        assert any("fenced" in r for r in plan["would_refuse"]), plan
        assert len(store.list_runs(limit=5)) == 1
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def _replicated(loc: s3.S3Location) -> list[str]:
    """Backups on a standby, newest first."""
    infos = [i for i in await bucket.backup_infos(loc) if i.completion_timestamp is not None]
    return [i.name for i in sorted(infos, key=lambda i: i.completion_timestamp or 0, reverse=True)]  # type: ignore[arg-type, return-value]


async def _put(loc: s3.S3Location, key: str, data: bytes) -> None:
    async with s3.open_client(loc) as client:
        await s3.put_bytes(client, loc, key, data)


async def test_corrupt_backups_fall_back_without_a_run_storm(safety_lab: Callable[..., Lab],
                                                             running_daemon: Any) -> None:
    lab = safety_lab(failed_run_backoff=2, max_failed_runs=3)
    d = running_daemon(lab)
    rt = lab.runtime()
    stackit, otc = rt.sites["stackit-eu01"].storage, rt.sites["otc-eu-de"].storage
    assert stackit is not None and otc is not None

    async def three_each() -> bool:
        views = d.watcher.views()
        return views["otc-eu-de"].ready and len(await _replicated(otc)) >= 3 and len(await _replicated(stackit)) >= 1

    await wait_for(three_each, timeout=400, what="three backups replicated to otc, one to stackit")
    lab.cli("lab", "break", ACTIVE, "--mode", "storage")  # replication stops: the buckets hold still
    await wait_for(lambda: all(lag.error for lag in d.lags.values()), timeout=200, what="replication to stop")

    for name in await _replicated(stackit):  # truncated after replication
        key = layout.backup_tarball(stackit.prefix, name)
        async with s3.open_client(stackit) as client:
            data = await s3.get_bytes(client, stackit, key)
        await _put(stackit, key, data[: len(data) // 3])
    newest, second, *older = await _replicated(otc)
    assert d.watcher.views()["otc-eu-de"].newest_backup.name == newest  # type: ignore[union-attr]  # cached
    await _put(otc, layout.backup_metadata(otc.prefix, newest), b'{"kind": "Backup", garbage')
    await _put(otc, layout.backup_tarball(otc.prefix, second), gzip.compress(os.urandom(2048)))

    lab.cli("lab", "break", ACTIVE, "--mode", "down")

    async def two_runs_done() -> Any:
        runs = d.store.list_runs(limit=10)
        return runs if len(runs) >= 2 and str(runs[0].phase) in daemon_mod.TERMINAL else None

    runs = await wait_for(two_runs_done, timeout=500, what="a failed run, then a second one")
    first, last = (daemon_mod.run_document(d.store, str(r.id)) for r in reversed(runs[:2]))
    assert first["phase"] == "failed" and first["to"] == "stackit-eu01", first
    assert "select-backup" in str(first["error"]), first["error"]
    assert last["phase"] == "succeeded" and last["to"] == "otc-eu-de", last
    assert last["backup"] in older, (last["backup"], newest, second)
    select = next(s for s in last["steps"] if s["key"] == "select-backup" and s["status"] == "succeeded")
    assert any(sk["backup"] == second for sk in select["output"]["skipped"]), select["output"]
    bad = verify.bad_backups(d.store, "stackit-eu01")
    assert bad and all("differs from what the source recorded" in why for why in bad.values()), bad
    assert second in verify.bad_backups(d.store, "otc-eu-de")
    gap = (runs[0].created_at - runs[1].finished_at).total_seconds()
    assert gap >= 2, f"the second run started {gap:.1f}s after the first failed, within the back-off"
    assert len(d.store.list_runs(limit=10)) == 2, "no run storm"
    await assert_served_by(lab, "otc-eu-de", timeout=20)
    assert newest_run(d) is not None and daemon_mod.active_of(d.store, d.cfg) == "otc-eu-de"
    await finished_run(d)
