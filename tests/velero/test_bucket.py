"""Reading and writing Velero buckets against a real moto_server process (no mocks)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from failover import s3
from failover.core import errors, secrets
from failover.lab.motoserver import MotoServer, start_moto_server
from failover.velero import bucket, layout, models, tarball

pytestmark = pytest.mark.asyncio(loop_scope="module")

T0 = datetime(2026, 5, 20, 8, 0, tzinfo=UTC)
ITEMS = [
    tarball.Item("", "namespaces", None, "prod",
                 {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "prod"}}),
    tarball.Item("apps", "deployments", "prod", "web",
                 {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "prod"}}),
]


def backup_cr(name: str, *, start: datetime = T0) -> dict[str, object]:
    return {"apiVersion": "velero.io/v1", "kind": "Backup",
            "metadata": {"name": name, "namespace": "velero", "labels": {"velero.io/storage-location": "default"}},
            "spec": {"includedNamespaces": ["prod"], "storageLocation": "default"},
            "status": {"phase": "InProgress", "startTimestamp": models.format_timestamp(start)}}


async def test_write_backup_uploads_in_velero_order_and_reads_back(moto_a: MotoServer, make_location: Any) -> None:
    loc = make_location(moto_a, prefix="site")
    await s3.ensure_bucket(loc)
    await s3.ensure_bucket(loc)  # idempotent
    order: list[str] = []
    final = await bucket.write_backup(loc, backup_cr("b1"), items=ITEMS, completed_at=T0 + timedelta(seconds=70),
                                      results=(models.Result(namespaces={"prod": ("w1",)}), models.Result()),
                                      on_upload=order.append)
    p = "site/backups/b1/"
    assert order == [f"{p}b1-logs.gz", f"{p}velero-backup.json", f"{p}b1.tar.gz", f"{p}b1-resource-list.json.gz",
                     f"{p}b1-results.gz", f"{p}b1-volumesnapshots.json.gz", f"{p}b1-podvolumebackups.json.gz",
                     f"{p}b1-itemoperations.json.gz", f"{p}b1-volumeinfo.json.gz", f"{p}velero-backup.json"]
    assert final["status"]["phase"] == "Completed"
    assert await bucket.list_backups(loc) == ["b1"]
    info = await bucket.read_backup(loc, "b1")
    assert info.is_complete and info.completion_timestamp == T0 + timedelta(seconds=70)
    assert (info.total_items, info.warnings, info.errors) == (2, 1, 0)
    assert await bucket.read_gz_json(loc, layout.backup_resource_list("site", "b1")) == {
        "apps/v1/Deployment": ["prod/web"], "v1/Namespace": ["prod"]}
    assert await bucket.read_gz_json(loc, layout.backup_results("site", "b1")) == {
        "warnings": {"namespaces": {"prod": ["w1"]}}, "errors": {}}
    contents = await bucket.read_contents(loc, "b1")
    assert {i.name for i in contents.items} == {"prod", "web"}
    objects = await bucket.list_backup_objects(loc, "b1")
    assert [o.key for o in objects] == sorted(set(order))
    assert all(o.size > 0 and o.etag for o in objects)
    assert await bucket.bucket_is_valid(loc)


async def test_newest_complete_skips_incomplete_missing_and_malformed(moto_a: MotoServer, make_location: Any) -> None:
    loc = make_location(moto_a)
    await s3.ensure_bucket(loc)
    assert await bucket.newest_complete(loc) is None
    await bucket.write_backup(loc, backup_cr("old"), items=ITEMS, completed_at=T0)
    await bucket.write_backup(loc, backup_cr("new"), items=ITEMS, completed_at=T0 + timedelta(hours=1),
                              final_phase=models.BackupPhase.PARTIALLY_FAILED)
    async with s3.open_client(loc) as client:
        finalizing = {**backup_cr("newer"), "status": {"phase": "Finalizing"}}
        await s3.put_bytes(client, loc, layout.backup_metadata("", "newer"), json.dumps(finalizing).encode())
        await s3.put_bytes(client, loc, layout.backup_metadata("", "broken"), b"{oops")
        await s3.put_bytes(client, loc, layout.backup_tarball("", "half-copied"), b"x")
    assert await bucket.list_backups(loc) == ["broken", "half-copied", "new", "newer", "old"]
    newest = await bucket.newest_complete(loc)
    assert newest is not None and newest.name == "new" and newest.phase is models.BackupPhase.PARTIALLY_FAILED
    # the Finalizing metadata is re-uploaded as Completed: the next call must see it (no stale cache)
    completed = {**finalizing, "status": {"phase": "Completed", "completionTimestamp": "2026-05-20T10:00:00Z"}}
    async with s3.open_client(loc) as client:
        await s3.put_bytes(client, loc, layout.backup_metadata("", "newer"), json.dumps(completed).encode())
    newest = await bucket.newest_complete(loc)
    assert newest is not None and newest.name == "newer"
    assert [i.name for i in await bucket.backup_infos(loc)] == ["new", "newer", "old"]
    with pytest.raises(errors.ProtocolError, match="malformed"):
        await bucket.read_backup(loc, "broken")
    with pytest.raises(s3.ObjectNotFound):
        await bucket.read_backup(loc, "half-copied")


async def test_invalid_top_level_dir_and_missing_bucket(moto_a: MotoServer, make_location: Any) -> None:
    loc = make_location(moto_a)
    await s3.ensure_bucket(loc)
    async with s3.open_client(loc) as client:
        await s3.put_bytes(client, loc, "backups/x/velero-backup.json", b"{}")
        await s3.put_bytes(client, loc, "README", b"root files are fine")
    assert await bucket.validate_bucket(loc) is None
    async with s3.open_client(loc) as client:
        await s3.put_bytes(client, loc, "junk/file", b"x")
    message = await bucket.validate_bucket(loc)
    assert message is not None and "junk" in message
    assert not await bucket.bucket_is_valid(loc)
    missing = make_location(moto_a, bucket="does-not-exist")
    assert not await bucket.bucket_is_valid(missing)
    with pytest.raises(s3.BucketNotFound):
        await bucket.list_backups(missing)


async def test_unreachable_storage_is_temporary_and_secret_free(make_location: Any, tmp_path: Path) -> None:
    server = await start_moto_server(log_path=tmp_path / "moto.log")
    loc = make_location(server)
    await server.stop()
    await server.stop()  # idempotent
    assert server.process.returncode is not None  # reaped, no zombie
    assert "GET /moto-api/" in (tmp_path / "moto.log").read_text()  # werkzeug's access log went to the file
    with pytest.raises(errors.TemporaryError) as info:
        await bucket.list_backups(loc)
    assert "test-secret-key-123" not in str(info.value)
    assert "test-secret-key-123" in secrets.known()


async def test_two_processes_do_not_share_state(moto_a: MotoServer, moto_b: MotoServer, make_location: Any) -> None:
    a, b = make_location(moto_a, bucket="shared-name"), make_location(moto_b, bucket="shared-name")
    await s3.ensure_bucket(a)
    with pytest.raises(s3.BucketNotFound):
        await bucket.list_backups(b)


async def test_s3_errors_inside_open_client_are_translated(moto_a: MotoServer, make_location: Any) -> None:
    loc = make_location(moto_a)
    await s3.ensure_bucket(loc)
    with pytest.raises(s3.ObjectNotFound):
        async with s3.open_client(loc) as client:
            await client.head_object(Bucket=loc.bucket, Key="nope")
