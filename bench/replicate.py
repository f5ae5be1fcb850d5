"""Replication throughput against a raw concurrent S3 copy of the same objects, same servers, same run.

Two ``moto_server`` processes play two providers. The source bucket holds ``--backups`` Velero
backups (tarballs of ``--tarball-kib`` random bytes), a kopia repository with volume snapshots, and
``--large`` objects of ``--large-mib`` uploaded in parts. Measured in ``--rounds`` alternating
rounds, each copy into a fresh bucket on the second server: the product's replication
(``Replicator.replicate``: kopia first, metadata last, checksums) and a raw copy (aiobotocore, get
whole + put, ``--concurrency`` at a time) of exactly the same objects. Prints one JSON line: median
objects/s and MB/s, the median ratio product/raw (goal >= 0.8), and each one's peak RSS growth
(VmHWM, reset before each phase).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import SecretStr

from failover import replicate, s3
from failover.lab import motoserver
from failover.velero import bucket, kopia

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
MIB = 1024 * 1024


def _kib(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _reset_peak() -> int:
    with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
        f.write("5")  # resets VmHWM to the current RSS (Linux ≥ 4.0)
    return _kib("VmRSS")


def _loc(server: motoserver.MotoServer, name: str, prefix: str = "") -> s3.S3Location:
    return s3.S3Location(endpoint=server.endpoint, bucket=name, access_key=SecretStr("bench-access"),
                         secret_key=SecretStr("bench-secret-key"), prefix=prefix)


async def _seed(src: s3.S3Location, args: argparse.Namespace) -> None:
    doc: dict[str, Any] = {"apiVersion": "velero.io/v1", "kind": "Backup", "metadata": {"namespace": "velero"},
                           "spec": {"includedNamespaces": ["opendesk"]}}
    async with s3.ClientPool() as pool:
        client = await pool.client(src)
        for i in range(args.backups):
            name = f"b{i:04d}"
            await bucket.write_backup(src, {**doc, "metadata": {**doc["metadata"], "name": name}}, items=[],
                                      completed_at=T0 + timedelta(minutes=i))
            await s3.put_bytes(client, src, f"backups/{name}/{name}.tar.gz", os.urandom(args.tarball_kib * 1024))
        repo = kopia.Repository(client, src, "opendesk")
        for i in range(args.snapshots):
            files = {f"f{j}": os.urandom(64 * 1024) for j in range(8)}
            await repo.write_snapshot(files, source=kopia.snapshot_source("opendesk", f"pod{i}", "data"))
        for i in range(args.large):
            key = f"backups/b0000/large-{i}.bin"
            upload = await client.create_multipart_upload(Bucket=src.bucket, Key=key)
            parts = []
            for n in range(1, args.large_mib // 10 + 1):
                answer = await client.upload_part(Bucket=src.bucket, Key=key, UploadId=upload["UploadId"],
                                                  PartNumber=n, Body=os.urandom(10 * MIB))
                parts.append({"PartNumber": n, "ETag": answer["ETag"]})
            await client.complete_multipart_upload(Bucket=src.bucket, Key=key, UploadId=upload["UploadId"],
                                                   MultipartUpload={"Parts": parts})


async def _raw_copy(src: s3.S3Location, dst: s3.S3Location, keys: list[str], concurrency: int) -> None:
    limit = asyncio.Semaphore(concurrency)
    async with s3.ClientPool(max_connections=concurrency * 2) as pool:
        sc, dc = await pool.client(src), await pool.client(dst)

        async def one(key: str) -> None:
            async with limit:
                got = await sc.get_object(Bucket=src.bucket, Key=key)
                async with got["Body"] as body:
                    data = await body.read()
                await dc.put_object(Bucket=dst.bucket, Key=key, Body=data)

        await asyncio.gather(*(one(k) for k in keys))


async def _phase(phase: str, src: s3.S3Location, dst: s3.S3Location, keys: list[str],
                 args: argparse.Namespace) -> tuple[float, float]:
    """(seconds, peak RSS growth MiB) of one copy of everything into the empty ``dst``."""
    await s3.ensure_bucket(dst)
    base = _reset_peak()
    t0 = time.perf_counter()
    if phase == "product":
        replicator = replicate.Replicator(max_per_pass=10_000, concurrency=args.concurrency,
                                          part_size=args.part_mib * MIB)
        lag = await replicator.replicate(src, dst, site="bench")
        await replicator.aclose()
        if lag.error or lag.copied + lag.volume_blobs_copied != len(keys):
            raise SystemExit(f"replication failed: {lag}")
    else:
        await _raw_copy(src, dst, keys, args.concurrency)
    return time.perf_counter() - t0, (_kib("VmHWM") - base) / 1024


async def main(args: argparse.Namespace) -> dict[str, Any]:
    a = await motoserver.start_moto_server()
    b = await motoserver.start_moto_server()
    results: dict[str, list[tuple[float, float]]] = {"product": [], "raw": []}
    try:
        src = _loc(a, "source")
        await s3.ensure_bucket(src)
        await _seed(src, args)
        async with s3.ClientPool() as pool:
            listed = await s3.list_objects(await pool.client(src), src, "")
        keys = [o.key for o in listed]  # the lab's repository has no session markers or logs: all are copied
        total = sum(o.size for o in listed)
        for r in range(args.rounds):  # alternate the order: a loaded machine drifts
            for phase in ("product", "raw") if r % 2 == 0 else ("raw", "product"):
                results[phase].append(await _phase(phase, src, _loc(b, f"{phase}-{r}"), keys, args))
    finally:
        await a.stop()
        await b.stop()
    n, mb = len(keys), total / 1e6
    product_s = statistics.median(t for t, _ in results["product"])
    raw_s = statistics.median(t for t, _ in results["raw"])
    ratios = [raw / prod for (prod, _), (raw, _) in zip(results["product"], results["raw"], strict=True)]
    return {"objects": n, "mb": round(mb, 1), "rounds": args.rounds,
            "product_s": round(product_s, 2), "raw_s": round(raw_s, 2),
            "product_objects_per_s": round(n / product_s, 1), "raw_objects_per_s": round(n / raw_s, 1),
            "product_mb_per_s": round(mb / product_s, 1), "raw_mb_per_s": round(mb / raw_s, 1),
            "ratio": round(statistics.median(ratios), 2), "ratios": [round(x, 2) for x in ratios], "goal": 0.8,
            "product_peak_rss_growth_mib": round(max(m for _, m in results["product"]), 1),
            "raw_peak_rss_growth_mib": round(max(m for _, m in results["raw"]), 1),
            "cores": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 1)}


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backups", type=int, default=100)
    p.add_argument("--tarball-kib", type=int, default=256)
    p.add_argument("--snapshots", type=int, default=20)
    p.add_argument("--large", type=int, default=2)
    p.add_argument("--large-mib", type=int, default=100)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--part-mib", type=int, default=8, help="the product's multipart part size")
    p.add_argument("--rounds", type=int, default=3, help="alternating product/raw rounds; medians are printed")
    return p.parse_args()


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(parse()))))
