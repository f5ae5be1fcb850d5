"""Streaming object copies between two S3 endpoints on different providers, verified end to end.

Replication moves Velero tarballs, kopia packs and application buckets across providers, so a copy
must not cost the object's size in memory, must work past the 5 GB single-PUT limit, and must be
recognisable as done on the next pass on any S3 implementation. Therefore:

* an object up to ``2 * part_size`` (16 MiB) is read whole and written with one PUT, as kopia
  writes its packs; a larger one streams as a multipart upload of ``part_size`` parts, reading the
  next part while the previous one uploads (two parts in memory per copy), aborted on any failure;
* every PUT and part carries ``Content-MD5``, so the receiving server itself rejects a corrupted
  body (this holds with server-side encryption, where ETags are no MD5s);
* while streaming, a SHA-256 of the content is computed; the copy stores it as
  ``x-amz-meta-failover-sha256`` when it is known before the upload (single PUT), and always stores
  the source's ETag as ``x-amz-meta-failover-source-etag``. A multipart source ETag (``…-4``)
  never equals a copy's ETag, so :func:`same` treats an object as already copied when sizes match
  and either the ETags are equal or the copy's recorded source ETag is the source's ETag;
* the number of bytes read must equal the source's ``Content-Length`` (a source changed mid-copy
  is a TemporaryError; the next pass copies it again).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from dataclasses import dataclass
from typing import Any

from failover import s3
from failover.core import errors

PART_SIZE = 8 * 1024 * 1024  #: multipart part size (S3's minimum part is 5 MiB)
META_SHA256 = "failover-sha256"
META_SOURCE_ETAG = "failover-source-etag"
_THREAD_HASH_MIN = 1024 * 1024  #: hash chunks this large in a worker thread (hashlib drops the GIL)


@dataclass(frozen=True)
class Copied:
    """The result of one verified copy (``sha256`` is the content's, computed while streaming)."""

    key: str
    size: int
    sha256: str
    source_etag: str
    parts: int


def _md5_b64(data: bytes) -> tuple[str, bytes]:
    digest = hashlib.md5(data, usedforsecurity=False).digest()
    return base64.b64encode(digest).decode(), digest


async def _read_part(body: Any, size: int) -> bytes:
    """Up to ``size`` bytes of the stream (fewer only at its end)."""
    chunks: list[bytes] = []
    got = 0
    while got < size:
        chunk: bytes = await body.read(size - got)
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _hash(sha: Any, data: bytes) -> str:
    """Feed ``data`` to ``sha`` and return its Content-MD5 (big chunks in a thread, off the loop)."""
    def work() -> str:
        sha.update(data)
        return _md5_b64(data)[0]

    return await asyncio.to_thread(work) if len(data) >= _THREAD_HASH_MIN else work()


async def copy_object(src_client: Any, dst_client: Any, src: s3.S3Location, dst: s3.S3Location, *,
                      key: str, dst_key: str, part_size: int = PART_SIZE) -> Copied:
    """Stream ``src.bucket/key`` to ``dst.bucket/dst_key``; memory stays below two parts.

    Idempotent (a rerun overwrites with the same bytes). Raises TemporaryError on storage trouble or
    a source that changed while being read, ObjectNotFound if the source vanished.
    """
    with s3.translating(f"GET {src.bucket}/{key}"):
        response = await src_client.get_object(Bucket=src.bucket, Key=key)
    size = int(response["ContentLength"])
    source_etag = str(response.get("ETag", "")).strip('"')
    sha = hashlib.sha256()
    async with response["Body"] as body:
        single = size <= 2 * part_size
        with s3.translating(f"GET {src.bucket}/{key}"):
            first = await _read_part(body, size if single else part_size)
        if single:
            parts, read = 1, len(first)
            md5 = await _hash(sha, first)
            with s3.translating(f"PUT {dst.bucket}/{dst_key}"):
                await dst_client.put_object(Bucket=dst.bucket, Key=dst_key, Body=first, ContentMD5=md5,
                                            Metadata={META_SHA256: sha.hexdigest(), META_SOURCE_ETAG: source_etag})
        else:
            parts, read = await _multipart(dst_client, dst, dst_key, body, first, sha=sha,
                                           part_size=part_size, source_etag=source_etag)
    if read != size:
        raise errors.TemporaryError(f"copy of {src.bucket}/{key}: read {read} of {size} bytes (changed while copied?)")
    return Copied(dst_key, size, sha.hexdigest(), source_etag, parts)


async def _multipart(client: Any, dst: s3.S3Location, key: str, body: Any, first: bytes, *, sha: Any,
                     part_size: int, source_etag: str) -> tuple[int, int]:
    """Upload ``first`` and the rest of ``body`` in parts; returns (parts, bytes). Aborts on failure."""
    what = f"multipart PUT {dst.bucket}/{key}"
    with s3.translating(what):
        upload = await client.create_multipart_upload(Bucket=dst.bucket, Key=key,
                                                      Metadata={META_SOURCE_ETAG: source_etag})
    upload_id = str(upload["UploadId"])
    done: list[dict[str, Any]] = []
    pending: asyncio.Task[dict[str, Any]] | None = None

    async def put(number: int, data: bytes) -> dict[str, Any]:
        md5 = await _hash(sha, data)  # in part order: the previous part's hash finished before this starts
        with s3.translating(what):
            answer = await client.upload_part(Bucket=dst.bucket, Key=key, UploadId=upload_id, PartNumber=number,
                                              Body=data, ContentMD5=md5)
        return {"PartNumber": number, "ETag": answer["ETag"]}

    try:
        data, number, read = first, 1, 0
        while data:
            read += len(data)
            if pending is not None:
                done.append(await pending)
            pending = asyncio.create_task(put(number, data), name=f"upload part {number} of {key}")
            number += 1
            with s3.translating(f"GET {key}"):
                data = await _read_part(body, part_size)  # overlaps with the part's upload
        if pending is not None:
            done.append(await pending)
            pending = None
        with s3.translating(what):
            await client.complete_multipart_upload(Bucket=dst.bucket, Key=key, UploadId=upload_id,
                                                   MultipartUpload={"Parts": done})
        return len(done), read
    except BaseException:
        if pending is not None:
            pending.cancel()
            await asyncio.gather(pending, return_exceptions=True)
        try:
            await asyncio.shield(client.abort_multipart_upload(Bucket=dst.bucket, Key=key, UploadId=upload_id))
        except Exception:  # the provider's lifecycle rules remove an orphaned upload eventually
            pass
        raise


async def same(dst_client: Any, dst: s3.S3Location, source: s3.Listed, copy: s3.Listed | None) -> bool:
    """Is ``copy`` (a listing entry on ``dst``) already a copy of ``source``?

    Sizes must match; then equal ETags suffice (single-part objects on MD5-ETag providers, no
    request); otherwise the copy's recorded source ETag decides (one HEAD).
    """
    if copy is None or copy.size != source.size:
        return False
    if copy.etag == source.etag:
        return True
    with s3.translating(f"HEAD {dst.bucket}/{copy.key}"):
        try:
            head = await dst_client.head_object(Bucket=dst.bucket, Key=copy.key)
        except Exception as exc:
            if isinstance(s3.translate_exception(exc, "HEAD"), s3.ObjectNotFound):
                return False
            raise
    meta = {str(k).lower(): str(v) for k, v in (head.get("Metadata") or {}).items()}
    return meta.get(META_SOURCE_ETAG) == source.etag and int(head["ContentLength"]) == source.size


async def recorded_source_etag(client: Any, loc: s3.S3Location, key: str) -> str | None:
    """The source ETag a streamed copy recorded (``x-amz-meta-failover-source-etag``), if any."""
    with s3.translating(f"HEAD {loc.bucket}/{key}"):
        head = await client.head_object(Bucket=loc.bucket, Key=key)
    meta = {str(k).lower(): str(v) for k, v in (head.get("Metadata") or {}).items()}
    return meta.get(META_SOURCE_ETAG)
