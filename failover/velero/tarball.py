"""Velero's backup tarball (``<b>.tar.gz``): build it from objects, read objects back.

The lab writes backups a real Velero could restore, and the product can inspect backups a real
Velero wrote, so the archive follows ``pkg/archive/filesystem.go`` / ``item_backupper.go``:

    metadata/version                                          "1.1.0\\n"
    resources/<resource>.<group>/namespaces/<ns>/<name>.json
    resources/<resource>.<group>/v1-preferredversion/namespaces/<ns>/<name>.json   (same bytes)
    resources/<resource>/cluster/<name>.json                  core group: no ".<group>" suffix

Item files are Go's ``json.Marshal`` of the object (compact, map keys sorted, ``<>&`` escaped)
with tar mode 0755. The reader takes the unversioned path and ignores the duplicate copies.
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from failover.core import errors

FORMAT_VERSION = "1.1.0"
VERSION_FILE = "metadata/version"
PREFERRED = "v1-preferredversion"


@dataclass(frozen=True)
class Item:
    """One backed-up object: where it goes in the archive, and the object itself."""

    group: str  #: "" for the core group
    resource: str  #: the plural, e.g. "deployments"
    namespace: str | None  #: None for cluster-scoped objects
    name: str
    obj: Mapping[str, Any]

    @property
    def group_resource(self) -> str:
        """``groupResource.String()``: ``deployments.apps``; core resources have no suffix."""
        return f"{self.resource}.{self.group}" if self.group else self.resource

    @property
    def resource_list_key(self) -> str:
        """``-resource-list.json.gz`` key: ``"<apiVersion>/<Kind>"``, e.g. ``apps/v1/Deployment``."""
        return f"{self.obj.get('apiVersion', '')}/{self.obj.get('kind', '')}"

    @property
    def resource_list_value(self) -> str:
        return f"{self.namespace}/{self.name}" if self.namespace else self.name


def go_json(obj: Any) -> bytes:
    """JSON as Go's ``json.Marshal`` writes it: compact, sorted keys, UTF-8, HTML-safe escapes."""
    text = json.dumps(obj, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    for raw, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                     ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(raw, esc)  # these characters can only occur inside JSON strings
    return text.encode("utf-8")


def item_paths(item: Item) -> tuple[str, str]:
    """The two archive paths of ``item``: unversioned and ``v1-preferredversion``."""
    gr = item.group_resource
    scope = f"namespaces/{item.namespace}" if item.namespace else "cluster"
    return (f"resources/{gr}/{scope}/{item.name}.json",
            f"resources/{gr}/{PREFERRED}/{scope}/{item.name}.json")


def _add(tar: tarfile.TarFile, path: str, data: bytes, mtime: float) -> None:
    info = tarfile.TarInfo(path)
    info.size = len(data)
    info.mode = 0o755
    info.mtime = int(mtime)
    info.type = tarfile.REGTYPE
    tar.addfile(info, io.BytesIO(data))


def build(items: Iterable[Item], *, mtime: float | None = None) -> bytes:
    """The gzipped tar of ``items`` in Velero's layout."""
    stamp = time.time() if mtime is None else mtime
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=int(stamp)) as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
        _add(tar, VERSION_FILE, f"{FORMAT_VERSION}\n".encode(), stamp)
        for item in items:
            data = go_json(item.obj)
            for path in item_paths(item):
                _add(tar, path, data, stamp)
    return buf.getvalue()


@dataclass(frozen=True)
class Contents:
    """What a backup tarball holds."""

    version: str
    items: tuple[Item, ...]


def _parse_path(path: str) -> tuple[str, str, str | None, str] | None:
    """``(group, resource, namespace, name)`` for an unversioned item path, else None."""
    parts = path.split("/")
    if len(parts) < 4 or parts[0] != "resources" or not parts[-1].endswith(".json"):
        return None
    resource, _, group = parts[1].partition(".")
    name = parts[-1][: -len(".json")]
    if len(parts) == 4 and parts[2] == "cluster":
        return group, resource, None, name
    if len(parts) == 5 and parts[2] == "namespaces":
        return group, resource, parts[3], name
    return None  # a versioned copy (v1-preferredversion, EnableAPIGroupVersions dirs)


def read(data: bytes) -> Contents:
    """Parse a backup tarball; raises ProtocolError if it is not one."""
    version: str | None = None
    items: list[Item] = []
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                handle = tar.extractfile(member)
                content = handle.read() if handle is not None else b""
                if member.name == VERSION_FILE:
                    version = content.decode("utf-8").strip()
                    continue
                parsed = _parse_path(member.name)
                if parsed is None:
                    continue
                obj = json.loads(content)
                if not isinstance(obj, dict):
                    raise errors.ProtocolError(f"backup tarball item {member.name} is not a JSON object")
                items.append(Item(parsed[0], parsed[1], parsed[2], parsed[3], obj))
    except (tarfile.TarError, OSError, EOFError, ValueError, UnicodeDecodeError) as exc:
        raise errors.ProtocolError(f"not a readable Velero backup tarball: {exc}") from exc
    if version is None:
        raise errors.ProtocolError(f"backup tarball has no {VERSION_FILE}")
    return Contents(version=version, items=tuple(items))


def resource_list(items: Iterable[Item]) -> dict[str, list[str]]:
    """The ``-resource-list.json.gz`` document: ``{"apps/v1/Deployment": ["ns/name", ...]}``, sorted."""
    out: dict[str, list[str]] = {}
    for item in items:
        out.setdefault(item.resource_list_key, []).append(item.resource_list_value)
    return {key: sorted(values) for key, values in sorted(out.items())}
