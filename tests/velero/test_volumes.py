"""Volumes cross providers: file-system backup into kopia, replication packs-first, restore on the target."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path
from typing import Any

from failover import replicate, s3
from failover.core import errors
from failover.lab.kube import types as kt
from failover.lab.kube.store import MemoryStore
from failover.lab.motoserver import MotoServer
from failover.lab.velero_controller import VeleroController
from failover.lab.volumes import VolumeStore
from failover.velero import kopia, kopia_sync, kopia_volumes
from tests.velero.conftest import fresh_locations
from tests.velero.test_controller import NS, TERMINAL, add_bsl, ensure_ns, phase_of, velero_obj, wait_for
from tests.velero.test_replicate_stream import ROOT, child_args

LABELS = {"app": "files"}


class VolumeSite:
    def __init__(self, loc: s3.S3Location, root: Path, *, mode: str) -> None:
        self.loc, self.store, self.volumes = loc, MemoryStore(), VolumeStore(root).reset()
        ensure_ns(self.store, NS)
        add_bsl(self.store, loc, mode=mode)
        self.controller = VeleroController(self.store, locations={"default": loc}, sync_period=0.1,
                                           volumes=self.volumes)

    async def run_to_end(self, rt: kt.ResourceType, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        self.store.create(rt, velero_obj(rt.kind, name, spec))
        done: dict[str, Any] = await wait_for(lambda: phase_of(self.store, rt, name, TERMINAL))
        return done


def seed_claim(store: MemoryStore) -> None:
    ensure_ns(store, "prod")
    store.create(kt.PVCS, {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                           "metadata": {"name": "files-data", "namespace": "prod", "labels": LABELS},
                           "spec": {"accessModes": ["ReadWriteOnce"]}})
    store.create(kt.PODS, {"apiVersion": "v1", "kind": "Pod",
                           "metadata": {"name": "files-0", "namespace": "prod", "labels": LABELS}, "spec": {}})


async def test_volume_files_are_backed_up_replicated_and_restored_on_another_provider(
        moto_pair: tuple[MotoServer, MotoServer], tmp_path: Path) -> None:
    src, dst = await fresh_locations(moto_pair, dst_prefix="")
    a = VolumeSite(src, tmp_path / "a", mode="ReadWrite")
    seed_claim(a.store)
    for i in range(5):
        a.volumes.write_file("prod", "files-data", f"u-{i}", f"file {i}".encode())
    await a.controller.start()
    try:
        first = await a.run_to_end(kt.VELERO_BACKUPS, "b1", {"includedNamespaces": ["prod"]})
        a.volumes.write_file("prod", "files-data", "u-5", b"written after b1")
        second = await a.run_to_end(kt.VELERO_BACKUPS, "b2", {"includedNamespaces": ["prod"]})
    finally:
        await a.controller.stop()
    assert first["status"]["phase"] == second["status"]["phase"] == "Completed"
    [pvb] = await kopia_volumes.read(src, "b2")
    assert (pvb.namespace, pvb.pod, pvb.claim, pvb.phase) == ("prod", "files-0", "files-data", "Completed")
    async with s3.ClientPool() as pool:
        repo = kopia.Repository(await pool.client(src), src, "prod")
        names = [b.key.rsplit("/", 1)[-1] for b in await repo.blobs()]
        assert {kopia.FORMAT_BLOB, kopia.UDMREPO_BLOB} <= set(names)
        assert sum(n.startswith("xn") for n in names) == 2  # one index per backup
        assert len(await repo.read_snapshot(pvb.snapshot_id)) == 6

    lag = await replicate.replicate_all(src, dst, site="b")
    assert lag.error is None and lag.volume_blobs_copied == len(names)
    b = VolumeSite(dst, tmp_path / "b", mode="ReadOnly")
    await b.controller.start()
    try:
        await wait_for(lambda: phase_of(b.store, kt.VELERO_BACKUPS, "b2", ("Completed",)))
        done = await b.run_to_end(kt.VELERO_RESTORES, "r1", {"backupName": "b2",
                                                             "namespaceMapping": {"prod": "prod-dr"}})
    finally:
        await b.controller.stop()
    assert done["status"]["phase"] == "Completed", done["status"]
    assert b.volumes.files("prod-dr", "files-data") == a.volumes.files("prod", "files-data")
    assert (await replicate.replicate_all(src, dst, site="b")).volume_blobs_copied == 0  # incremental


async def test_kill_9_mid_kopia_copy_leaves_no_dangling_index_and_the_next_pass_completes(
        moto_pair: tuple[MotoServer, MotoServer]) -> None:
    src, dst = await fresh_locations(moto_pair)
    async with s3.ClientPool() as pool:
        repo = kopia.Repository(await pool.client(src), src, "opendesk")
        snapshots = [(await repo.write_snapshot({f"f{j}": f"{i}/{j}".encode() * 500 for j in range(4)},
                                                source=kopia.snapshot_source("opendesk", f"pod-{i}", "data"))).id
                     for i in range(12)]  # 12 sessions: 12 indexes, 24 packs
        src_blobs = await repo.blobs()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.velero.replicate_child", child_args(src, dst, kopia=True, concurrency=1),
        cwd=ROOT, stdout=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    copied = 0
    while copied < 5:
        line = await proc.stdout.readline()
        assert line, "the child ended before copying five blobs"
        copied += "copied" in json.loads(line)
    proc.send_signal(signal.SIGKILL)
    await proc.wait()
    async with s3.ClientPool() as pool:
        standby = kopia.Repository(await pool.client(dst), dst, "opendesk")
        held = await standby.blobs()
        assert 5 <= len(held) < len(src_blobs)
        assert await standby.dangling() == []  # no index points at a missing pack
        again = await kopia_sync.sync_all(pool, src, dst, limit=asyncio.Semaphore(4))
        assert again == len(src_blobs) - len(held)
        after = kopia.Repository(await pool.client(dst), dst, "opendesk")
        source = kopia.Repository(await pool.client(src), src, "opendesk")
        assert await after.dangling() == [] and len(await after.blobs()) == len(src_blobs)
        for snapshot in snapshots:  # every snapshot is readable on the standby, byte for byte
            assert await after.read_snapshot(snapshot) == await source.read_snapshot(snapshot)
            assert await after.check_snapshot(snapshot) == 4
        pack = next(b.key for b in await after.blobs() if b.key.rsplit("/", 1)[-1].startswith("p"))
        await (await pool.client(dst)).delete_object(Bucket=dst.bucket, Key=pack)  # what verify-volumes catches
        broken = kopia.Repository(await pool.client(dst), dst, "opendesk")
        results = [await _check(broken, s) for s in snapshots]
        assert sum("BLOB not found" in r for r in results) >= 1 and await broken.dangling()


async def _check(repo: kopia.Repository, snapshot: str) -> str:
    try:
        return str(await repo.check_snapshot(snapshot))
    except errors.ProtocolError as exc:
        return str(exc)
