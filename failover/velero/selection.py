"""Velero's selection rules: which objects a Backup or Restore spec covers, and restore order.

The product builds Restore specs (namespaces plus ``orLabelSelectors`` per component) and relies on
Velero selecting exactly those objects; the lab's controller implements the same rules so a spec
that selects too little fails in the lab as it would on a real cluster. Covered: namespace
include/exclude (with ``*`` globs), resource include/exclude (plural, ``plural.group``, kind),
``labelSelector``/``orLabelSelectors`` (matchLabels and matchExpressions), and the
``includeClusterResources`` tri-state. Also here: Velero's default restore priorities and the
metadata a restore strips (server-set fields), since both decide what a restored object looks like.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: Velero's defaultRestorePriorities (pkg/cmd/server/server.go): high first, then the rest, then low.
HIGH_PRIORITIES: tuple[str, ...] = (
    "customresourcedefinitions", "namespaces", "storageclasses",
    "volumesnapshotclass.snapshot.storage.k8s.io", "volumesnapshotcontents.snapshot.storage.k8s.io",
    "volumesnapshots.snapshot.storage.k8s.io", "datauploads.velero.io", "persistentvolumes",
    "persistentvolumeclaims", "serviceaccounts", "secrets", "configmaps", "limitranges", "pods",
    "replicasets.apps", "clusterclasses.cluster.x-k8s.io", "endpoints", "services",
)
LOW_PRIORITIES: tuple[str, ...] = (
    "clusterbootstraps.run.tanzu.vmware.com", "clusters.cluster.x-k8s.io",
    "clusterresourcesets.addons.cluster.x-k8s.io",
)

#: Resources Velero never restores (pkg/restore/restore.go nonRestorableResources).
NON_RESTORABLE: frozenset[str] = frozenset({
    "nodes", "events", "events.events.k8s.io", "backups.velero.io", "restores.velero.io",
    "resticrepositories.velero.io", "csinodes.storage.k8s.io", "volumeattachments.storage.k8s.io",
    "backuprepositories.velero.io",
})

#: metadata fields the API server sets; a restore must not send them.
SERVER_SET_METADATA: tuple[str, ...] = (
    "uid", "resourceVersion", "creationTimestamp", "generation", "managedFields", "selfLink",
    "deletionTimestamp", "deletionGracePeriodSeconds",
)


def restore_rank(group_resource: str) -> tuple[int, int, str]:
    """Sort key giving Velero's restore order for a ``plural[.group]``."""
    if group_resource in HIGH_PRIORITIES:
        return (0, HIGH_PRIORITIES.index(group_resource), "")
    if group_resource in LOW_PRIORITIES:
        return (2, LOW_PRIORITIES.index(group_resource), "")
    return (1, 0, group_resource)


def _matches_any(value: str, patterns: Sequence[str]) -> bool:
    return any(p == "*" or fnmatch.fnmatchcase(value, p) for p in patterns)


@dataclass(frozen=True)
class NamespaceFilter:
    """``includedNamespaces`` (empty or ``*`` = all) minus ``excludedNamespaces``."""

    included: tuple[str, ...] = ()
    excluded: tuple[str, ...] = ()

    @property
    def all_namespaces(self) -> bool:
        return not self.included or "*" in self.included

    def matches(self, namespace: str) -> bool:
        if _matches_any(namespace, self.excluded):
            return False
        return self.all_namespaces or _matches_any(namespace, self.included)


@dataclass(frozen=True)
class ResourceFilter:
    """``includedResources`` (empty or ``*`` = all) minus ``excludedResources``.

    A name matches a resource by plural, ``plural.group`` or kind (case-insensitive), which is
    what Velero's discovery-based resolution accepts for the resources the lab serves.
    """

    included: tuple[str, ...] = ()
    excluded: tuple[str, ...] = ()

    @staticmethod
    def _names(group: str, plural: str, kind: str) -> set[str]:
        names = {plural, kind.lower()}
        if group:
            names |= {f"{plural}.{group}", f"{kind.lower()}.{group}"}
        return names

    def matches(self, *, group: str, plural: str, kind: str) -> bool:
        names = self._names(group, plural, kind)
        if any(e.lower() in names for e in self.excluded):
            return False
        if not self.included or "*" in self.included:
            return True
        return any(i.lower() in names for i in self.included)


def _requirement(labels: Mapping[str, str], req: Mapping[str, Any]) -> bool:
    key, op, values = str(req.get("key", "")), str(req.get("operator", "")), list(req.get("values") or [])
    if op == "In":
        return key in labels and labels[key] in values
    if op == "NotIn":
        return key not in labels or labels[key] not in values
    if op == "Exists":
        return key in labels
    if op == "DoesNotExist":
        return key not in labels
    return False  # an unknown operator selects nothing, as the API server would reject it


def selector_matches(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """A ``metav1.LabelSelector``: matchLabels AND matchExpressions; an empty selector matches all."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    return all(_requirement(labels, req) for req in selector.get("matchExpressions") or [])


@dataclass(frozen=True)
class LabelFilter:
    """``labelSelector`` or any of ``orLabelSelectors`` (Velero forbids setting both)."""

    selector: Mapping[str, Any] | None = None
    or_selectors: tuple[Mapping[str, Any], ...] = ()

    @property
    def active(self) -> bool:
        return self.selector is not None or bool(self.or_selectors)

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.selector is not None:
            return selector_matches(self.selector, labels)
        if self.or_selectors:
            return any(selector_matches(s, labels) for s in self.or_selectors)
        return True


@dataclass(frozen=True)
class Selection:
    """Everything a Backup or Restore spec says about which objects it covers."""

    namespaces: NamespaceFilter
    resources: ResourceFilter
    labels: LabelFilter
    include_cluster_resources: bool | None = None

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> Selection:
        def strings(key: str) -> tuple[str, ...]:
            return tuple(str(v) for v in spec.get(key) or [])

        icr = spec.get("includeClusterResources")
        return cls(
            namespaces=NamespaceFilter(strings("includedNamespaces"), strings("excludedNamespaces")),
            resources=ResourceFilter(strings("includedResources"), strings("excludedResources")),
            labels=LabelFilter(spec.get("labelSelector"), tuple(spec.get("orLabelSelectors") or [])),
            include_cluster_resources=icr if isinstance(icr, bool) else None,
        )

    def cluster_scoped_included(self) -> bool:
        """Velero's tri-state: explicit true/false, or (nil) only when every namespace is included."""
        if self.include_cluster_resources is not None:
            return self.include_cluster_resources
        return self.namespaces.all_namespaces and not self.namespaces.excluded

    def matches(self, *, group: str, plural: str, kind: str, namespace: str | None, labels: Mapping[str, str]) -> bool:
        """Whether one object is selected (Namespace objects are handled by the callers)."""
        if not self.resources.matches(group=group, plural=plural, kind=kind):
            return False
        if namespace is None:
            if not self.cluster_scoped_included():
                return False
        elif not self.namespaces.matches(namespace):
            return False
        return self.labels.matches(labels)


def strip_for_restore(obj: Mapping[str, Any], *, keep_status: bool) -> dict[str, Any]:
    """A deep-enough copy of ``obj`` without server-set metadata (and without status unless kept)."""
    out = {k: v for k, v in obj.items() if keep_status or k != "status"}
    metadata = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in SERVER_SET_METADATA}
    out["metadata"] = metadata
    return out
