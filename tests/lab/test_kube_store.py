"""The in-memory store keeps the API server's semantics (no HTTP involved here)."""

from __future__ import annotations

import asyncio

import pytest

from failover.lab.kube import types as kt
from failover.lab.kube.store import MemoryStore


def ns(name: str) -> kt.KubeObject:
    return {"metadata": {"name": name}}


def deploy(name: str, replicas: int = 1, **labels: str) -> kt.KubeObject:
    return {"metadata": {"name": name, "namespace": "od", "labels": labels}, "spec": {"replicas": replicas}}


def test_create_sets_server_fields_and_rejects_duplicates_and_missing_namespace() -> None:
    s = MemoryStore()
    with pytest.raises(kt.NotFound):
        s.create(kt.DEPLOYMENTS, deploy("web"))
    s.create(kt.NAMESPACES, ns("od"))
    obj = s.create(kt.DEPLOYMENTS, deploy("web"))
    assert obj["metadata"]["uid"] and obj["metadata"]["generation"] == 1 and obj["kind"] == "Deployment"
    assert obj["metadata"]["creationTimestamp"].endswith("Z")
    with pytest.raises(kt.AlreadyExists):
        s.create(kt.DEPLOYMENTS, deploy("web"))


def test_stale_resource_version_conflicts_and_generation_tracks_spec() -> None:
    s = MemoryStore()
    s.create(kt.NAMESPACES, ns("od"))
    v1 = s.create(kt.DEPLOYMENTS, deploy("web"))
    v2 = s.patch(kt.DEPLOYMENTS, "od", "web", {"spec": {"replicas": 3}})
    assert v2["metadata"]["generation"] == 2
    assert int(v2["metadata"]["resourceVersion"]) > int(v1["metadata"]["resourceVersion"])
    with pytest.raises(kt.Conflict):
        s.update(kt.DEPLOYMENTS, v1)
    v3 = s.patch(kt.DEPLOYMENTS, "od", "web", {"status": {"readyReplicas": 3}}, subresource="status")
    assert v3["metadata"]["generation"] == 2 and v3["status"]["readyReplicas"] == 3
    v4 = s.update(kt.DEPLOYMENTS, {**v3, "status": {"readyReplicas": 0}})  # main resource keeps status
    assert v4["status"]["readyReplicas"] == 3
    s.patch(kt.DEPLOYMENTS, "od", "web", [{"op": "replace", "path": "/spec/replicas", "value": 0}], patch_type="json")
    assert s.get(kt.DEPLOYMENTS, "od", "web")["spec"]["replicas"] == 0
    with pytest.raises(kt.Invalid):
        s.patch(kt.DEPLOYMENTS, "od", "web", [{"op": "test", "path": "/spec/replicas", "value": 9}], patch_type="json")


def test_selectors() -> None:
    s = MemoryStore()
    s.create(kt.NAMESPACES, ns("od"))
    s.create(kt.DEPLOYMENTS, deploy("a", app="files", tier="web"))
    s.create(kt.DEPLOYMENTS, deploy("b", app="chat"))
    s.create(kt.DEPLOYMENTS, deploy("c"))

    def names(sel: str | None = None, fsel: str | None = None) -> list[str]:
        return [o["metadata"]["name"] for o in s.list(kt.DEPLOYMENTS, "od", label_selector=sel, field_selector=fsel)[0]]

    assert names("app=files") == ["a"] and names("app!=files") == ["b", "c"]
    assert names("app in (files, chat)") == ["a", "b"] and names("app notin (files)") == ["b", "c"]
    assert names("app") == ["a", "b"] and names("!app") == ["c"] and names("app,tier=web") == ["a"]
    assert names(fsel="metadata.name=b") == ["b"] and names(fsel="metadata.name!=b") == ["a", "c"]


async def test_watch_resumes_from_a_resource_version_and_expires_old_ones() -> None:
    s = MemoryStore(history=5)
    s.create(kt.NAMESPACES, ns("od"))
    first = s.create(kt.DEPLOYMENTS, deploy("web"))
    rv = first["metadata"]["resourceVersion"]
    events: list[tuple[str, str]] = []

    async def consume() -> None:
        async for ev in s.watch(kt.DEPLOYMENTS, "od", resource_version=rv):
            events.append((ev.type.value, ev.object["metadata"]["name"]))
            if len(events) == 3:
                return

    task = asyncio.create_task(consume())
    await asyncio.sleep(0)
    s.patch(kt.DEPLOYMENTS, "od", "web", {"spec": {"replicas": 2}})
    s.create(kt.DEPLOYMENTS, deploy("api"))
    s.delete(kt.DEPLOYMENTS, "od", "web")
    await asyncio.wait_for(task, 2)
    assert events == [("MODIFIED", "web"), ("ADDED", "api"), ("DELETED", "web")]
    for i in range(10):
        s.create(kt.CONFIGMAPS, {"metadata": {"name": f"c{i}", "namespace": "od"}})
    with pytest.raises(kt.Gone):
        async for _ in s.watch(kt.DEPLOYMENTS, "od", resource_version=rv):
            break


def test_deleting_a_namespace_deletes_its_objects() -> None:
    s = MemoryStore()
    s.create(kt.NAMESPACES, ns("od"))
    s.create(kt.DEPLOYMENTS, deploy("web"))
    s.delete(kt.NAMESPACES, None, "od")
    assert s.list(kt.DEPLOYMENTS)[0] == []
