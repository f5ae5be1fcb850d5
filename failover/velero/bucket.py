"""Reading and writing Velero buckets directly over S3, without a Velero server.

The failover daemon must judge a standby's backups even when that site's cluster (and its
Velero) is cold or gone, and replication copies objects bucket to bucket, so the product reads
the bucket itself: list backups the way Velero's ``ListBackups`` does (CommonPrefixes under
``backups/``), parse ``velero-backup.json``, pick the newest restorable one. The writer exists for
the lab's Velero controller and follows Velero's upload order, so readers observe the same
intermediate states a real Velero produces (metadata first as ``Finalizing``, final phase last).

Every function opens its own short-lived client (timeouts from :mod:`failover.s3`) and raises only
failover errors: TemporaryError for storage trouble, ObjectNotFound/BucketNotFound/AccessDenied,
ProtocolError for malformed documents.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from failover import s3
from failover.core import errors
from failover.velero import layout, models, tarball

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ObjectInfo:
    """One stored object, for replication and verification."""

    key: str
    size: int
    etag: str
    last_modified: str = ""


async def _objects(client: Any, loc: s3.S3Location, prefix: str) -> list[ObjectInfo]:
    out: list[ObjectInfo] = []
    with s3.translating(f"LIST {loc.bucket}/{prefix}"):
        paginator = client.get_paginator("list_objects_v2")
        async for page in paginator.paginate(Bucket=loc.bucket, Prefix=prefix):
            for obj in page.get("Contents", []) or []:
                out.append(ObjectInfo(str(obj["Key"]), int(obj["Size"]), str(obj.get("ETag", "")).strip('"'),
                                      str(obj.get("LastModified", ""))))
    return out


async def list_backups(loc: s3.S3Location) -> list[str]:
    """Names of the backup dirs under ``<prefix>/backups/`` (sorted; metadata may still be missing)."""
    async with s3.open_client(loc) as client:
        prefixes = await s3.list_prefixes(client, loc, layout.backups_dir(loc.prefix))
    names = (layout.backup_name_from_prefix(loc.prefix, cp) for cp in prefixes)
    return sorted(n for n in names if n)


async def read_backup(loc: s3.S3Location, name: str) -> models.BackupInfo:
    """The parsed ``velero-backup.json`` of ``name`` (ObjectNotFound if absent)."""
    key = layout.backup_metadata(loc.prefix, name)
    async with s3.open_client(loc) as client:
        data = await s3.get_bytes(client, loc, key)
    return models.parse_backup(data, where=f"{loc.bucket}/{key}")


_CACHE_SIZE = 4096
#: parsed metadata of *terminal* backups, with the object version it was parsed from (ETag, size,
#: last-modified): a metadata object that changed (garbage written over it, a rewrite) is re-read
_terminal_cache: OrderedDict[tuple[str, str, str], tuple[ObjectInfo, models.BackupInfo]] = OrderedDict()


async def _read_metadata(client: Any, loc: s3.S3Location, name: str, seen: ObjectInfo) -> models.BackupInfo:
    key = layout.backup_metadata(loc.prefix, name)
    cache_key = (loc.endpoint, loc.bucket, key)
    cached = _terminal_cache.get(cache_key)
    if cached is not None and cached[0] == seen:
        _terminal_cache.move_to_end(cache_key)
        return cached[1]
    _terminal_cache.pop(cache_key, None)
    info = models.parse_backup(await s3.get_bytes(client, loc, key), where=f"{loc.bucket}/{key}")
    if info.phase.is_terminal:
        _terminal_cache[cache_key] = (seen, info)
        while len(_terminal_cache) > _CACHE_SIZE:
            _terminal_cache.popitem(last=False)
    return info


def _metadata_objects(loc: s3.S3Location, objects: Sequence[ObjectInfo]) -> dict[str, ObjectInfo]:
    """Backup name → its ``velero-backup.json`` object, from a listing of ``backups/``."""
    base = layout.backups_dir(loc.prefix)
    out: dict[str, ObjectInfo] = {}
    for obj in objects:
        rest = obj.key[len(base):] if obj.key.startswith(base) else ""
        name, _, file = rest.partition("/")
        if name and file == layout.METADATA_FILE:
            out[name] = obj
    return out


async def backup_infos(loc: s3.S3Location) -> list[models.BackupInfo]:
    """Every backup whose ``velero-backup.json`` is present and parses, sorted by name.

    Health probes call this every few seconds on buckets with hundreds of backups, so it lists
    ``backups/`` once (one request per 1,000 objects) and GETs metadata concurrently, except for
    terminal backups already parsed whose metadata object is unchanged (same ETag, size and
    last-modified; a changed or deleted one is re-read or drops out). Dirs without metadata (a copy
    in progress) and malformed metadata are skipped with a warning.
    """
    async with s3.open_client(loc) as client:
        listed = _metadata_objects(loc, await _objects(client, loc, layout.backups_dir(loc.prefix)))
        limit = asyncio.Semaphore(8)

        async def one(name: str) -> models.BackupInfo | None:
            async with limit:
                try:
                    return await _read_metadata(client, loc, name, listed[name])
                except s3.ObjectNotFound:  # no metadata yet: Velero or a replica is still writing it
                    logger.debug("backup %s in %s has no metadata yet", name, loc.bucket)
                    return None
                except errors.ProtocolError as exc:
                    logger.warning("skipping backup %s in %s: %s", name, loc.bucket, exc)
                    return None

        infos = await asyncio.gather(*(one(n) for n in sorted(listed)))
    return sorted((i for i in infos if i is not None), key=lambda i: i.name)


async def newest_complete(loc: s3.S3Location) -> models.BackupInfo | None:
    """The complete backup with the latest completion time, or None (see :func:`backup_infos`)."""
    done = [i for i in await backup_infos(loc) if i.is_complete and i.completion_timestamp is not None]
    return max(done, key=lambda i: (i.completion_timestamp, i.name), default=None)


async def list_backup_objects(loc: s3.S3Location, name: str) -> list[ObjectInfo]:
    """Every object of backup ``name`` (key, size, etag), sorted by key."""
    async with s3.open_client(loc) as client:
        objects = await _objects(client, loc, layout.backup_dir(loc.prefix, name))
    return sorted(objects, key=lambda o: o.key)


async def validate_bucket(loc: s3.S3Location) -> str | None:
    """``None`` if Velero would accept the bucket, else why not (BSL status.message).

    Raises TemporaryError when the storage cannot be reached (the caller decides what that means).
    """
    try:
        async with s3.open_client(loc) as client:
            prefixes = await s3.list_prefixes(client, loc, layout.root(loc.prefix))
    except s3.StoragePermanentError as exc:
        return str(exc)
    bad = layout.invalid_top_level_dirs(loc.prefix, prefixes)
    if bad:
        return (f"Backup store contains invalid top-level directories: {bad}"
                f" (bucket {loc.bucket}, prefix {loc.prefix!r})")
    return None


async def bucket_is_valid(loc: s3.S3Location) -> bool:
    """True if the bucket exists and passes Velero's ``IsValid``; TemporaryError if unreachable."""
    return await validate_bucket(loc) is None


def gzip_json(doc: Any) -> bytes:
    return gzip.compress(tarball.go_json(doc), mtime=0)


def _json(doc: Any) -> bytes:
    return json.dumps(doc, indent=None, separators=(",", ":")).encode()


async def read_contents(loc: s3.S3Location, name: str) -> tarball.Contents:
    """The objects inside backup ``name``'s tarball."""
    async with s3.open_client(loc) as client:
        data = await s3.get_bytes(client, loc, layout.backup_tarball(loc.prefix, name))
    return tarball.read(data)


async def read_gz_json(loc: s3.S3Location, key: str) -> Any:
    """A gzipped JSON side file (resource list, results, ...)."""
    async with s3.open_client(loc) as client:
        data = await s3.get_bytes(client, loc, key)
    try:
        return json.loads(gzip.decompress(data))
    except (OSError, EOFError, ValueError) as exc:
        raise errors.ProtocolError(f"{loc.bucket}/{key} is not gzipped JSON: {exc}") from exc


async def write_backup(
    loc: s3.S3Location,
    backup: Mapping[str, Any],
    *,
    items: Sequence[tarball.Item],
    completed_at: datetime,
    final_phase: models.BackupPhase = models.BackupPhase.COMPLETED,
    results: tuple[models.Result, models.Result] = (models.Result(), models.Result()),
    log_lines: Sequence[str] = (),
    on_upload: Callable[[str], None] | None = None,
    pod_volume_backups: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """Upload a backup in Velero's order; returns the final Backup document written.

    ``backup`` is the Backup CR (its status is completed here); ``results`` is (warnings, errors).
    Order: logs, velero-backup.json (Finalizing), tarball (on failure the metadata is deleted
    again), gz side files, velero-backup.json again with ``final_phase`` and completionTimestamp.
    ``on_upload`` is called with each key after it is stored; ``pod_volume_backups`` go into
    ``<b>-podvolumebackups.json.gz`` (their kopia data must be written before).
    """
    name = str(backup["metadata"]["name"])
    p = loc.prefix
    doc = json.loads(json.dumps(backup))
    status = doc.setdefault("status", {})
    status.update({"version": 1, "formatVersion": tarball.FORMAT_VERSION,
                   "progress": {"totalItems": len(items), "itemsBackedUp": len(items)},
                   "warnings": results[0].count, "errors": results[1].count})
    status["phase"] = (models.BackupPhase.FINALIZING_PARTIALLY_FAILED
                       if final_phase == models.BackupPhase.PARTIALLY_FAILED else models.BackupPhase.FINALIZING).value

    async with s3.open_client(loc) as client:
        async def put(key: str, data: bytes) -> None:
            await s3.put_bytes(client, loc, key, data)
            if on_upload is not None:
                on_upload(key)

        await put(layout.backup_logs(p, name), gzip.compress("".join(f"{line}\n" for line in log_lines).encode(),
                                                             mtime=0))
        await put(layout.backup_metadata(p, name), _json(doc))
        try:
            # gzip of a whole namespace is CPU work: keep the event loop (probes, APIs) responsive
            data = await asyncio.to_thread(tarball.build, items, mtime=completed_at.timestamp())
            await put(layout.backup_tarball(p, name), data)
        except errors.FailoverError:
            with s3.translating(f"DELETE {loc.bucket}"):
                await client.delete_object(Bucket=loc.bucket, Key=layout.backup_metadata(p, name))
            raise
        await put(layout.backup_resource_list(p, name), gzip_json(tarball.resource_list(items)))
        await put(layout.backup_results(p, name),
                  gzip_json({"warnings": results[0].to_wire(), "errors": results[1].to_wire()}))
        pvbs = layout.backup_pod_volume_backups(p, name)
        for key in (layout.backup_volume_snapshots(p, name), pvbs,
                    layout.backup_item_operations(p, name), layout.backup_volume_info(p, name)):
            await put(key, gzip_json(list(pod_volume_backups) if key == pvbs else []))
        status["phase"] = final_phase.value
        status["completionTimestamp"] = models.format_timestamp(completed_at)
        await put(layout.backup_metadata(p, name), _json(doc))
    return dict(doc)


async def write_restore_files(
    loc: s3.S3Location,
    name: str,
    *,
    results: tuple[models.Result, models.Result],
    log_lines: Sequence[str],
    resource_list: Mapping[str, Sequence[str]],
) -> None:
    """Upload a restore's results, logs and resource list (only for ReadWrite locations)."""
    p = loc.prefix
    async with s3.open_client(loc) as client:
        await s3.put_bytes(client, loc, layout.restore_logs(p, name),
                           gzip.compress("".join(f"{line}\n" for line in log_lines).encode(), mtime=0))
        await s3.put_bytes(client, loc, layout.restore_results(p, name),
                           gzip_json({"warnings": results[0].to_wire(), "errors": results[1].to_wire()}))
        await s3.put_bytes(client, loc, layout.restore_resource_list(p, name),
                           gzip_json({k: sorted(v) for k, v in sorted(resource_list.items())}))
