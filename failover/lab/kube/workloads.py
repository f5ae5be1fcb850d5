"""The workload controller: Deployments and StatefulSets become ready after a delay, as on a node.

Driven by store events. Each workload's wanted replica count is reconciled after ``ready_delay``
seconds: status (replicas, ready, available, updated, observedGeneration, Available condition)
and one Pod per replica (``<workload>-<i>``, Running and Ready). Scaling to zero takes effect at
once. :meth:`WorkloadController.fail` makes a workload unready on purpose (component faults).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from failover.core import tasks
from failover.lab.kube import types as kt
from failover.lab.kube.store import MemoryStore

logger = logging.getLogger(__name__)


def _now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


WORKLOADS = (kt.DEPLOYMENTS, kt.STATEFULSETS)


class WorkloadController:
    def __init__(self, store: MemoryStore, *, ready_delay: float = 1.0, nodes: int = 3) -> None:
        self.store = store
        self.ready_delay = ready_delay
        self.nodes = nodes
        self.failed: set[tuple[str, str]] = set()
        self._pending: dict[tuple[str, str, str], asyncio.Task[None]] = {}
        self._running = False

    async def start(self) -> None:
        self._running = True
        for i in range(self.nodes):
            name = f"node-{i}"
            try:
                self.store.create(
                    kt.NODES,
                    {
                        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
                        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
                    },
                )
            except kt.AlreadyExists:
                pass
        self.store.add_listener(self._on_event)
        for rt in WORKLOADS:
            for obj in self.store.list(rt)[0]:
                self._schedule(rt, obj)

    async def stop(self) -> None:
        self._running = False
        self.store.remove_listener(self._on_event)
        await tasks.cancel_and_wait(*self._pending.values())
        self._pending.clear()

    def fail(self, namespace: str, name: str) -> None:
        self.failed.add((namespace, name))
        self._resync(namespace, name)

    def recover(self, namespace: str, name: str) -> None:
        self.failed.discard((namespace, name))
        self._resync(namespace, name)

    def _resync(self, namespace: str, name: str) -> None:
        for rt in WORKLOADS:
            try:
                self._schedule(rt, self.store.get(rt, namespace, name), immediate=True)
            except kt.NotFound:
                continue

    def _on_event(self, rt: kt.ResourceType, event: kt.WatchEvent) -> None:
        if rt not in WORKLOADS or not self._running:
            return
        if event.type is kt.EventType.DELETED:
            self._forget(rt, event.object)
        else:
            self._schedule(rt, event.object)

    def _forget(self, rt: kt.ResourceType, obj: kt.KubeObject) -> None:
        """A deleted workload's Pods go too, as the garbage collector removes owned objects."""
        meta = obj["metadata"]
        key = (rt.key, str(meta.get("namespace")), str(meta["name"]))
        pending = self._pending.pop(key, None)
        if pending is not None:
            pending.cancel()
        self._pending[key] = tasks.create_guarded_task(self._delete_pods(obj), name=f"workload gc {key[2]}")

    async def _delete_pods(self, owner: kt.KubeObject) -> None:
        meta = owner["metadata"]
        for pod in self._owned_pods(owner):
            try:
                self.store.delete(kt.PODS, meta["namespace"], pod)
            except kt.NotFound:
                continue

    def _owned_pods(self, owner: kt.KubeObject) -> set[str]:
        meta = owner["metadata"]
        return {
            p["metadata"]["name"]
            for p in self.store.list(kt.PODS, meta["namespace"])[0]
            if any(r.get("uid") == meta["uid"] for r in p["metadata"].get("ownerReferences", []))
        }

    def _schedule(self, rt: kt.ResourceType, obj: kt.KubeObject, *, immediate: bool = False) -> None:
        meta = obj["metadata"]
        key = (rt.key, str(meta.get("namespace")), str(meta["name"]))
        want = int((obj.get("spec") or {}).get("replicas", 1))
        status = obj.get("status") or {}
        failed = (key[1], key[2]) in self.failed
        ready_target = 0 if failed else want
        if (
            status.get("readyReplicas", -1) == ready_target
            and status.get("replicas", -1) == want
            and status.get("observedGeneration") == meta.get("generation")
            and not immediate
        ):
            return  # converged (our own status write lands here too)
        if key in self._pending and not self._pending[key].done():
            self._pending[key].cancel()
        delay = 0.0 if (immediate or ready_target == 0) else self.ready_delay
        self._pending[key] = tasks.create_guarded_task(
            self._reconcile(rt, key, delay), name=f"workload {key[2]}"
        )

    async def _reconcile(self, rt: kt.ResourceType, key: tuple[str, str, str], delay: float) -> None:
        if delay:
            await asyncio.sleep(delay)
        _, namespace, name = key
        try:
            obj = self.store.get(rt, namespace, name)
        except kt.NotFound:
            return
        want = int((obj.get("spec") or {}).get("replicas", 1))
        ready = 0 if (namespace, name) in self.failed else want
        status: dict[str, object] = {
            "replicas": want,
            "readyReplicas": ready,
            "availableReplicas": ready,
            "updatedReplicas": want,
            "currentReplicas": want,
            "observedGeneration": obj["metadata"].get("generation", 1),
        }
        if rt == kt.DEPLOYMENTS:
            available = ready >= want
            reason = "MinimumReplicasAvailable" if available else "MinimumReplicasUnavailable"
            status["conditions"] = [
                {
                    "type": "Available",
                    "status": "True" if available else "False",
                    "reason": reason,
                    "lastTransitionTime": _now(),
                }
            ]
        self.store.patch(rt, namespace, name, {"status": status}, subresource="status")
        self._pods(obj, want, ready)

    def _pods(self, owner: kt.KubeObject, want: int, ready: int) -> None:
        meta = owner["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        labels = (
            ((owner.get("spec") or {}).get("template") or {}).get("metadata", {}).get("labels")
            or meta.get("labels")
            or {}
        )
        existing = self._owned_pods(owner)
        wanted = {f"{name}-{i}" for i in range(want)}
        for pod in sorted(existing - wanted):
            self.store.delete(kt.PODS, namespace, pod)
        for i in range(want):
            pod_name = f"{name}-{i}"
            is_ready = "True" if i < ready else "False"
            status = {"phase": "Running", "conditions": [{"type": "Ready", "status": is_ready}]}
            if pod_name not in existing:
                self.store.create(
                    kt.PODS,
                    {
                        "metadata": {
                            "name": pod_name,
                            "namespace": namespace,
                            "labels": dict(labels),
                            "ownerReferences": [
                                {
                                    "apiVersion": owner["apiVersion"],
                                    "kind": owner["kind"],
                                    "name": name,
                                    "uid": meta["uid"],
                                    "controller": True,
                                }
                            ],
                        },
                        "spec": {
                            "nodeName": f"node-{i % max(1, self.nodes)}",
                            "containers": [{"name": "app", "image": f"lab/{name}:latest"}],
                        },
                        "status": status,
                    },
                )
            else:
                self.store.patch(kt.PODS, namespace, pod_name, {"status": status}, subresource="status")
