"""Shared vocabulary of the Kubernetes emulator: resource types, watch events, the store contract.

Kubernetes objects are JSON documents by nature; inside the emulator they stay plain dicts
(``KubeObject``), exactly as the API server stores them. Typed domain models live elsewhere.
Controllers (workloads, Velero, the ingress's readiness view) talk to the :class:`Store`
in-process; clients talk to the same store over HTTP through ``server.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

KubeObject = dict[str, Any]


@dataclass(frozen=True)
class ResourceType:
    """One served resource: ``group`` is "" for the core group."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    subresources: tuple[str, ...] = ()  # "status", "scale"

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_resource(self) -> str:
        """Velero's ``groupResource.String()``: ``deployments.apps``, ``pods``."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def key(self) -> str:
        return self.group_resource


def _core(plural: str, kind: str, namespaced: bool = True, sub: tuple[str, ...] = ()) -> ResourceType:
    return ResourceType("", "v1", plural, kind, namespaced, sub)


NAMESPACES = _core("namespaces", "Namespace", namespaced=False, sub=("status",))
NODES = _core("nodes", "Node", namespaced=False, sub=("status",))
PODS = _core("pods", "Pod", sub=("status",))
SERVICES = _core("services", "Service", sub=("status",))
CONFIGMAPS = _core("configmaps", "ConfigMap")
SECRETS = _core("secrets", "Secret")
PVCS = _core("persistentvolumeclaims", "PersistentVolumeClaim", sub=("status",))
DEPLOYMENTS = ResourceType("apps", "v1", "deployments", "Deployment", True, ("status", "scale"))
STATEFULSETS = ResourceType("apps", "v1", "statefulsets", "StatefulSet", True, ("status", "scale"))
VELERO_BACKUPS = ResourceType("velero.io", "v1", "backups", "Backup", True, ("status",))
VELERO_RESTORES = ResourceType("velero.io", "v1", "restores", "Restore", True, ("status",))
VELERO_BSLS = ResourceType(
    "velero.io", "v1", "backupstoragelocations", "BackupStorageLocation", True, ("status",)
)
VELERO_SCHEDULES = ResourceType("velero.io", "v1", "schedules", "Schedule", True, ("status",))
CAPI_CLUSTERS = ResourceType("cluster.x-k8s.io", "v1beta2", "clusters", "Cluster", True, ("status",))
CAPI_MACHINEDEPLOYMENTS = ResourceType(
    "cluster.x-k8s.io", "v1beta2", "machinedeployments", "MachineDeployment", True, ("status", "scale")
)

ALL: tuple[ResourceType, ...] = (
    NAMESPACES, NODES, PODS, SERVICES, CONFIGMAPS, SECRETS, PVCS, DEPLOYMENTS, STATEFULSETS,
    VELERO_BACKUPS, VELERO_RESTORES, VELERO_BSLS, VELERO_SCHEDULES,
    CAPI_CLUSTERS, CAPI_MACHINEDEPLOYMENTS,
)
BY_KEY: dict[str, ResourceType] = {rt.key: rt for rt in ALL}


class EventType(StrEnum):
    ADDED = "ADDED"
    MODIFIED = "MODIFIED"
    DELETED = "DELETED"
    BOOKMARK = "BOOKMARK"


@dataclass(frozen=True)
class WatchEvent:
    type: EventType
    object: KubeObject


class KubeStoreError(Exception):
    """Base for store errors; ``reason`` and ``code`` are the API server's Status fields."""

    reason = "InternalError"
    code = 500


class NotFound(KubeStoreError):
    reason = "NotFound"
    code = 404


class AlreadyExists(KubeStoreError):
    reason = "AlreadyExists"
    code = 409


class Conflict(KubeStoreError):
    """A write carried a stale ``metadata.resourceVersion``."""

    reason = "Conflict"
    code = 409


class Invalid(KubeStoreError):
    reason = "Invalid"
    code = 422


class Gone(KubeStoreError):
    """A watch asked for a resourceVersion older than the store's history window."""

    reason = "Expired"
    code = 410


Listener = Callable[[ResourceType, WatchEvent], None]


class Store(Protocol):
    """An in-memory API server store for one cluster. Synchronous mutations, async watches.

    Every mutation bumps one cluster-wide resourceVersion counter (a decimal string), sets
    ``uid``/``creationTimestamp``/``generation`` on create, bumps ``generation`` when ``spec``
    changes, and notifies listeners and watchers. Objects returned are deep copies.
    """

    def get(self, rt: ResourceType, namespace: str | None, name: str) -> KubeObject:
        """Return the object or raise :class:`NotFound`."""
        ...

    def list(
        self,
        rt: ResourceType,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> tuple[list[KubeObject], str]:
        """Objects matching the selectors (Kubernetes selector syntax) and the list's RV."""
        ...

    def create(self, rt: ResourceType, obj: KubeObject) -> KubeObject:
        """Create; raise :class:`AlreadyExists` on a duplicate name, :class:`Invalid` if bad."""
        ...

    def update(self, rt: ResourceType, obj: KubeObject, *, subresource: str | None = None) -> KubeObject:
        """Replace (PUT). A non-empty ``metadata.resourceVersion`` that is not current raises
        :class:`Conflict`. ``subresource="status"`` replaces only ``status``; without it,
        ``status`` is kept for types that have a status subresource."""
        ...

    def patch(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        patch: Any,
        *,
        patch_type: str = "merge",
        subresource: str | None = None,
    ) -> KubeObject:
        """Apply a JSON merge patch (``merge`` or ``strategic``, treated as merge) or a JSON
        patch (``json``, RFC 6902) to the object or its status subresource."""
        ...

    def delete(self, rt: ResourceType, namespace: str | None, name: str) -> KubeObject:
        """Delete and return the last state; raise :class:`NotFound`."""
        ...

    def watch(
        self,
        rt: ResourceType,
        namespace: str | None = None,
        *,
        resource_version: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> AsyncIterator[WatchEvent]:
        """Events after ``resource_version`` (``None``/"0": synthetic ADDED for current objects
        first). Raises :class:`Gone` if that version is older than the kept history."""
        ...

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener`` synchronously after every mutation (controllers use this)."""
        ...
