"""Cross-provider replication against two real moto_server processes (two isolated 'providers')."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr

from failover import replicate, s3, s3copy
from failover.lab import motoserver
from failover.velero import bucket, layout, models, tarball, verify

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


class Stop(Exception):
    pass


@pytest.fixture
async def two_clouds(tmp_path: Path) -> AsyncIterator[tuple[s3.S3Location, s3.S3Location]]:
    a = await motoserver.start_moto_server(log_path=tmp_path / "a.log")
    b = await motoserver.start_moto_server(log_path=tmp_path / "b.log")
    locs = tuple(s3.S3Location(endpoint=srv.endpoint, bucket=f"velero-{n}", access_key=SecretStr("lab-access"),
                               secret_key=SecretStr("lab-secret-key-123"), prefix=prefix)
                 for srv, n, prefix in ((a, "a", ""), (b, "b", "standby")))
    for loc in locs:
        await s3.ensure_bucket(loc)
    try:
        yield locs[0], locs[1]
    finally:
        await a.stop()
        await b.stop()


def backup(name: str) -> dict[str, object]:
    return {"apiVersion": "velero.io/v1", "kind": "Backup",
            "metadata": {"name": name, "namespace": "velero"},
            "spec": {"includedNamespaces": ["opendesk"], "storageLocation": "default"},
            "status": {"startTimestamp": "2026-11-23T09:59:00Z"}}


META = {"namespace": "opendesk"}
ITEMS = [tarball.Item("apps", "deployments", "opendesk", "web",
                      {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", **META}}),
         tarball.Item("", "configmaps", "opendesk", "rec-1",
                      {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "rec-1", **META}})]


async def test_replicates_complete_backups_metadata_last_and_skips_finalizing(
        two_clouds: tuple[s3.S3Location, s3.S3Location]) -> None:
    src, dst = two_clouds
    await bucket.write_backup(src, backup("b1"), items=ITEMS, completed_at=T0)
    await bucket.write_backup(src, backup("b2"), items=ITEMS, completed_at=T0 + timedelta(minutes=5))

    def stop_before_final(key: str) -> None:  # the Velero finalizer has not run yet
        if key.endswith("-volumeinfo.json.gz"):
            raise Stop

    with pytest.raises(Stop):
        await bucket.write_backup(src, backup("b3"), items=ITEMS, completed_at=T0 + timedelta(minutes=9),
                                  on_upload=stop_before_final)
    assert (await bucket.read_backup(src, "b3")).phase is models.BackupPhase.FINALIZING

    lag = await replicate.replicate_all(src, dst, site="standby", clock=lambda: T0 + timedelta(minutes=6))
    assert lag.error is None and lag.copied > 0
    assert lag.newest_source == "b2" and lag.newest_replicated == "b2" and lag.lag_s == 0.0
    assert lag.age_s == 60.0
    assert await bucket.list_backups(dst) == ["b1", "b2"]  # the Finalizing b3 was not copied
    src_objs = {o.key.removeprefix(layout.root(src.prefix)): (o.size, o.etag)
                for o in await bucket.list_backup_objects(src, "b2")}
    dst_objs = {o.key.removeprefix(layout.root(dst.prefix)): (o.size, o.etag)
                for o in await bucket.list_backup_objects(dst, "b2") if not o.key.endswith(verify.MANIFEST_SUFFIX)}
    assert src_objs == dst_objs and len(src_objs) == 9
    restored = (await bucket.read_contents(dst, "b2")).items
    assert sorted((i.resource, i.name) for i in restored) == [("configmaps", "rec-1"), ("deployments", "web")]
    again = await replicate.replicate_all(src, dst, site="standby", clock=lambda: T0)
    assert again.copied == 0  # idempotent


async def test_interrupted_copy_is_invisible_until_resumed(two_clouds: tuple[s3.S3Location, s3.S3Location]) -> None:
    src, dst = two_clouds
    await bucket.write_backup(src, backup("b1"), items=ITEMS, completed_at=T0)
    objects = await bucket.list_backup_objects(src, "b1")
    side = [o for o in objects if not o.key.endswith("velero-backup.json")][:3]
    async with s3.open_client(src) as sc, s3.open_client(dst) as dc:  # a crash after three side files
        for o in side:
            await s3copy.copy_object(sc, dc, src, dst, key=o.key, dst_key=replicate._dst_key(o.key, src, dst))
    assert await bucket.newest_complete(dst) is None  # no metadata yet: Velero's sync cannot see it
    copied = await replicate.replicate_backup(src, dst, "b1")
    assert copied == len(objects) - 3
    newest = await bucket.newest_complete(dst)
    assert newest is not None and newest.name == "b1"
