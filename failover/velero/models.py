"""Typed views of Velero's wire documents: Backup/Restore phases, backup metadata, results.

``velero-backup.json`` and the Backup CR are the same JSON document (Velero serialises the CR into
the bucket). The product decides *which backup to restore* from it, so parsing is strict where a
wrong answer would be dangerous (phase, timestamps, name) and lenient elsewhere: a malformed
document raises :class:`~failover.core.errors.ProtocolError` naming the field, never a KeyError deep
inside a decision. The raw document is kept beside the typed view for the few callers (the lab
controller, replication) that need to pass it on unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from failover.core import errors


class BackupPhase(StrEnum):
    """``BackupStatus.phase`` (pkg/apis/velero/v1/backup_types.go)."""

    NEW = "New"  #: not processed yet (an empty phase means New too)
    QUEUED = "Queued"  #: waiting for a worker (Velero 1.17+)
    READY_TO_START = "ReadyToStart"  #: dequeued, about to run (Velero 1.17+)
    FAILED_VALIDATION = "FailedValidation"  #: the spec is invalid; see status.validationErrors (terminal)
    IN_PROGRESS = "InProgress"  #: items are being backed up
    WAITING_FOR_PLUGIN_OPERATIONS = "WaitingForPluginOperations"  #: async plugin work pending
    WAITING_FOR_PLUGIN_OPERATIONS_PARTIALLY_FAILED = "WaitingForPluginOperationsPartiallyFailed"  #: same, with errors
    FINALIZING = "Finalizing"  #: data uploaded; metadata will be re-uploaded with the final phase
    FINALIZING_PARTIALLY_FAILED = "FinalizingPartiallyFailed"  #: same, with errors
    COMPLETED = "Completed"  #: finished without errors (terminal, restorable)
    PARTIALLY_FAILED = "PartiallyFailed"  #: finished with some item errors (terminal, restorable)
    FAILED = "Failed"  #: the backup as a whole failed; see status.failureReason (terminal)
    DELETING = "Deleting"  #: a DeleteBackupRequest is being processed

    @property
    def is_complete(self) -> bool:
        """A backup Velero can restore from."""
        return self in (BackupPhase.COMPLETED, BackupPhase.PARTIALLY_FAILED)

    @property
    def is_terminal(self) -> bool:
        return self in (BackupPhase.COMPLETED, BackupPhase.PARTIALLY_FAILED, BackupPhase.FAILED,
                        BackupPhase.FAILED_VALIDATION)


class RestorePhase(StrEnum):
    """``RestoreStatus.phase`` (pkg/apis/velero/v1/restore_types.go)."""

    NEW = "New"  #: not processed yet (an empty phase means New too)
    FAILED_VALIDATION = "FailedValidation"  #: the spec is invalid; see status.validationErrors (terminal)
    IN_PROGRESS = "InProgress"  #: items are being restored
    WAITING_FOR_PLUGIN_OPERATIONS = "WaitingForPluginOperations"  #: async plugin work pending
    WAITING_FOR_PLUGIN_OPERATIONS_PARTIALLY_FAILED = "WaitingForPluginOperationsPartiallyFailed"  #: same, with errors
    FINALIZING = "Finalizing"  #: items restored; hooks and cleanup pending
    FINALIZING_PARTIALLY_FAILED = "FinalizingPartiallyFailed"  #: same, with errors
    COMPLETED = "Completed"  #: every selected item restored, no errors (terminal)
    PARTIALLY_FAILED = "PartiallyFailed"  #: finished, status.errors > 0 (terminal)
    FAILED = "Failed"  #: the restore as a whole failed; see status.failureReason (terminal)

    @property
    def is_terminal(self) -> bool:
        return self in (RestorePhase.COMPLETED, RestorePhase.PARTIALLY_FAILED, RestorePhase.FAILED,
                        RestorePhase.FAILED_VALIDATION)


class BslPhase(StrEnum):
    """``BackupStorageLocationStatus.phase``."""

    AVAILABLE = "Available"  #: the bucket answered and passed ``IsValid``
    UNAVAILABLE = "Unavailable"  #: unreachable or invalid; see status.message


@dataclass(frozen=True)
class Result:
    """Velero's ``results.Result``: messages for velero itself, cluster-scoped items, per namespace."""

    velero: tuple[str, ...] = ()
    cluster: tuple[str, ...] = ()
    namespaces: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return len(self.velero) + len(self.cluster) + sum(len(v) for v in self.namespaces.values())

    def to_wire(self) -> dict[str, Any]:
        """The JSON shape (Go omits empty fields)."""
        out: dict[str, Any] = {}
        if self.velero:
            out["velero"] = list(self.velero)
        if self.cluster:
            out["cluster"] = list(self.cluster)
        if self.namespaces:
            out["namespaces"] = {k: list(v) for k, v in sorted(self.namespaces.items())}
        return out


@dataclass(frozen=True)
class BackupInfo:
    """What the product needs to know about one backup, parsed from velero-backup.json."""

    name: str
    phase: BackupPhase
    start_timestamp: datetime | None
    completion_timestamp: datetime | None
    storage_location: str | None
    included_namespaces: tuple[str, ...] = ()
    excluded_namespaces: tuple[str, ...] = ()
    errors: int = 0
    warnings: int = 0
    total_items: int | None = None
    items_backed_up: int | None = None
    format_version: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def is_complete(self) -> bool:
        """Completed or PartiallyFailed: Velero can restore from it."""
        return self.phase.is_complete


def _bad(where: str, message: str) -> errors.ProtocolError:
    return errors.ProtocolError(f"malformed Velero backup metadata ({where}): {message}")


def parse_timestamp(value: Any, *, where: str, what: str) -> datetime | None:
    """An RFC 3339 timestamp as an aware UTC datetime; ``None``/"" stays ``None``."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise _bad(where, f"{what} is {type(value).__name__}, expected an RFC 3339 string")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise _bad(where, f"{what} {value!r} is not an RFC 3339 timestamp") from exc
    if parsed.tzinfo is None:
        raise _bad(where, f"{what} {value!r} has no time zone")
    return parsed.astimezone(UTC)


def format_timestamp(value: datetime) -> str:
    """Kubernetes' ``metav1.Time`` form: second precision, UTC, ``Z``."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _mapping(doc: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    value = doc.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _bad(where, f"{key} is {type(value).__name__}, expected an object")
    return value


def _strings(spec: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = spec.get(key)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _bad(where, f"spec.{key} must be a list of strings")
    return tuple(value)


def _int(status: Mapping[str, Any], key: str, where: str) -> int | None:
    value = status.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(where, f"{key} must be an integer")
    return value


def parse_backup(doc: Mapping[str, Any] | bytes | str, *, where: str = "velero-backup.json") -> BackupInfo:
    """Parse a Backup CR / velero-backup.json; raises ProtocolError naming what is wrong."""
    if isinstance(doc, bytes | str):
        try:
            doc = json.loads(doc)
        except (ValueError, UnicodeDecodeError) as exc:
            raise _bad(where, f"not JSON: {exc}") from exc
    if not isinstance(doc, Mapping):
        raise _bad(where, "the document is not a JSON object")
    if doc.get("kind", "Backup") != "Backup":
        raise _bad(where, f"kind is {doc.get('kind')!r}, expected 'Backup'")
    meta = _mapping(doc, "metadata", where)
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        raise _bad(where, "metadata.name is missing")
    spec, status = _mapping(doc, "spec", where), _mapping(doc, "status", where)
    raw_phase = status.get("phase") or "New"
    try:
        phase = BackupPhase(raw_phase)
    except ValueError as exc:
        raise _bad(where, f"status.phase {raw_phase!r} is not a Velero backup phase") from exc
    progress = _mapping(status, "progress", where)
    location = spec.get("storageLocation")
    return BackupInfo(
        name=name,
        phase=phase,
        start_timestamp=parse_timestamp(status.get("startTimestamp"), where=where, what="status.startTimestamp"),
        completion_timestamp=parse_timestamp(status.get("completionTimestamp"), where=where,
                                             what="status.completionTimestamp"),
        storage_location=location if isinstance(location, str) and location else None,
        included_namespaces=_strings(spec, "includedNamespaces", where),
        excluded_namespaces=_strings(spec, "excludedNamespaces", where),
        errors=_int(status, "errors", where) or 0,
        warnings=_int(status, "warnings", where) or 0,
        total_items=_int(progress, "totalItems", where),
        items_backed_up=_int(progress, "itemsBackedUp", where),
        format_version=status.get("formatVersion") if isinstance(status.get("formatVersion"), str) else None,
        raw=doc,
    )
