"""Velero's object-store layout: every key this project reads or writes, byte for byte.

The product reads buckets written by a *real* Velero (and the lab's controller writes buckets a
real Velero could read), so the keys must match ``pkg/persistence/object_store_layout.go``
exactly. Keeping them in one module means a Velero layout change is one diff, and the tests pin
every path. ``prefix`` is the BSL's optional ``objectStorage.prefix``; ``""`` means the bucket root.
"""

from __future__ import annotations

from collections.abc import Iterable

#: Top-level "directories" Velero accepts in a bucket; anything else makes the BSL Unavailable.
VALID_TOP_LEVEL_DIRS: frozenset[str] = frozenset({"backups", "restores", "restic", "metadata", "plugins", "kopia"})

METADATA_FILE = "velero-backup.json"


def root(prefix: str) -> str:
    """The key prefix of everything Velero stores: ``""`` or ``"<prefix>/"``."""
    cleaned = prefix.strip("/")
    return f"{cleaned}/" if cleaned else ""


def backups_dir(prefix: str) -> str:
    return f"{root(prefix)}backups/"


def backup_dir(prefix: str, name: str) -> str:
    return f"{backups_dir(prefix)}{name}/"


def backup_metadata(prefix: str, name: str) -> str:
    """``velero-backup.json``: the Backup CR as plain (not gzipped) JSON."""
    return f"{backup_dir(prefix, name)}{METADATA_FILE}"


def backup_tarball(prefix: str, name: str) -> str:
    return f"{backup_dir(prefix, name)}{name}.tar.gz"


def backup_logs(prefix: str, name: str) -> str:
    return f"{backup_dir(prefix, name)}{name}-logs.gz"


def backup_pod_volume_backups(prefix: str, name: str) -> str:
    return f"{backup_dir(prefix, name)}{name}-podvolumebackups.json.gz"


def backup_volume_snapshots(prefix: str, name: str) -> str:
    return f"{backup_dir(prefix, name)}{name}-volumesnapshots.json.gz"


def backup_item_operations(prefix: str, name: str) -> str:
    return f"{backup_dir(prefix, name)}{name}-itemoperations.json.gz"


def backup_resource_list(prefix: str, name: str) -> str:
    return f"{backup_dir(prefix, name)}{name}-resource-list.json.gz"


def backup_results(prefix: str, name: str) -> str:
    return f"{backup_dir(prefix, name)}{name}-results.gz"


def backup_volume_info(prefix: str, name: str) -> str:
    return f"{backup_dir(prefix, name)}{name}-volumeinfo.json.gz"


def backup_csi_file(prefix: str, name: str, kind: str) -> str:
    """``kind`` is ``volumesnapshots``, ``volumesnapshotcontents`` or ``volumesnapshotclasses``."""
    return f"{backup_dir(prefix, name)}{name}-csi-{kind}.json.gz"


def restores_dir(prefix: str) -> str:
    return f"{root(prefix)}restores/"


def restore_dir(prefix: str, name: str) -> str:
    return f"{restores_dir(prefix)}{name}/"


def restore_logs(prefix: str, name: str) -> str:
    return f"{restore_dir(prefix, name)}restore-{name}-logs.gz"


def restore_results(prefix: str, name: str) -> str:
    return f"{restore_dir(prefix, name)}restore-{name}-results.gz"


def restore_resource_list(prefix: str, name: str) -> str:
    return f"{restore_dir(prefix, name)}restore-{name}-resource-list.json.gz"


def restore_item_operations(prefix: str, name: str) -> str:
    return f"{restore_dir(prefix, name)}restore-{name}-itemoperations.json.gz"


def restore_volume_info(prefix: str, name: str) -> str:
    """Note Velero's asymmetry: this one has no ``restore-`` prefix."""
    return f"{restore_dir(prefix, name)}{name}-volumeinfo.json.gz"


def backup_name_from_prefix(prefix: str, common_prefix: str) -> str | None:
    """``"<root>backups/b1/"`` → ``"b1"`` (``None`` if the common prefix is not a backup dir)."""
    base = backups_dir(prefix)
    if not common_prefix.startswith(base):
        return None
    name = common_prefix[len(base):].strip("/")
    return name or None


def invalid_top_level_dirs(prefix: str, common_prefixes: Iterable[str]) -> list[str]:
    """The top-level dirs under ``root(prefix)`` that Velero's ``IsValid()`` rejects (sorted).

    ``common_prefixes`` are the CommonPrefixes of a ``ListObjectsV2(Prefix=root, Delimiter="/")``.
    Plain objects at the root are fine; only unknown "directories" invalidate the bucket.
    """
    base = root(prefix)
    bad = set()
    for cp in common_prefixes:
        rest = cp[len(base):] if cp.startswith(base) else cp
        top = rest.strip("/")
        if top not in VALID_TOP_LEVEL_DIRS:
            bad.add(top)
    return sorted(bad)


def is_valid(prefix: str, common_prefixes: Iterable[str]) -> bool:
    """Velero's ``IsValid`` rule: no top-level dir outside :data:`VALID_TOP_LEVEL_DIRS`."""
    return not invalid_top_level_dirs(prefix, common_prefixes)
