"""Application buckets mirror to a standby: incremental, multipart once, deletes after the grace period."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from failover import buckets, s3
from failover.config import models
from failover.health.model import Health, SiteView
from failover.lab.motoserver import MotoServer
from tests.velero.conftest import fresh_locations
from tests.velero.test_replicate_stream import MIB, upload_in_parts


async def test_bucket_mirror_is_incremental_and_deletes_only_after_the_grace_period(
        moto_pair: tuple[MotoServer, MotoServer]) -> None:
    src, dst = await fresh_locations(moto_pair, dst_prefix="")
    now = [datetime(2026, 11, 23, 10, 0, tzinfo=UTC)]
    async with s3.ClientPool() as pool:
        sc = await pool.client(src)
        for i in range(5):
            await s3.put_bytes(sc, src, f"users/f{i}", f"file {i}".encode())
        await upload_in_parts(src, "users/video", parts=2, part_size=5 * MIB)  # ETag "…-2"
        mirror = buckets.BucketReplicator(pool, clock=lambda: now[0])

        async def sync() -> buckets.BucketLag:
            return await mirror.replicate(src, dst, site="standby", name="nextcloud", delete_after=600)

        first = await sync()
        assert (first.error, first.copied, first.objects, first.lag_s) == (None, 6, 6, 0.0)
        assert (await sync()).copied == 0  # the multipart object is not copied again
        fresh = buckets.BucketReplicator(pool, clock=lambda: now[0])  # a restarted daemon: no memory
        assert (await fresh.replicate(src, dst, site="standby", name="nextcloud", delete_after=600)).copied == 0

        await sc.delete_object(Bucket=src.bucket, Key="users/f0")
        await s3.put_bytes(sc, src, "users/f1", b"FILE 1")  # same size, new content
        now[0] += timedelta(seconds=30)
        changed = await sync()
        assert (changed.copied, changed.deleted, changed.pending_deletes) == (1, 0, 1)
        now[0] += timedelta(seconds=601)
        assert (await sync()).deleted == 1
        held = {o.key for o in await s3.list_objects(await pool.client(dst), dst, "")}
        assert held == {"users/f1", "users/f2", "users/f3", "users/f4", "users/video"}
        assert await s3.get_bytes(await pool.client(dst), dst, "users/f1") == b"FILE 1"
        now[0] += timedelta(seconds=45)
        assert mirror._lag((dst.endpoint, dst.bucket)) == 45.0


def test_a_standby_whose_bucket_is_behind_its_bound_is_not_ready() -> None:
    data = models.S3BucketData(kind="s3-bucket", bucket="nextcloud", max_lag=60)
    profile = models.WorkplaceProfile(name="p", components=(models.Component(
        name="nextcloud", title="Nextcloud", group=3, data=("PostgreSQL", data)),))
    view = SiteView("standby", "standby", Health.HEALTHY, ready=True)
    synced = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    fresh = {"nextcloud": buckets.BucketLag("standby", "nextcloud", 3, lag_s=20.0, synced_at=synced)}
    stale = {"nextcloud": buckets.BucketLag("standby", "nextcloud", 3, lag_s=90.0, synced_at=synced)}
    assert buckets.readiness(view, fresh, profile).ready
    behind = buckets.readiness(view, stale, profile)
    assert not behind.ready and behind.ready_reasons == ("bucket nextcloud 90s behind (max 60s)",)
    assert not buckets.readiness(view, {}, profile).ready  # never replicated
    assert buckets.lag_document(stale)["nextcloud"] == {
        "lag_s": 90.0, "objects": 3, "pending_deletes": 0, "error": None, "synced_at": synced.isoformat()}
