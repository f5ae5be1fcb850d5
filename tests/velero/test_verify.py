"""Backups are verified before they are chosen (issue 13, defects 2 and 3), against two real
moto_server processes: a truncated tarball, a gzip of garbage, and metadata overwritten or deleted
after it was cached are all detected, and the choice falls back to the older good backup."""

from __future__ import annotations

import gzip
from datetime import timedelta

from failover import replicate, s3
from failover.store import sqlite
from failover.velero import bucket, layout, verify
from tests import test_replicate
from tests.test_replicate import ITEMS, T0, backup

two_clouds = test_replicate.two_clouds  # the fixture: two moto_server processes, two "providers"


async def _put(loc: s3.S3Location, key: str, data: bytes) -> None:
    async with s3.open_client(loc) as client:
        await s3.put_bytes(client, loc, key, data)


async def _delete(loc: s3.S3Location, key: str) -> None:
    async with s3.open_client(loc) as client:
        await client.delete_object(Bucket=loc.bucket, Key=key)


async def test_corrupt_backups_are_detected_and_the_older_good_one_is_chosen(
        two_clouds: tuple[s3.S3Location, s3.S3Location], tmp_path: object) -> None:
    src, dst = two_clouds
    for i, name in enumerate(("b1", "b2", "b3")):
        await bucket.write_backup(src, backup(name), items=ITEMS, completed_at=T0 + timedelta(minutes=i))
    await replicate.replicate_all(src, dst, site="standby")
    now = T0 + timedelta(minutes=5)
    choice = await verify.choose(dst, bad={}, now=now, rpo=900)
    assert choice.info is not None and choice.info.name == "b3" and not choice.skipped

    tar = layout.backup_tarball(dst.prefix, "b3")
    async with s3.open_client(dst) as client:
        data = await s3.get_bytes(client, dst, tar)
    await _put(dst, tar, data[: len(data) // 2])  # truncated after replication
    await _put(dst, layout.backup_tarball(dst.prefix, "b2"), gzip.compress(b"garbage" * 100))
    choice = await verify.choose(dst, bad={}, now=now, rpo=900)
    assert choice.info is not None and choice.info.name == "b1"
    why = dict(choice.newly_bad)
    assert set(why) == {"b3", "b2"} and "differs from what the source recorded" in why["b3"], why

    # marked bad in the store: skipped without a download next time, also by the readiness probe
    store = sqlite.SqliteStore(tmp_path / "failover.db")  # type: ignore[operator]
    for name, reason in choice.newly_bad:
        verify.mark_bad(store, "standby", name, reason)
    bad = verify.bad_backups(store, "standby")
    assert set(bad) == {"b2", "b3"}
    assert (await verify.newest_good(dst, bad)).name == "b1"  # type: ignore[union-attr]
    again = await verify.choose(dst, bad=bad, now=now, rpo=900)
    assert again.info is not None and again.info.name == "b1" and not again.newly_bad


async def test_a_corrupt_source_archive_is_refused_even_with_matching_checksums(
        two_clouds: tuple[s3.S3Location, s3.S3Location]) -> None:
    src, dst = two_clouds
    await bucket.write_backup(src, backup("b1"), items=ITEMS, completed_at=T0)
    await _put(src, layout.backup_tarball(src.prefix, "b1"), gzip.compress(b"not a tar"))
    await replicate.replicate_all(src, dst, site="standby")
    choice = await verify.choose(dst, bad={}, now=T0, rpo=900)
    assert choice.info is None and "not a readable Velero backup tarball" in choice.newly_bad[0][1]


async def test_metadata_changed_after_it_was_cached_is_read_again(
        two_clouds: tuple[s3.S3Location, s3.S3Location]) -> None:
    src, dst = two_clouds
    for i, name in enumerate(("b1", "b2")):
        await bucket.write_backup(src, backup(name), items=ITEMS, completed_at=T0 + timedelta(minutes=i))
    await replicate.replicate_all(src, dst, site="standby")
    assert (await bucket.newest_complete(dst)).name == "b2"  # type: ignore[union-attr]  # now cached
    meta = layout.backup_metadata(dst.prefix, "b2")
    await _put(dst, meta, b"{garbage")
    assert (await bucket.newest_complete(dst)).name == "b1"  # type: ignore[union-attr]
    await _delete(dst, meta)
    assert [i.name for i in await bucket.backup_infos(dst)] == ["b1"]


def test_without_a_journal_no_backup_is_marked_bad() -> None:
    """A watcher of ``status --live`` or a benchmark has no store: the backup check must still run."""
    assert verify.bad_backups(None, "stackit-eu01") == {}
