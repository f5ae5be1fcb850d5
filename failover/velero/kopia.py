"""Velero's file-system backups: the kopia repository under ``<prefix>/kopia/<namespace>/``.

Velero backs PersistentVolume data up with kopia into one repository per volume namespace, in
the same bucket as the backups, and lists the snapshots in ``<b>-podvolumebackups.json.gz``. A
failover to another provider restores empty volumes unless that repository is copied too, and it
must be copied the way kopia writes it: **packs before indexes**. A reader sees only contents an
index references, and an index entry whose pack is missing fails with "BLOB not found" for good
(velero#8222), so an index must never arrive before its packs.

The blob names are kopia's (format v3 with the epoch manager, see ``kopia/repo``):

* ``p…`` data packs and ``q…`` metadata packs: write-once, content-addressed;
* ``x…`` index blobs (``xn<E>_…`` uncompacted, ``xs``/``xr`` compacted, ``xe``/``xw`` markers);
* ``kopia.repository``/``kopia.blobcfg``/``udmrepo.Repository`` (format, written at init) and
  ``kopia.maintenance`` (rewritten by every maintenance run);
* ``s…`` session markers and ``_log_…`` logs, never needed by a restore.

The lab writes a repository with the same names and the same write order, but its blobs are
plain JSON and raw bytes (no encryption, SHA-256 content ids), so a test can read a snapshot back
and count the files in it; the product only ever relies on names, sizes and order.
"""

from __future__ import annotations

import hashlib
import json
import secrets as pysecrets
from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from failover import s3
from failover.core import errors
from failover.velero import layout

FORMAT_BLOB = "kopia.repository"
BLOBCFG_BLOB = "kopia.blobcfg"
UDMREPO_BLOB = "udmrepo.Repository"
MAINTENANCE_BLOB = "kopia.maintenance"
PACK_LIMIT = 16 * 1024 * 1024  #: a pack is closed when it reaches this size (kopia: ~20 MB)


class BlobClass(IntEnum):
    """A blob's class, in the order a copier must write them (lower first)."""

    PACK = 0  #: ``p``/``q``: contents
    INDEX = 1  #: ``x``: what is in which pack
    FORMAT = 2  #: repository format, blob config, maintenance schedule
    SKIP = 3  #: session markers and logs: not needed on a replica


def classify(name: str) -> BlobClass:
    """The class of blob ``name`` (the key relative to the repository's directory)."""
    if name[:1] in ("p", "q"):
        return BlobClass.PACK
    if name[:1] == "x":
        return BlobClass.INDEX
    if name.startswith(("kopia.", "udmrepo.")):
        return BlobClass.FORMAT
    return BlobClass.SKIP


def repo_dir(prefix: str, namespace: str) -> str:
    """``<root>kopia/<namespace>/``: the repository of one volume namespace."""
    return f"{layout.root(prefix)}kopia/{namespace}/"


def kopia_dir(prefix: str) -> str:
    return f"{layout.root(prefix)}kopia/"


def snapshot_source(namespace: str, pod: str, volume: str) -> str:
    """Velero ≥1.17's snapshot source for a pod volume."""
    return f"default@default:snapshot-pod-volume/kopia/{namespace}/{pod}/{volume}"


def content_id(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]


@dataclass(frozen=True)
class Snapshot:
    """One volume snapshot: the files it holds (relative path → content id) and its sizes."""

    id: str
    source: str
    files: Mapping[str, str]
    total_bytes: int
    incremental_bytes: int = 0


@dataclass(frozen=True)
class Entry:
    pack: str
    offset: int
    length: int


class Repository:
    """A lab kopia-style repository in one bucket directory, through one client (cached index)."""

    def __init__(self, client: Any, loc: s3.S3Location, namespace: str) -> None:
        self.client = client
        self.loc = loc
        self.dir = repo_dir(loc.prefix, namespace)
        self.namespace = namespace
        self._index: dict[str, Entry] = {}
        self._indexes_read: set[str] = set()

    async def _get(self, name: str) -> bytes:
        return await s3.get_bytes(self.client, self.loc, self.dir + name)

    async def _put(self, name: str, data: bytes) -> None:
        await s3.put_bytes(self.client, self.loc, self.dir + name, data)

    async def blobs(self) -> list[s3.Listed]:
        return await s3.list_objects(self.client, self.loc, self.dir)

    async def initialize(self) -> str:
        """Create the format blobs if missing (blobcfg, then repository, then udmrepo); the unique id."""
        names = {b.key[len(self.dir):] for b in await self.blobs() if classify(b.key[len(self.dir):])
                 is BlobClass.FORMAT}
        if FORMAT_BLOB in names:
            return str(json.loads(await self._get(FORMAT_BLOB))["uniqueID"])
        unique = pysecrets.token_hex(32)
        await self._put(BLOBCFG_BLOB, b"{}")
        await self._put(FORMAT_BLOB, json.dumps({"uniqueID": unique, "format": "lab-kopia/1", "hash": "SHA256-128",
                                                  "encryption": "NONE", "splitter": "FIXED"}).encode())
        await self._put(UDMREPO_BLOB, json.dumps({"uniqueID": unique}).encode())
        return unique

    async def index(self) -> dict[str, Entry]:
        """Every content the repository's indexes reference (content id → where it lives).

        Index blobs are write-once: each is read once per :class:`Repository` object."""
        for blob in await self.blobs():
            name = blob.key[len(self.dir):]
            if classify(name) is BlobClass.INDEX and name not in self._indexes_read:
                doc = json.loads(await self._get(name))
                self._index.update({cid: Entry(*where) for cid, where in doc["entries"].items()})
                self._indexes_read.add(name)
        return self._index

    async def write_snapshot(self, files: Mapping[str, bytes], *, source: str) -> Snapshot:
        """Store ``files`` as one snapshot (see :meth:`write_snapshots`)."""
        return (await self.write_snapshots({source: files}))[source]

    async def write_snapshots(self, volumes: Mapping[str, Mapping[str, bytes]]) -> dict[str, Snapshot]:
        """Store one snapshot per source in one session: new contents in packs, then **one** index.

        Contents already in the repository are not written again (content-addressed). Until the
        index lands, none of the snapshots is visible (kopia's flush order)."""
        await self.initialize()
        known = await self.index()
        session = pysecrets.token_hex(8)
        entries: dict[str, list[Any]] = {}
        pending: dict[str, bytes] = {}
        out: dict[str, Snapshot] = {}
        manifests: list[tuple[str, bytes]] = []
        for source, files in sorted(volumes.items()):
            manifest_files = {path: content_id(data) for path, data in sorted(files.items())}
            fresh = {cid: files[path] for path, cid in manifest_files.items() if cid not in known}
            incremental = sum(len(d) for cid, d in fresh.items() if cid not in pending)
            pending.update(fresh)
            manifest = json.dumps({"source": source, "files": manifest_files}, sort_keys=True).encode()
            snap_id = content_id(manifest)
            manifests.append((snap_id, manifest))
            out[source] = Snapshot(snap_id, source, manifest_files, sum(len(d) for d in files.values()), incremental)
        for pack_items, kind in _packs(sorted(pending.items())):
            await self._write_pack(pack_items, kind, session, entries)
        if manifests:
            await self._write_pack(manifests, "q", session, entries)
        index = json.dumps({"entries": entries}, sort_keys=True).encode()
        name = f"xn0_{content_id(index)}-s{session}"
        await self._put(name, index)  # last: now the snapshots are visible
        self._index.update({cid: Entry(*where) for cid, where in entries.items()})
        self._indexes_read.add(name)
        return out

    async def _write_pack(self, items: list[tuple[str, bytes]], kind: str, session: str,
                          entries: dict[str, list[Any]]) -> None:
        body = b"".join(data for _, data in items)
        pack = f"{kind}{content_id(body)}-s{session}"
        offset = 0
        for cid, data in items:
            entries[cid] = [pack, offset, len(data)]
            offset += len(data)
        await self._put(pack, body)

    async def read_snapshot(self, snapshot_id: str) -> dict[str, bytes]:
        """The files of snapshot ``snapshot_id`` (ProtocolError if the repository cannot provide them)."""
        index = await self.index()
        packs: dict[str, bytes] = {}

        async def content(cid: str) -> bytes:
            entry = index.get(cid)
            if entry is None:
                raise errors.ProtocolError(f"kopia {self.dir}: content {cid} not found in any index")
            if entry.pack not in packs:
                try:
                    packs[entry.pack] = await self._get(entry.pack)
                except s3.ObjectNotFound as exc:
                    raise errors.ProtocolError(f"kopia {self.dir}: BLOB not found: {entry.pack}") from exc
            return packs[entry.pack][entry.offset:entry.offset + entry.length]

        manifest = json.loads(await content(snapshot_id))
        return {path: await content(cid) for path, cid in manifest["files"].items()}

    async def check_snapshot(self, snapshot_id: str) -> int:
        """How many files snapshot ``snapshot_id`` holds, after checking that every pack it needs
        is in the bucket (ProtocolError "BLOB not found" otherwise); reads only the manifest."""
        index = await self.index()
        entry = index.get(snapshot_id)
        if entry is None:
            raise errors.ProtocolError(f"kopia {self.dir}: snapshot {snapshot_id} not found in any index")
        try:
            pack = await self._get(entry.pack)
        except s3.ObjectNotFound as exc:
            raise errors.ProtocolError(f"kopia {self.dir}: BLOB not found: {entry.pack}") from exc
        files: dict[str, str] = json.loads(pack[entry.offset:entry.offset + entry.length])["files"]
        present = {b.key[len(self.dir):] for b in await self.blobs()}
        missing = sorted({index[c].pack for c in files.values() if c in index} - present)
        unknown = sorted(c for c in files.values() if c not in index)
        if missing or unknown:
            raise errors.ProtocolError(f"kopia {self.dir}: snapshot {snapshot_id}: BLOB not found: "
                                       f"{(missing or unknown)[:3]}")
        return len(files)

    async def dangling(self) -> list[str]:
        """Packs some index references that are not in the bucket (must always be empty)."""
        present = {b.key[len(self.dir):] for b in await self.blobs()}
        return sorted({e.pack for e in (await self.index()).values() if e.pack not in present})


def _packs(items: list[tuple[str, bytes]]) -> list[tuple[list[tuple[str, bytes]], str]]:
    """Group contents into data packs of at most :data:`PACK_LIMIT` bytes."""
    out: list[tuple[list[tuple[str, bytes]], str]] = []
    current: list[tuple[str, bytes]] = []
    size = 0
    for cid, data in items:
        if current and size + len(data) > PACK_LIMIT:
            out.append((current, "p"))
            current, size = [], 0
        current.append((cid, data))
        size += len(data)
    if current:
        out.append((current, "p"))
    return out
