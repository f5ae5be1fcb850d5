"""An in-memory Kubernetes object store with the API server's semantics.

One cluster-wide ``resourceVersion`` counter orders every change; creates set ``uid``,
``creationTimestamp`` and ``generation``; a write carrying a stale ``resourceVersion`` is a
:class:`~failover.lab.kube.types.Conflict`; ``generation`` moves only when ``spec`` changes; the
status subresource and the main resource never overwrite each other. Watches replay a bounded
history, so a client resuming from a recent resourceVersion misses nothing, and one resuming from
an expired version gets :class:`~failover.lab.kube.types.Gone` (410), as from a real API server.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import uuid
from collections import deque
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from failover.lab.kube import patch as patching
from failover.lab.kube import selectors
from failover.lab.kube import types as kt

Key = tuple[str, str, str]  # (resource key, namespace or "", name)


def _now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _meta(obj: kt.KubeObject) -> dict[str, Any]:
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        raise kt.Invalid("metadata must be an object")
    return meta


class MemoryStore:
    """Implements :class:`failover.lab.kube.types.Store` for one cluster."""

    def __init__(self, *, history: int = 1000) -> None:
        self._objects: dict[Key, kt.KubeObject] = {}
        self._rv = itertools.count(1)
        self._last_rv = 0
        self._history: deque[tuple[int, kt.ResourceType, kt.WatchEvent]] = deque(maxlen=history)
        self._listeners: list[kt.Listener] = []
        self._changed = asyncio.Condition() if _has_loop() else None

    # --- reads -------------------------------------------------------------------------------------
    @property
    def resource_version(self) -> str:
        return str(self._last_rv)

    def get(self, rt: kt.ResourceType, namespace: str | None, name: str) -> kt.KubeObject:
        obj = self._objects.get(self._key(rt, namespace, name))
        if obj is None:
            raise kt.NotFound(f'{rt.group_resource} "{name}" not found')
        return copy.deepcopy(obj)

    def list(self, rt: kt.ResourceType, namespace: str | None = None, *, label_selector: str | None = None,
             field_selector: str | None = None) -> tuple[list[kt.KubeObject], str]:
        labels = selectors.parse_labels(label_selector)
        fields = selectors.parse_fields(field_selector)
        out = [copy.deepcopy(obj) for (res, ns, _), obj in sorted(self._objects.items())
               if res == rt.key and (namespace is None or not rt.namespaced or ns == namespace)
               and selectors.matches(obj, labels, fields)]
        return out, str(self._last_rv)

    # --- writes ------------------------------------------------------------------------------------
    def create(self, rt: kt.ResourceType, obj: kt.KubeObject) -> kt.KubeObject:
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = f"{meta['generateName']}{uuid.uuid4().hex[:5]}"
        name = meta.get("name")
        if not name:
            raise kt.Invalid(f"{rt.kind}: metadata.name is required")
        namespace = meta.get("namespace") if rt.namespaced else None
        if rt.namespaced and not namespace:
            raise kt.Invalid(f"{rt.kind} {name}: metadata.namespace is required")
        if rt.namespaced and self._key(kt.NAMESPACES, None, str(namespace)) not in self._objects:
            raise kt.NotFound(f'namespaces "{namespace}" not found')
        key = self._key(rt, namespace, name)
        if key in self._objects:
            raise kt.AlreadyExists(f'{rt.group_resource} "{name}" already exists')
        obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=_now(), generation=1)
        if not rt.namespaced:
            meta.pop("namespace", None)
        if rt is kt.NAMESPACES:
            obj.setdefault("status", {"phase": "Active"})
        return self._commit(rt, key, obj, kt.EventType.ADDED)

    def update(self, rt: kt.ResourceType, obj: kt.KubeObject, *, subresource: str | None = None) -> kt.KubeObject:
        meta = _meta(obj)
        namespace = meta.get("namespace") if rt.namespaced else None
        key = self._key(rt, namespace, str(meta.get("name", "")))
        current = self._objects.get(key)
        if current is None:
            raise kt.NotFound(f'{rt.group_resource} "{meta.get("name")}" not found')
        sent_rv = meta.get("resourceVersion")
        if sent_rv and str(sent_rv) != current["metadata"]["resourceVersion"]:
            raise kt.Conflict(f'Operation cannot be fulfilled on {rt.group_resource} "{meta["name"]}": '
                              "the object has been modified; please apply your changes to the latest version "
                              "and try again")
        return self._replace(rt, key, current, copy.deepcopy(obj), subresource)

    def patch(self, rt: kt.ResourceType, namespace: str | None, name: str, patch: Any, *,
              patch_type: str = "merge", subresource: str | None = None) -> kt.KubeObject:
        key = self._key(rt, namespace, name)
        current = self._objects.get(key)
        if current is None:
            raise kt.NotFound(f'{rt.group_resource} "{name}" not found')
        try:
            if patch_type == "json":
                patched = patching.json_patch(current, patch)
            else:
                patched = patching.merge_patch(current, patch)
        except patching.PatchError as exc:
            raise kt.Invalid(str(exc)) from exc
        sent_rv = (patched.get("metadata") or {}).get("resourceVersion")
        if sent_rv and str(sent_rv) != current["metadata"]["resourceVersion"]:
            raise kt.Conflict(f'Operation cannot be fulfilled on {rt.group_resource} "{name}": '
                              "the object has been modified")
        return self._replace(rt, key, current, patched, subresource)

    def delete(self, rt: kt.ResourceType, namespace: str | None, name: str) -> kt.KubeObject:
        key = self._key(rt, namespace, name)
        obj = self._objects.get(key)
        if obj is None:
            raise kt.NotFound(f'{rt.group_resource} "{name}" not found')
        if rt is kt.NAMESPACES:
            for other in [k for k in self._objects if k[1] == name and k[0] != kt.NAMESPACES.key]:
                other_rt = kt.BY_KEY[other[0]]
                self._remove(other_rt, other)
        return self._remove(rt, key)

    def add_listener(self, listener: kt.Listener) -> None:
        self._listeners.append(listener)

    # --- watch -------------------------------------------------------------------------------------
    async def watch(self, rt: kt.ResourceType, namespace: str | None = None, *, resource_version: str | None = None,
                    label_selector: str | None = None,
                    field_selector: str | None = None) -> AsyncIterator[kt.WatchEvent]:
        labels = selectors.parse_labels(label_selector)
        fields = selectors.parse_fields(field_selector)

        def wanted(ev_rt: kt.ResourceType, ev: kt.WatchEvent) -> bool:
            meta = ev.object.get("metadata") or {}
            return ev_rt.key == rt.key and (namespace is None or not rt.namespaced
                                            or meta.get("namespace") == namespace) \
                and selectors.matches(ev.object, labels, fields)

        if not resource_version or resource_version == "0":
            objects, rv = self.list(rt, namespace, label_selector=label_selector, field_selector=field_selector)
            for obj in objects:
                yield kt.WatchEvent(kt.EventType.ADDED, obj)
            since = int(rv)
        else:
            since = int(resource_version)
            oldest = self._history[0][0] if self._history else self._last_rv + 1
            if since < oldest - 1 and since < self._last_rv:
                raise kt.Gone(f"too old resource version: {since} ({oldest - 1})")
        condition = self._condition()
        while True:
            for rv_, ev_rt, ev in list(self._history):
                if rv_ > since:
                    since = rv_
                    if wanted(ev_rt, ev):
                        yield kt.WatchEvent(ev.type, copy.deepcopy(ev.object))
            async with condition:
                if self._last_rv <= since:
                    await condition.wait()

    # --- internals ---------------------------------------------------------------------------------
    @staticmethod
    def _key(rt: kt.ResourceType, namespace: str | None, name: str) -> Key:
        return (rt.key, (namespace or "") if rt.namespaced else "", name)

    def _condition(self) -> asyncio.Condition:
        if self._changed is None:
            self._changed = asyncio.Condition()
        return self._changed

    def _replace(self, rt: kt.ResourceType, key: Key, current: kt.KubeObject, new: kt.KubeObject,
                 subresource: str | None) -> kt.KubeObject:
        merged = copy.deepcopy(current)
        if subresource == "status":
            merged["status"] = new.get("status", {})
        elif subresource == "scale":
            merged.setdefault("spec", {})["replicas"] = int((new.get("spec") or {}).get("replicas", 0))
        else:
            keep_status = "status" in rt.subresources
            status = merged.get("status")
            merged = new
            meta = merged.setdefault("metadata", {})
            for field in ("uid", "creationTimestamp", "generation", "namespace", "name"):
                if field in current["metadata"]:
                    meta[field] = current["metadata"][field]
            if keep_status:
                if status is None:
                    merged.pop("status", None)
                else:
                    merged["status"] = status
            merged["apiVersion"], merged["kind"] = rt.api_version, rt.kind
        if merged.get("spec") != current.get("spec"):
            merged["metadata"]["generation"] = int(current["metadata"].get("generation", 1)) + 1
        if merged == current:
            return copy.deepcopy(current)  # a no-op write does not bump the resourceVersion
        return self._commit(rt, key, merged, kt.EventType.MODIFIED)

    def _commit(self, rt: kt.ResourceType, key: Key, obj: kt.KubeObject, kind: kt.EventType) -> kt.KubeObject:
        self._last_rv = next(self._rv)
        obj["metadata"]["resourceVersion"] = str(self._last_rv)
        self._objects[key] = obj
        self._emit(rt, kt.WatchEvent(kind, copy.deepcopy(obj)))
        return copy.deepcopy(obj)

    def _remove(self, rt: kt.ResourceType, key: Key) -> kt.KubeObject:
        obj = self._objects.pop(key)
        self._last_rv = next(self._rv)
        obj["metadata"]["resourceVersion"] = str(self._last_rv)
        self._emit(rt, kt.WatchEvent(kt.EventType.DELETED, copy.deepcopy(obj)))
        return copy.deepcopy(obj)

    def _emit(self, rt: kt.ResourceType, event: kt.WatchEvent) -> None:
        self._history.append((self._last_rv, rt, event))
        for listener in list(self._listeners):
            listener(rt, event)
        if self._changed is not None:
            condition = self._changed

            async def wake() -> None:
                async with condition:
                    condition.notify_all()

            try:
                asyncio.get_running_loop().create_task(wake())
            except RuntimeError:
                pass


def _has_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True

