"""An in-memory Kubernetes object store with the API server's semantics.

One cluster-wide ``resourceVersion`` counter orders every change; creates set ``uid``,
``creationTimestamp`` and ``generation``; a write carrying a stale ``resourceVersion`` is a
:class:`~failover.lab.kube.types.Conflict`; ``generation`` moves only when ``spec`` changes; the
status subresource and the main resource never overwrite each other. Watches replay a bounded
history, so a client resuming from a recent resourceVersion misses nothing, and one resuming from
an expired version gets :class:`~failover.lab.kube.types.Gone` (410), as from a real API server.

Objects are indexed per resource type, so four clusters in one process can each list thousands
of objects with a selector in milliseconds. Watchers are woken through plain events set
synchronously by the mutation, so a mutation never spawns a task.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import deque
from collections.abc import AsyncGenerator
from datetime import UTC, datetime
from typing import Any

from failover.lab.kube import patch as patching
from failover.lab.kube import selectors
from failover.lab.kube import types as kt

logger = logging.getLogger(__name__)

ObjKey = tuple[str, str]  # (namespace or "", name)
_STALE = "the object has been modified; please apply your changes to the latest version and try again"


def _now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _meta(obj: kt.KubeObject) -> dict[str, Any]:
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        raise kt.Invalid("metadata must be an object")
    return meta


def _copy(obj: kt.KubeObject) -> kt.KubeObject:
    copied: kt.KubeObject = patching.clone(obj)
    return copied


def _not_found(rt: kt.ResourceType, name: str) -> kt.NotFound:
    return kt.NotFound(f'{rt.group_resource} "{name}" not found')


class MemoryStore:
    """Implements :class:`failover.lab.kube.types.Store` for one cluster."""

    def __init__(self, *, history: int = 1000) -> None:
        self._objects: dict[str, dict[ObjKey, kt.KubeObject]] = {rt.key: {} for rt in kt.ALL}
        self._last_rv = 0
        # one entry per resourceVersion, so history[i] has rv == oldest + i
        self._history: deque[tuple[int, kt.ResourceType, kt.WatchEvent]] = deque(maxlen=max(1, history))
        self._listeners: list[kt.Listener] = []
        self._waiters: set[asyncio.Event] = set()

    # --- reads -------------------------------------------------------------------------------------
    @property
    def resource_version(self) -> str:
        """The cluster's current resourceVersion (the last change's)."""
        return str(self._last_rv)

    def get(self, rt: kt.ResourceType, namespace: str | None, name: str) -> kt.KubeObject:
        obj = self._table(rt).get(self._key(rt, namespace, name))
        if obj is None:
            raise _not_found(rt, name)
        return _copy(obj)

    def list(
        self,
        rt: kt.ResourceType,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> tuple[list[kt.KubeObject], str]:
        labels = selectors.parse_labels(label_selector)
        fields = selectors.parse_fields(field_selector)
        table = self._table(rt)
        scoped = namespace is not None and rt.namespaced
        out = [
            _copy(table[key])
            for key in sorted(table)
            if (not scoped or key[0] == namespace) and selectors.matches(table[key], labels, fields)
        ]
        return out, str(self._last_rv)

    # --- writes ------------------------------------------------------------------------------------
    def create(self, rt: kt.ResourceType, obj: kt.KubeObject) -> kt.KubeObject:
        obj = _copy(obj)
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise kt.Invalid("metadata must be an object")
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = f"{meta['generateName']}{uuid.uuid4().hex[:5]}"
        name = meta.get("name")
        if not name or not isinstance(name, str):
            raise kt.Invalid(f"{rt.kind}: metadata.name: Required value: name or generateName is required")
        namespace = meta.get("namespace") if rt.namespaced else None
        if rt.namespaced and not namespace:
            raise kt.Invalid(f"{rt.kind} {name}: metadata.namespace: Required value")
        if rt.namespaced and ("", str(namespace)) not in self._table(kt.NAMESPACES):
            raise _not_found(kt.NAMESPACES, str(namespace))
        key = self._key(rt, namespace, name)
        if key in self._table(rt):
            raise kt.AlreadyExists(f'{rt.group_resource} "{name}" already exists')
        obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
        for server_field in ("resourceVersion", "deletionTimestamp"):
            meta.pop(server_field, None)
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=_now(), generation=1)
        if not rt.namespaced:
            meta.pop("namespace", None)
        if rt is kt.NAMESPACES:
            obj.setdefault("status", {"phase": "Active"})
        return self._commit(rt, key, obj, kt.EventType.ADDED)

    def update(
        self, rt: kt.ResourceType, obj: kt.KubeObject, *, subresource: str | None = None
    ) -> kt.KubeObject:
        meta = _meta(obj)
        name = str(meta.get("name", ""))
        key = self._key(rt, meta.get("namespace") if rt.namespaced else None, name)
        current = self._table(rt).get(key)
        if current is None:
            raise _not_found(rt, name)
        self._check_rv(rt, name, meta.get("resourceVersion"), current)
        return self._replace(rt, key, current, _copy(obj), subresource)

    def patch(
        self,
        rt: kt.ResourceType,
        namespace: str | None,
        name: str,
        patch: Any,
        *,
        patch_type: str = "merge",
        subresource: str | None = None,
    ) -> kt.KubeObject:
        key = self._key(rt, namespace, name)
        current = self._table(rt).get(key)
        if current is None:
            raise _not_found(rt, name)
        try:
            if patch_type == "json":
                patched = patching.json_patch(current, patch)
            else:
                patched = patching.merge_patch(current, patch)
        except patching.PatchError as exc:
            raise kt.Invalid(str(exc)) from exc
        if not isinstance(patched, dict) or not isinstance(patched.get("metadata"), dict):
            raise kt.Invalid("the patch removed the object's metadata")
        self._check_rv(rt, name, patched["metadata"].get("resourceVersion"), current)
        return self._replace(rt, key, current, patched, subresource)

    def delete(self, rt: kt.ResourceType, namespace: str | None, name: str) -> kt.KubeObject:
        key = self._key(rt, namespace, name)
        if key not in self._table(rt):
            raise _not_found(rt, name)
        if rt is kt.NAMESPACES:
            for other in kt.ALL:
                if other.namespaced:
                    for obj_key in [k for k in self._table(other) if k[0] == name]:
                        self._remove(other, obj_key)
        return self._remove(rt, key)

    def add_listener(self, listener: kt.Listener) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: kt.Listener) -> None:
        """Stop calling ``listener`` (a stopped controller detaches itself)."""
        if listener in self._listeners:
            self._listeners.remove(listener)

    # --- watch -------------------------------------------------------------------------------------
    async def watch(
        self,
        rt: kt.ResourceType,
        namespace: str | None = None,
        *,
        resource_version: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> AsyncGenerator[kt.WatchEvent, None]:
        labels = selectors.parse_labels(label_selector)
        fields = selectors.parse_fields(field_selector)
        scoped = namespace is not None and rt.namespaced

        def wanted(ev_rt: kt.ResourceType, ev: kt.WatchEvent) -> bool:
            if ev_rt.key != rt.key:
                return False
            if scoped and (ev.object.get("metadata") or {}).get("namespace") != namespace:
                return False
            return selectors.matches(ev.object, labels, fields)

        if not resource_version or resource_version == "0":
            objects, rv = self.list(
                rt, namespace, label_selector=label_selector, field_selector=field_selector
            )
            for obj in objects:
                yield kt.WatchEvent(kt.EventType.ADDED, obj)
            since = int(rv)
        else:
            try:
                since = int(resource_version)
            except ValueError as exc:
                raise kt.Invalid(f"invalid resourceVersion {resource_version!r}") from exc
            self._check_not_expired(since)
        wake = asyncio.Event()
        self._waiters.add(wake)
        try:
            while True:
                wake.clear()
                while since < self._last_rv:
                    self._check_not_expired(since)
                    rv_, ev_rt, ev = self._history[since + 1 - self._history[0][0]]
                    since = rv_
                    if wanted(ev_rt, ev):
                        yield kt.WatchEvent(ev.type, _copy(ev.object))
                await wake.wait()
        finally:
            self._waiters.discard(wake)

    # --- internals ---------------------------------------------------------------------------------
    @staticmethod
    def _key(rt: kt.ResourceType, namespace: str | None, name: str) -> ObjKey:
        return ((namespace or "") if rt.namespaced else "", name)

    def _table(self, rt: kt.ResourceType) -> dict[ObjKey, kt.KubeObject]:
        return self._objects.setdefault(rt.key, {})

    def _check_rv(self, rt: kt.ResourceType, name: str, sent: Any, current: kt.KubeObject) -> None:
        if sent and str(sent) != current["metadata"]["resourceVersion"]:
            raise kt.Conflict(f'Operation cannot be fulfilled on {rt.group_resource} "{name}": {_STALE}')

    def _check_not_expired(self, since: int) -> None:
        oldest = self._history[0][0] if self._history else self._last_rv + 1
        if since < oldest - 1:
            raise kt.Gone(f"too old resource version: {since} ({oldest - 1})")

    def _replace(
        self,
        rt: kt.ResourceType,
        key: ObjKey,
        current: kt.KubeObject,
        new: kt.KubeObject,
        subresource: str | None,
    ) -> kt.KubeObject:
        if subresource == "status":
            merged = _copy(current)
            merged["status"] = new.get("status", {})
        elif subresource == "scale":
            merged = _copy(current)
            merged.setdefault("spec", {})["replicas"] = int((new.get("spec") or {}).get("replicas", 0))
        else:
            merged = new
            meta = merged.setdefault("metadata", {})
            for field in ("uid", "creationTimestamp", "generation", "namespace", "name"):
                if field in current["metadata"]:
                    meta[field] = current["metadata"][field]
            if "status" in rt.subresources:  # the main resource never writes status
                if "status" in current:
                    merged["status"] = _copy(current["status"])
                else:
                    merged.pop("status", None)
            merged["apiVersion"], merged["kind"] = rt.api_version, rt.kind
        merged["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        if merged.get("spec") != current.get("spec"):
            merged["metadata"]["generation"] = int(current["metadata"].get("generation", 1)) + 1
        if merged == current:
            return _copy(current)  # a no-op write does not bump the resourceVersion
        return self._commit(rt, key, merged, kt.EventType.MODIFIED)

    def _commit(
        self, rt: kt.ResourceType, key: ObjKey, obj: kt.KubeObject, kind: kt.EventType
    ) -> kt.KubeObject:
        self._last_rv += 1
        obj["metadata"]["resourceVersion"] = str(self._last_rv)
        self._table(rt)[key] = obj
        self._emit(rt, kt.WatchEvent(kind, _copy(obj)))
        return _copy(obj)

    def _remove(self, rt: kt.ResourceType, key: ObjKey) -> kt.KubeObject:
        obj = self._table(rt).pop(key)
        self._last_rv += 1
        obj["metadata"]["resourceVersion"] = str(self._last_rv)
        self._emit(rt, kt.WatchEvent(kt.EventType.DELETED, _copy(obj)))
        return _copy(obj)

    def _emit(self, rt: kt.ResourceType, event: kt.WatchEvent) -> None:
        self._history.append((self._last_rv, rt, event))
        for wake in self._waiters:
            wake.set()
        for listener in list(self._listeners):
            try:
                listener(rt, event)
            except Exception:  # a broken controller must not fail the client's write
                logger.exception("kube store listener %r failed on %s %s", listener, event.type.value, rt.key)
