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

from failover.core.kubetypes import *  # noqa: F403  (the vocabulary lives in the product)
from failover.core.kubetypes import ALL as PRODUCT_TYPES
from failover.core.kubetypes import KubeObject, ResourceType

# what deploy/ applies besides the product's vocabulary: the daemon's ServiceAccount and its RBAC
SERVICEACCOUNTS = ResourceType("", "v1", "serviceaccounts", "ServiceAccount", True, ())
_RBAC = "rbac.authorization.k8s.io"
CLUSTERROLES = ResourceType(_RBAC, "v1", "clusterroles", "ClusterRole", False, ())
CLUSTERROLEBINDINGS = ResourceType(_RBAC, "v1", "clusterrolebindings", "ClusterRoleBinding", False, ())
ROLES = ResourceType(_RBAC, "v1", "roles", "Role", True, ())
ROLEBINDINGS = ResourceType(_RBAC, "v1", "rolebindings", "RoleBinding", True, ())
ALL: tuple[ResourceType, ...] = (  # type: ignore[no-redef]
    *PRODUCT_TYPES, SERVICEACCOUNTS, CLUSTERROLES, CLUSTERROLEBINDINGS, ROLES, ROLEBINDINGS)
BY_KEY: dict[str, ResourceType] = {rt.key: rt for rt in ALL}  # type: ignore[no-redef]


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
