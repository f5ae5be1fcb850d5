"""The Kubernetes vocabulary the product needs: resource types (group, version, plural, kind) and
the object shape. Kubernetes objects are JSON documents; they stay plain dicts at this boundary,
exactly as the API server serves them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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
