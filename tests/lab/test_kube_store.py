"""The in-memory store keeps the API server's semantics (no HTTP involved here)."""

from __future__ import annotations

import asyncio
import time

import pytest

from failover.lab.kube import types as kt
from failover.lab.kube.store import MemoryStore
from failover.lab.kube.workloads import WorkloadController


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
    s.patch(
        kt.DEPLOYMENTS,
        "od",
        "web",
        [{"op": "replace", "path": "/spec/replicas", "value": 0}],
        patch_type="json",
    )
    assert s.get(kt.DEPLOYMENTS, "od", "web")["spec"]["replicas"] == 0
    with pytest.raises(kt.Invalid):
        s.patch(
            kt.DEPLOYMENTS,
            "od",
            "web",
            [{"op": "test", "path": "/spec/replicas", "value": 9}],
            patch_type="json",
        )


def test_selectors() -> None:
    s = MemoryStore()
    s.create(kt.NAMESPACES, ns("od"))
    s.create(kt.DEPLOYMENTS, deploy("a", app="files", tier="web"))
    s.create(kt.DEPLOYMENTS, deploy("b", app="chat"))
    s.create(kt.DEPLOYMENTS, deploy("c"))

    def names(sel: str | None = None, fsel: str | None = None) -> list[str]:
        return [
            o["metadata"]["name"]
            for o in s.list(kt.DEPLOYMENTS, "od", label_selector=sel, field_selector=fsel)[0]
        ]

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


def test_generate_name_and_no_op_writes_keep_the_resource_version() -> None:
    s = MemoryStore()
    s.create(kt.NAMESPACES, ns("od"))
    a = s.create(kt.CONFIGMAPS, {"metadata": {"generateName": "cfg-", "namespace": "od"}, "data": {"k": "v"}})
    b = s.create(kt.CONFIGMAPS, {"metadata": {"generateName": "cfg-", "namespace": "od"}})
    assert a["metadata"]["name"].startswith("cfg-") and a["metadata"]["name"] != b["metadata"]["name"]
    same = s.patch(kt.CONFIGMAPS, "od", a["metadata"]["name"], {"data": {"k": "v"}})
    assert same["metadata"]["resourceVersion"] == a["metadata"]["resourceVersion"] != s.resource_version
    with pytest.raises(kt.Invalid):
        s.create(kt.CONFIGMAPS, {"metadata": {"namespace": "od"}})


def test_listeners_see_every_mutation_cannot_break_writes_and_can_detach() -> None:
    s = MemoryStore()
    seen: list[tuple[str, str]] = []

    def record(rt: kt.ResourceType, ev: kt.WatchEvent) -> None:
        seen.append((rt.key, ev.type.value))

    def broken(rt: kt.ResourceType, ev: kt.WatchEvent) -> None:
        raise RuntimeError("controller bug")

    s.add_listener(broken)
    s.add_listener(record)
    s.create(kt.NAMESPACES, ns("od"))
    s.create(kt.DEPLOYMENTS, deploy("web"))
    s.remove_listener(record)
    s.delete(kt.DEPLOYMENTS, "od", "web")
    assert seen == [("namespaces", "ADDED"), ("deployments.apps", "ADDED")]
    assert s.list(kt.DEPLOYMENTS)[0] == []


async def test_a_watcher_that_falls_out_of_history_gets_gone() -> None:
    s = MemoryStore(history=3)
    s.create(kt.NAMESPACES, ns("od"))
    stream = s.watch(kt.CONFIGMAPS, "od", resource_version=s.resource_version)
    s.create(kt.CONFIGMAPS, {"metadata": {"name": "c0", "namespace": "od"}})
    first = await asyncio.wait_for(stream.__anext__(), 1)
    assert first.object["metadata"]["name"] == "c0"
    for i in range(1, 6):  # the consumer is paused while five more changes arrive
        s.create(kt.CONFIGMAPS, {"metadata": {"name": f"c{i}", "namespace": "od"}})
    with pytest.raises(kt.Gone):
        await asyncio.wait_for(stream.__anext__(), 1)


async def test_watch_filters_by_type_namespace_and_selector() -> None:
    s = MemoryStore()
    for name in ("od", "other"):
        s.create(kt.NAMESPACES, ns(name))
    start = s.resource_version
    s.create(kt.DEPLOYMENTS, deploy("x", app="a"))
    s.create(kt.CONFIGMAPS, {"metadata": {"name": "x", "namespace": "od", "labels": {"app": "a"}}})
    s.create(kt.DEPLOYMENTS, {"metadata": {"name": "y", "namespace": "other", "labels": {"app": "a"}}})
    s.create(kt.DEPLOYMENTS, deploy("z", app="b"))
    stream = s.watch(kt.DEPLOYMENTS, "od", resource_version=start, label_selector="app=a")
    got = await asyncio.wait_for(stream.__anext__(), 1)
    assert got.object["metadata"]["name"] == "x"
    s.create(kt.DEPLOYMENTS, deploy("w", app="a"))
    got = await asyncio.wait_for(stream.__anext__(), 1)
    assert got.object["metadata"]["name"] == "w"
    await stream.aclose()


def test_listing_2000_objects_with_a_selector_takes_milliseconds() -> None:
    s = MemoryStore()
    s.create(kt.NAMESPACES, ns("od"))
    for i in range(2000):
        s.create(
            kt.PODS,
            {
                "metadata": {
                    "name": f"p{i:04}",
                    "namespace": "od",
                    "labels": {"app": f"a{i % 20}", "tier": "web"},
                },
                "spec": {"containers": [{"name": "c", "image": "i"}]},
                "status": {"phase": "Running"},
            },
        )
    for i in range(500):
        s.create(kt.CONFIGMAPS, {"metadata": {"name": f"c{i}", "namespace": "od"}})
    started = time.perf_counter()
    items, _ = s.list(
        kt.PODS, "od", label_selector="app in (a3),tier=web", field_selector="status.phase=Running"
    )
    elapsed = time.perf_counter() - started
    assert len(items) == 100 and elapsed < 0.05, elapsed


def test_selector_and_patch_errors_are_invalid() -> None:
    s = MemoryStore()
    s.create(kt.NAMESPACES, ns("od"))
    s.create(kt.CONFIGMAPS, {"metadata": {"name": "c", "namespace": "od"}, "data": {"a/b": "1", "l": "x"}})
    with pytest.raises(kt.Invalid):
        s.list(kt.CONFIGMAPS, "od", label_selector="app in (x")
    with pytest.raises(kt.Invalid):
        s.list(kt.CONFIGMAPS, "od", field_selector="status.phase")
    for bad in (
        [{"op": "remove", "path": "/data/missing"}],
        [{"op": "frobnicate", "path": "/data"}],
        {"op": "add"},
    ):
        with pytest.raises(kt.Invalid):
            s.patch(kt.CONFIGMAPS, "od", "c", bad, patch_type="json")
    done = s.patch(
        kt.CONFIGMAPS,
        "od",
        "c",
        [
            {"op": "test", "path": "/data/a~1b", "value": "1"},
            {"op": "add", "path": "/metadata/finalizers", "value": []},
            {"op": "add", "path": "/metadata/finalizers/-", "value": "f"},
        ],
        patch_type="json",
    )
    assert done["metadata"]["finalizers"] == ["f"]


async def test_workload_controller_waits_ready_delay_and_detaches_on_stop() -> None:
    s = MemoryStore()
    controller = WorkloadController(s, ready_delay=0.2, nodes=2)
    await controller.start()
    assert [n["metadata"]["name"] for n in s.list(kt.NODES)[0]] == ["node-0", "node-1"]
    s.create(kt.NAMESPACES, ns("od"))
    s.create(
        kt.STATEFULSETS,
        {
            "metadata": {"name": "db", "namespace": "od"},
            "spec": {"replicas": 2, "template": {"metadata": {"labels": {"app": "db"}}}},
        },
    )
    await asyncio.sleep(0.05)
    assert "status" not in s.get(kt.STATEFULSETS, "od", "db")  # not before ready_delay
    await asyncio.sleep(0.3)
    status = s.get(kt.STATEFULSETS, "od", "db")["status"]
    assert status["readyReplicas"] == 2 and status["observedGeneration"] == 1 and "conditions" not in status
    assert [p["metadata"]["labels"] for p in s.list(kt.PODS, "od")[0]] == [{"app": "db"}, {"app": "db"}]
    await controller.stop()
    s.patch(kt.STATEFULSETS, "od", "db", {"spec": {"replicas": 3}})
    await asyncio.sleep(0.3)
    assert s.get(kt.STATEFULSETS, "od", "db")["status"]["replicas"] == 2  # nobody reconciles after stop
