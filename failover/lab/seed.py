"""Deploying the workplace into a lab site's cluster, as helmfile would have.

The objects follow the profile exactly (namespace, selector labels on every object and pod
template, workloads with their replica counts), because the product selects what to back up and
restore by those labels: if the seed drifted from the profile, the lab would prove nothing.

* the **active** site gets everything: the platform Secret and ConfigMap, every component's
  workloads, a Service per workload and PVCs for StatefulSets and stateful components;
* a **standby** gets only the ``scale``-strategy components, pre-deployed at 0 replicas (the
  failover scales them up); ``restore``-strategy components stay absent until Velero restores them.
"""

from __future__ import annotations

from typing import Any

from failover.config import models
from failover.lab.kube import types as kt

RECORD_LABEL = "lab.failover.io/record"


def _meta(name: str, namespace: str | None, labels: dict[str, str]) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": dict(labels)}
    if namespace is not None:
        meta["namespace"] = namespace
    return meta


def _workload(component: models.Component, workload: models.Workload, *, replicas: int) -> kt.KubeObject:
    labels = {**component.selector, "app.kubernetes.io/name": workload.name}
    spec: dict[str, Any] = {
        "replicas": replicas,
        "selector": {"matchLabels": labels},
        "template": {
            "metadata": {"labels": labels},
            "spec": {"containers": [{"name": workload.name, "image": f"lab/{component.name}:latest"}]},
        },
    }
    if workload.kind == "StatefulSet":
        spec["serviceName"] = workload.name
    return {"apiVersion": "apps/v1", "kind": workload.kind,
            "metadata": _meta(workload.name, component.namespace, labels), "spec": spec}


def _service(component: models.Component, workload: models.Workload) -> kt.KubeObject:
    labels = {**component.selector, "app.kubernetes.io/name": workload.name}
    return {"apiVersion": "v1", "kind": "Service", "metadata": _meta(workload.name, component.namespace, labels),
            "spec": {"selector": labels, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}


def _pvc(component: models.Component, name: str) -> kt.KubeObject:
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": _meta(name, component.namespace, component.selector),
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}


def _platform(component: models.Component) -> list[tuple[kt.ResourceType, kt.KubeObject]]:
    ns = component.namespace
    return [
        (kt.SECRETS, {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                      "metadata": _meta(f"opendesk-{component.name}-secrets", ns, component.selector),
                      "stringData": {"note": "lab placeholder, not a secret"}}),
        (kt.CONFIGMAPS, {"apiVersion": "v1", "kind": "ConfigMap",
                         "metadata": _meta(f"opendesk-{component.name}-config", ns, component.selector),
                         "data": {"domain": "opendesk.lab", "theme": "ckki"}}),
    ]


def pvc_names(component: models.Component) -> list[str]:
    """The claims the seed gives ``component``: one per StatefulSet, one per workload of a stateful app."""
    names = []
    for workload in component.workloads:
        if workload.kind == "StatefulSet":
            names.append(f"data-{workload.name}-0")
        elif component.stateful:
            names.append(f"{workload.name}-data")
    return names


def workplace_objects(profile: models.WorkplaceProfile, *, active: bool) -> list[tuple[kt.ResourceType, kt.KubeObject]]:
    """Every object a site holds at the start, in creation order (namespaces first)."""
    objects: list[tuple[kt.ResourceType, kt.KubeObject]] = []
    for ns in sorted({c.namespace for c in profile.components}):
        objects.append((kt.NAMESPACES, {"apiVersion": "v1", "kind": "Namespace",
                                        "metadata": _meta(ns, None, {"kubernetes.io/metadata.name": ns})}))
    for component in profile.components:
        deploy = active or component.strategy is models.Strategy.SCALE
        if not deploy:
            continue
        if not component.workloads:
            objects.extend(_platform(component))
        for workload in component.workloads:
            replicas = workload.replicas if active else 0
            rt = kt.STATEFULSETS if workload.kind == "StatefulSet" else kt.DEPLOYMENTS
            objects.append((rt, _workload(component, workload, replicas=replicas)))
            objects.append((kt.SERVICES, _service(component, workload)))
        objects.extend((kt.PVCS, _pvc(component, name)) for name in pvc_names(component))
    return objects


def seed(store: kt.Store, profile: models.WorkplaceProfile, *, active: bool) -> int:
    """Create the site's initial objects (existing ones are left as they are); returns the count."""
    created = 0
    for rt, obj in workplace_objects(profile, active=active):
        try:
            store.create(rt, obj)
            created += 1
        except kt.AlreadyExists:
            continue
    return created
