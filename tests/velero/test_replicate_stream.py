"""Streaming replication: a large multipart object is copied once, in bounded memory, and verified."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from failover import replicate, s3, s3copy
from failover.lab.motoserver import MotoServer
from failover.velero import bucket, layout
from tests.velero.conftest import fresh_locations

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]
MIB = 1024 * 1024


def backup_doc(name: str) -> dict[str, Any]:
    return {"apiVersion": "velero.io/v1", "kind": "Backup", "metadata": {"name": name, "namespace": "velero"},
            "spec": {"includedNamespaces": ["opendesk"]}, "status": {"startTimestamp": "2026-11-23T09:59:00Z"}}


async def upload_in_parts(loc: s3.S3Location, key: str, *, parts: int, part_size: int) -> str:
    """Upload random data as a multipart object (as Velero's AWS plugin does); its SHA-256."""
    sha = hashlib.sha256()
    async with s3.ClientPool() as pool:
        c = await pool.client(loc)
        upload = await c.create_multipart_upload(Bucket=loc.bucket, Key=key)
        done = []
        for n in range(1, parts + 1):
            data = os.urandom(part_size)
            sha.update(data)
            answer = await c.upload_part(Bucket=loc.bucket, Key=key, UploadId=upload["UploadId"], PartNumber=n,
                                         Body=data)
            done.append({"PartNumber": n, "ETag": answer["ETag"]})
        await c.complete_multipart_upload(Bucket=loc.bucket, Key=key, UploadId=upload["UploadId"],
                                          MultipartUpload={"Parts": done})
    return sha.hexdigest()


def child_args(src: s3.S3Location, dst: s3.S3Location, **extra: object) -> str:
    def dump(loc: s3.S3Location) -> dict[str, str]:
        return {"endpoint": loc.endpoint, "bucket": loc.bucket, "prefix": loc.prefix, "region": loc.region,
                "access_key": loc.access_key.get_secret_value(), "secret_key": loc.secret_key.get_secret_value()}
    return json.dumps({"src": dump(src), "dst": dump(dst), **extra})


async def run_child(args: str) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "tests.velero.replicate_child", args,
                                                cwd=ROOT, stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    assert proc.returncode == 0, out.decode()[-2000:]
    return dict(json.loads(out.decode().strip().splitlines()[-1]))


async def test_a_200_mb_multipart_object_replicates_once_in_bounded_memory(
        moto_pair: tuple[MotoServer, MotoServer]) -> None:
    src, dst = await fresh_locations(moto_pair)
    await bucket.write_backup(src, backup_doc("big"), items=[], completed_at=T0)
    tarball = layout.backup_tarball(src.prefix, "big")
    sha = await upload_in_parts(src, tarball, parts=20, part_size=10 * MIB)  # ETag "…-20"
    result = await run_child(child_args(src, dst, backup="big"))
    dst_key = layout.backup_tarball(dst.prefix, "big")
    assert result["done"] == 9 and result["sha256"][dst_key] == sha
    growth_mib = (result["hwm_kib"] - result["baseline_kib"]) / 1024
    print(f"peak RSS growth {growth_mib:.1f} MiB")
    assert growth_mib < 64, f"peak RSS grew by {growth_mib:.0f} MiB copying 200 MiB"
    async with s3.open_client(dst) as c:
        head = await c.head_object(Bucket=dst.bucket, Key=dst_key)
    assert head["ContentLength"] == 200 * MIB and head["ETag"].strip('"').endswith("-25")  # our 8 MiB parts
    assert await replicate.replicate_backup(src, dst, "big") == 0  # the next pass copies nothing


async def test_copy_records_checksums_and_skips_an_unchanged_single_part_object(
        moto_pair: tuple[MotoServer, MotoServer]) -> None:
    src, dst = await fresh_locations(moto_pair)
    async with s3.ClientPool() as pool:
        sc, dc = await pool.client(src), await pool.client(dst)
        await s3.put_bytes(sc, src, "backups/b/x", b"hello")
        done = await s3copy.copy_object(sc, dc, src, dst, key="backups/b/x", dst_key="standby/backups/b/x")
        assert done.sha256 == hashlib.sha256(b"hello").hexdigest() and done.parts == 1
        head = await dc.head_object(Bucket=dst.bucket, Key="standby/backups/b/x")
        assert head["Metadata"][s3copy.META_SHA256] == done.sha256
        [source] = await s3.list_objects(sc, src, "backups/b/")
        [copy] = await s3.list_objects(dc, dst, "standby/backups/b/")
        assert await s3copy.same(dc, dst, source, copy)
        await s3.put_bytes(sc, src, "backups/b/x", b"HELLO")  # same size, new content
        [changed] = await s3.list_objects(sc, src, "backups/b/")
        assert not await s3copy.same(dc, dst, changed, copy)
