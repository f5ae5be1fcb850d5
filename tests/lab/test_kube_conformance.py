"""Conformance of the lab's Kubernetes API emulator, driven through kubernetes-asyncio's typed clients.

Each test asserts one documented behaviour of the real API server that the failover relies on;
most would fail against kmock (no resourceVersion, selectors, /scale or 201), the reason the lab
has its own emulator. Raw HTTP (aiohttp) is used only where a typed client hides the wire.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from kubernetes_asyncio import client, watch
from kubernetes_asyncio.client.rest import ApiException

from failover.lab.kube.cluster import Cluster
from tests.lab.kubeauth import Credentials

TIMEOUT = aiohttp.ClientTimeout(total=10)


@pytest.fixture
async def http(kube: Cluster, lab_credentials: Credentials) -> AsyncIterator[aiohttp.ClientSession]:
    connector = aiohttp.TCPConnector(ssl=lab_credentials.ca.client_context())
    async with aiohttp.ClientSession(base_url=kube.api.url, timeout=TIMEOUT, connector=connector,
                                     headers={"Authorization": f"Bearer {lab_credentials.token}"}) as session:
        yield session


def deployment(name: str, replicas: int = 1, **labels: str) -> client.V1Deployment:
    sel = {"app": name}
    return client.V1Deployment(
        metadata=client.V1ObjectMeta(name=name, labels={**sel, **labels}),
        spec=client.V1DeploymentSpec(
            replicas=replicas,
            selector=client.V1LabelSelector(match_labels=sel),
            template=client.V1PodTemplateSpec(metadata=client.V1ObjectMeta(labels=sel)),
        ),
    )


def cm(name: str, **labels: str) -> client.V1ConfigMap:
    return client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name, labels=labels or None))


async def ns(api: client.ApiClient, name: str = "od") -> None:
    await client.CoreV1Api(api).create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))


def body_of(exc: pytest.ExceptionInfo[ApiException]) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(exc.value.body or b"{}")
    return parsed


async def eventually(check: Any, *, timeout: float = 3.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await check()
        if result or asyncio.get_running_loop().time() > deadline:
            return result
        await asyncio.sleep(0.02)


# --- discovery ---------------------------------------------------------------------------------------


async def test_version_and_group_discovery(kube_client: client.ApiClient) -> None:
    info = await client.VersionApi(kube_client).get_code()
    assert info.major == "1" and info.git_version.startswith("v1.")
    groups = await client.ApisApi(kube_client).get_api_versions()
    assert {"apps", "velero.io", "cluster.x-k8s.io"} <= {g.name for g in groups.groups}
    capi = next(g for g in groups.groups if g.name == "cluster.x-k8s.io")
    assert capi.preferred_version.version == "v1beta2" and len(capi.versions) == 2
    core = await client.CoreApi(kube_client).get_api_versions()
    assert core.versions == ["v1"]
    apps = await client.AppsV1Api(kube_client).get_api_resources()
    names = {r.name: r for r in apps.resources}
    assert {"deployments", "deployments/scale", "deployments/status", "statefulsets/scale"} <= set(names)
    assert names["deployments/scale"].kind == "Scale" and names["deployments"].namespaced
    core_res = await client.CoreV1Api(kube_client).get_api_resources()
    by_name = {r.name: r for r in core_res.resources}
    assert not by_name["namespaces"].namespaced and "watch" in by_name["pods"].verbs


async def test_health_probes_and_unknown_paths(http: aiohttp.ClientSession) -> None:
    for probe in ("/readyz", "/livez", "/healthz"):
        async with http.get(probe) as resp:
            assert resp.status == 200 and await resp.text() == "ok"
    async with http.get("/apis/velero.io/v1") as resp:
        assert {r["name"] for r in (await resp.json())["resources"]} >= {"backups", "restores/status"}
    for missing in ("/apis/velero.io/v9", "/apis/apps/v1/widgets", "/api/v1/namespaces/x/pods/p/exec"):
        async with http.get(missing) as resp:
            assert resp.status == 404 and (await resp.json())["reason"] == "NotFound"


# --- create, errors ----------------------------------------------------------------------------------


async def test_create_is_201_with_server_fields(kube_client: client.ApiClient) -> None:
    await ns(kube_client)
    apps = client.AppsV1Api(kube_client)
    created, status, _ = await apps.create_namespaced_deployment_with_http_info("od", deployment("web"))
    assert status == 201
    meta = created.metadata
    assert meta.uid and meta.generation == 1 and int(meta.resource_version) > 0
    raw: Any = await apps.read_namespaced_deployment("web", "od", _preload_content=False)
    stamp = json.loads(await raw.read())["metadata"]["creationTimestamp"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", stamp)
    core = client.CoreV1Api(kube_client)
    generated = await core.create_namespaced_config_map(
        "od", client.V1ConfigMap(metadata=client.V1ObjectMeta(generate_name="cfg-"))
    )
    assert generated.metadata.name.startswith("cfg-") and len(generated.metadata.name) > 4


async def test_duplicate_create_is_409_already_exists(kube_client: client.ApiClient) -> None:
    await ns(kube_client)
    apps = client.AppsV1Api(kube_client)
    await apps.create_namespaced_deployment("od", deployment("web"))
    with pytest.raises(ApiException) as info:
        await apps.create_namespaced_deployment("od", deployment("web"))
    assert info.value.status == 409 and body_of(info)["reason"] == "AlreadyExists"


async def test_not_found_is_the_servers_status_object(kube_client: client.ApiClient) -> None:
    await ns(kube_client)
    with pytest.raises(ApiException) as info:
        await client.AppsV1Api(kube_client).read_namespaced_deployment("web", "od")
    assert info.value.status == 404
    assert body_of(info) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'deployments.apps "web" not found',
        "reason": "NotFound",
        "details": {"name": "web", "group": "apps", "kind": "deployments"},
        "code": 404,
    }


async def test_create_into_a_missing_namespace_is_404(kube_client: client.ApiClient) -> None:
    with pytest.raises(ApiException) as info:
        await client.CoreV1Api(kube_client).create_namespaced_config_map("nowhere", cm("c"))
    assert info.value.status == 404 and body_of(info)["message"] == 'namespaces "nowhere" not found'


async def test_body_not_fitting_the_url_is_422(
    http: aiohttp.ClientSession, kube_client: client.ApiClient
) -> None:
    await ns(kube_client)
    wrong_kind = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}}
    async with http.post("/api/v1/namespaces/od/configmaps", json=wrong_kind) as resp:
        assert resp.status == 422 and (await resp.json())["reason"] == "Invalid"
    wrong_group = {"apiVersion": "apps/v2", "kind": "Deployment", "metadata": {"name": "x"}}
    async with http.post("/apis/apps/v1/namespaces/od/deployments", json=wrong_group) as resp:
        assert resp.status == 422
    await client.CoreV1Api(kube_client).create_namespaced_config_map("od", cm("c"))
    other_name = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "d"}}
    async with http.put("/api/v1/namespaces/od/configmaps/c", json=other_name) as resp:
        assert resp.status == 422


async def test_deleting_a_namespace_deletes_its_objects(kube_client: client.ApiClient) -> None:
    await ns(kube_client)
    await ns(kube_client, "other")
    core = client.CoreV1Api(kube_client)
    await core.create_namespaced_config_map("od", cm("c"))
    await core.create_namespaced_config_map("other", cm("c"))
    await core.delete_namespace("od")
    remaining = await core.list_config_map_for_all_namespaces()
    assert [(c.metadata.namespace, c.metadata.name) for c in remaining.items] == [("other", "c")]


async def test_delete_answers_200_with_the_object_and_honours_preconditions(
    http: aiohttp.ClientSession, kube_client: client.ApiClient
) -> None:
    await ns(kube_client)
    core = client.CoreV1Api(kube_client)
    first = await core.create_namespaced_config_map("od", cm("c"))
    await core.patch_namespaced_config_map("c", "od", {"data": {"k": "v"}})
    stale = {
        "kind": "DeleteOptions",
        "apiVersion": "v1",
        "preconditions": {"resourceVersion": first.metadata.resource_version},
    }
    async with http.delete("/api/v1/namespaces/od/configmaps/c", json=stale) as resp:
        assert resp.status == 409
    options = client.V1DeleteOptions(propagation_policy="Foreground")
    raw: Any = await core.delete_namespaced_config_map("c", "od", body=options, _preload_content=False)
    deleted = json.loads(await raw.read())
    assert raw.status == 200 and deleted["metadata"]["name"] == "c" and deleted["data"] == {"k": "v"}
    with pytest.raises(ApiException) as info:
        await core.delete_namespaced_config_map("c", "od")
    assert info.value.status == 404


# --- resourceVersion, generation, subresources -------------------------------------------------------


async def test_stale_put_is_409_unconditional_put_wins_and_rv_grows(kube_client: client.ApiClient) -> None:
    await ns(kube_client)
    apps = client.AppsV1Api(kube_client)
    first = await apps.create_namespaced_deployment("od", deployment("web"))
    second = await apps.patch_namespaced_deployment("web", "od", {"spec": {"replicas": 2}})
    assert int(second.metadata.resource_version) > int(first.metadata.resource_version)
    first.spec.replicas = 5
    with pytest.raises(ApiException) as info:
        await apps.replace_namespaced_deployment("web", "od", first)
    assert info.value.status == 409 and body_of(info)["reason"] == "Conflict"
    assert (await apps.read_namespaced_deployment("web", "od")).spec.replicas == 2
    first.metadata.resource_version = None  # type: ignore[assignment]  # unconditional PUT
    replaced = await apps.replace_namespaced_deployment("web", "od", first)
    assert replaced.spec.replicas == 5 and replaced.metadata.generation == 3


async def test_generation_moves_only_with_spec_and_status_is_its_own_subresource(
    kube_client: client.ApiClient,
) -> None:
    await ns(kube_client)
    crd = client.CustomObjectsApi(kube_client)
    args = ("velero.io", "v1", "od", "backups")
    body = {"apiVersion": "velero.io/v1", "kind": "Backup", "metadata": {"name": "b"}, "spec": {"ttl": "1h"}}
    await crd.create_namespaced_custom_object(*args, body)
    labelled = await crd.patch_namespaced_custom_object(
        *args, "b", {"metadata": {"labels": {"x": "y"}}, "status": {"phase": "Hacked"}}
    )
    assert (
        labelled["metadata"]["generation"] == 1 and "status" not in labelled
    )  # main resource ignores status
    status = await crd.patch_namespaced_custom_object_status(
        *args, "b", {"status": {"phase": "Completed"}, "spec": {"ttl": "9h"}}
    )
    assert status["status"]["phase"] == "Completed" and status["spec"]["ttl"] == "1h"  # status ignores spec
    assert status["metadata"]["generation"] == 1
    spec = await crd.patch_namespaced_custom_object(*args, "b", {"spec": {"ttl": "2h"}})
    assert spec["metadata"]["generation"] == 2 and spec["status"]["phase"] == "Completed"


async def test_scale_subresource_get_put_patch(kube_client: client.ApiClient) -> None:
    await ns(kube_client)
    apps = client.AppsV1Api(kube_client)
    await apps.create_namespaced_stateful_set(
        "od",
        client.V1StatefulSet(
            metadata=client.V1ObjectMeta(name="db"),
            spec=client.V1StatefulSetSpec(
                replicas=1,
                service_name="db",
                selector=client.V1LabelSelector(match_labels={"app": "db"}),
                template=client.V1PodTemplateSpec(metadata=client.V1ObjectMeta(labels={"app": "db"})),
            ),
        ),
    )

    async def settled() -> bool:  # the workload controller has written its status (a new resourceVersion)
        sts = await apps.read_namespaced_stateful_set_status("db", "od")
        return bool(sts.status and sts.status.ready_replicas == 1)

    assert await eventually(settled, timeout=10)
    scale = await apps.read_namespaced_stateful_set_scale("db", "od")
    assert (scale.kind, scale.api_version, scale.spec.replicas) == ("Scale", "autoscaling/v1", 1)
    assert scale.status.selector == "app=db"
    scale.spec.replicas = 2
    assert (await apps.replace_namespaced_stateful_set_scale("db", "od", scale)).spec.replicas == 2
    with pytest.raises(ApiException) as info:  # the same Scale again carries a stale resourceVersion
        await apps.replace_namespaced_stateful_set_scale("db", "od", scale)
    assert info.value.status == 409
    patched = await apps.patch_namespaced_stateful_set_scale("db", "od", {"spec": {"replicas": 0}})
    assert patched.spec.replicas == 0
    sts = await apps.read_namespaced_stateful_set("db", "od")
    assert sts.spec.replicas == 0 and sts.metadata.generation == 3


# --- patches -----------------------------------------------------------------------------------------


async def test_merge_strategic_and_json_patches(
    http: aiohttp.ClientSession, kube_client: client.ApiClient
) -> None:
    await ns(kube_client)
    core = client.CoreV1Api(kube_client)
    await core.create_namespaced_config_map(
        "od", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="c"), data={"a": "1", "b": "2"})
    )
    url = "/api/v1/namespaces/od/configmaps/c"
    merge = {"Content-Type": "application/merge-patch+json"}
    async with http.patch(url, data=json.dumps({"data": {"a": None, "c": "3"}}), headers=merge) as resp:
        assert resp.status == 200 and (await resp.json())["data"] == {"b": "2", "c": "3"}
    strategic = await core.patch_namespaced_config_map("c", "od", {"data": {"d": "4"}})  # client sends SMP
    assert strategic.data == {"b": "2", "c": "3", "d": "4"}
    ops = [
        {"op": "add", "path": "/data/e", "value": "5"},
        {"op": "remove", "path": "/data/b"},
        {"op": "replace", "path": "/data/c", "value": "33"},
        {"op": "move", "from": "/data/d", "path": "/data/f"},
        {"op": "copy", "from": "/data/e", "path": "/data/g"},
        {"op": "test", "path": "/data/g", "value": "5"},
    ]
    done = await core.patch_namespaced_config_map("c", "od", ops)  # a list: the client sends json-patch
    assert done.data == {"c": "33", "e": "5", "f": "4", "g": "5"}
    with pytest.raises(ApiException) as info:
        await core.patch_namespaced_config_map(
            "c",
            "od",
            [{"op": "test", "path": "/data/c", "value": "0"}, {"op": "add", "path": "/data/z", "value": "1"}],
        )
    assert info.value.status == 422 and body_of(info)["reason"] == "Invalid"
    assert "z" not in (await core.read_namespaced_config_map("c", "od")).data


# --- lists -------------------------------------------------------------------------------------------


async def test_label_selectors(kube_client: client.ApiClient) -> None:
    await ns(kube_client)
    core = client.CoreV1Api(kube_client)
    for name, labels in (("a", {"app": "files", "tier": "web"}), ("b", {"app": "chat"}), ("c", {})):
        await core.create_namespaced_config_map("od", cm(name, **labels))

    async def names(selector: str) -> list[str]:
        listed = await core.list_namespaced_config_map("od", label_selector=selector)
        return [c.metadata.name for c in listed.items]

    assert await names("app=files") == ["a"] and await names("app==chat") == ["b"]
    assert await names("app!=files") == ["b", "c"] and await names("app in (files,chat)") == ["a", "b"]
    assert await names("app notin (files)") == ["b", "c"] and await names("app") == ["a", "b"]
    assert await names("!app") == ["c"] and await names("app,tier=web") == ["a"]
    assert await names("app in (chat),tier") == []


async def test_field_selectors_on_any_path(kube_client: client.ApiClient) -> None:
    await ns(kube_client)
    await ns(kube_client, "other")
    core = client.CoreV1Api(kube_client)
    for namespace, name, phase in (
        ("od", "p1", "Running"),
        ("od", "p2", "Pending"),
        ("other", "p3", "Running"),
    ):
        await core.create_namespaced_pod(
            namespace,
            client.V1Pod(
                metadata=client.V1ObjectMeta(name=name),
                spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="i")]),
            ),
        )
        await core.patch_namespaced_pod_status(name, namespace, {"status": {"phase": phase}})

    async def names(selector: str) -> list[str]:
        listed = await core.list_pod_for_all_namespaces(field_selector=selector)
        return sorted(p.metadata.name for p in listed.items)

    assert await names("status.phase=Running") == ["p1", "p3"]
    assert await names("status.phase!=Running") == ["p2"]
    assert await names("metadata.namespace==other") == ["p3"]
    assert await names("metadata.name=p1,status.phase=Running") == ["p1"]


async def test_limit_continue_list_kind_and_all_namespaces(
    http: aiohttp.ClientSession, kube_client: client.ApiClient
) -> None:
    await ns(kube_client)
    await ns(kube_client, "other")
    apps = client.AppsV1Api(kube_client)
    for i in range(5):
        await apps.create_namespaced_deployment("od" if i % 2 else "other", deployment(f"d{i}"))
    seen: list[str] = []
    paging: dict[str, Any] = {"limit": 2}
    while True:
        page = await apps.list_deployment_for_all_namespaces(**paging)
        assert len(page.items) <= 2
        seen += [d.metadata.name for d in page.items]
        paging["_continue"] = page.metadata._continue
        if not paging["_continue"]:
            break
    assert sorted(seen) == [f"d{i}" for i in range(5)] and len(seen) == 5
    async with http.get("/apis/apps/v1/namespaces/od/deployments") as resp:
        listing = await resp.json()
    assert listing["kind"] == "DeploymentList" and listing["apiVersion"] == "apps/v1"
    assert int(listing["metadata"]["resourceVersion"]) >= 7
    assert [d["metadata"]["name"] for d in listing["items"]] == ["d1", "d3"]


# --- watch -------------------------------------------------------------------------------------------


async def test_watch_from_a_resource_version_streams_changes_and_ends_at_timeout(
    kube_client: client.ApiClient,
) -> None:
    await ns(kube_client)
    core = client.CoreV1Api(kube_client)
    await core.create_namespaced_config_map("od", cm("before"))
    rv = (await core.list_namespaced_config_map("od")).metadata.resource_version
    await core.create_namespaced_config_map("od", cm("c1"))
    await core.patch_namespaced_config_map("c1", "od", {"data": {"k": "v"}})
    await core.delete_namespaced_config_map("c1", "od")
    seen = []
    started = asyncio.get_running_loop().time()
    async with watch.Watch().stream(
        core.list_namespaced_config_map, "od", resource_version=rv, timeout_seconds=1
    ) as stream:
        async for event in stream:
            seen.append((event["type"], event["object"].metadata.name))
    assert seen == [("ADDED", "c1"), ("MODIFIED", "c1"), ("DELETED", "c1")]
    assert 0.9 < asyncio.get_running_loop().time() - started < 5


async def test_watch_without_a_version_lists_first_then_follows_live_changes(
    kube_client: client.ApiClient,
) -> None:
    await ns(kube_client)
    core = client.CoreV1Api(kube_client)
    await core.create_namespaced_config_map("od", cm("old", app="x"))
    await core.create_namespaced_config_map("od", cm("other", app="y"))
    seen: list[tuple[str, str]] = []

    async def follow() -> None:
        async with watch.Watch().stream(
            core.list_namespaced_config_map, "od", label_selector="app=x", timeout_seconds=5
        ) as stream:
            async for event in stream:
                seen.append((event["type"], event["object"].metadata.name))
                if len(seen) == 2:
                    return

    task = asyncio.ensure_future(follow())
    await eventually(lambda: asyncio.sleep(0, result=bool(seen)))
    await core.create_namespaced_config_map("od", cm("skip", app="y"))
    await core.create_namespaced_config_map("od", cm("new", app="x"))
    await asyncio.wait_for(task, 5)
    assert seen == [("ADDED", "old"), ("ADDED", "new")]


async def test_raw_watch_is_ndjson_with_field_selector_and_bookmark(
    http: aiohttp.ClientSession, kube: Cluster, kube_client: client.ApiClient
) -> None:
    await ns(kube_client)
    core = client.CoreV1Api(kube_client)
    await core.create_namespaced_config_map("od", cm("a"))
    await core.create_namespaced_config_map("od", cm("b"))
    query = {
        "watch": "1",
        "fieldSelector": "metadata.name=b",
        "allowWatchBookmarks": "true",
        "timeoutSeconds": "1",
    }
    async with http.get("/api/v1/namespaces/od/configmaps", params=query) as resp:
        assert resp.status == 200 and resp.headers.get("Transfer-Encoding") == "chunked"
        lines = [json.loads(line) for line in (await resp.read()).splitlines()]
    assert [(e["type"], e["object"]["metadata"].get("name")) for e in lines] == [
        ("ADDED", "b"),
        ("BOOKMARK", None),
    ]
    assert lines[-1]["object"]["metadata"]["resourceVersion"] == kube.store.resource_version


async def test_watch_from_an_expired_version_gets_410(kube: Cluster, kube_client: client.ApiClient) -> None:
    from failover.lab.kube import types as kt

    await ns(kube_client)
    core = client.CoreV1Api(kube_client)
    first = await core.create_namespaced_config_map("od", cm("first"))
    for i in range(1001):  # push the change after it out of the kept history (1000 events)
        kube.store.patch(kt.CONFIGMAPS, "od", "first", {"data": {"i": str(i)}})
    with pytest.raises(ApiException) as info:
        async with watch.Watch().stream(
            core.list_namespaced_config_map,
            "od",
            resource_version=first.metadata.resource_version,
            timeout_seconds=1,
        ) as stream:
            async for _ in stream:
                pass
    assert info.value.status == 410 and "Expired" in str(info.value.reason)
    recent = str(int(kube.store.resource_version) - 5)
    async with watch.Watch().stream(
        core.list_namespaced_config_map, "od", resource_version=recent, timeout_seconds=1
    ) as stream:
        replayed = [event["object"].data["i"] async for event in stream]
    assert replayed == ["996", "997", "998", "999", "1000"]


# --- custom resources --------------------------------------------------------------------------------


async def test_velero_custom_resources(kube_client: client.ApiClient) -> None:
    await ns(kube_client, "velero")
    crd = client.CustomObjectsApi(kube_client)
    for plural, kind in (
        ("backups", "Backup"),
        ("restores", "Restore"),
        ("schedules", "Schedule"),
        ("backupstoragelocations", "BackupStorageLocation"),
    ):
        body = {"apiVersion": "velero.io/v1", "kind": kind, "metadata": {"name": "x"}, "spec": {}}
        created = await crd.create_namespaced_custom_object("velero.io", "v1", "velero", plural, body)
        assert created["kind"] == kind and created["metadata"]["uid"]
    listed = await crd.list_namespaced_custom_object("velero.io", "v1", "velero", "restores")
    assert listed["kind"] == "RestoreList" and [r["metadata"]["name"] for r in listed["items"]] == ["x"]


async def test_cluster_api_types_are_served_in_both_versions_from_one_storage(
    kube_client: client.ApiClient,
) -> None:
    await ns(kube_client, "capi")
    crd = client.CustomObjectsApi(kube_client)
    body = {
        "apiVersion": "cluster.x-k8s.io/v1beta2",
        "kind": "MachineDeployment",
        "metadata": {"name": "md"},
        "spec": {"clusterName": "c", "replicas": 2},
    }
    await crd.create_namespaced_custom_object(
        "cluster.x-k8s.io", "v1beta2", "capi", "machinedeployments", body
    )
    old = await crd.get_namespaced_custom_object(
        "cluster.x-k8s.io", "v1beta1", "capi", "machinedeployments", "md"
    )
    assert old["spec"]["replicas"] == 2
    scale = await crd.patch_namespaced_custom_object_scale(
        "cluster.x-k8s.io", "v1beta2", "capi", "machinedeployments", "md", {"spec": {"replicas": 3}}
    )
    assert scale["kind"] == "Scale" and scale["spec"]["replicas"] == 3


# --- workload controller -----------------------------------------------------------------------------


async def test_workloads_become_ready_with_pods_and_scale_to_zero_at_once(
    kube_client: client.ApiClient,
) -> None:
    await ns(kube_client)
    apps, core = client.AppsV1Api(kube_client), client.CoreV1Api(kube_client)
    nodes = await core.list_node()
    assert len(nodes.items) == 3 and all(n.status.conditions[0].status == "True" for n in nodes.items)
    await apps.create_namespaced_deployment("od", deployment("web", replicas=2))

    async def ready() -> Any:
        dep = await apps.read_namespaced_deployment("web", "od")
        return dep if dep.status and dep.status.ready_replicas == 2 else None

    dep = await eventually(ready)
    assert dep is not None and dep.status.available_replicas == 2 and dep.status.updated_replicas == 2
    assert dep.status.observed_generation == dep.metadata.generation
    assert [(c.type, c.status) for c in dep.status.conditions] == [("Available", "True")]
    pods = await core.list_namespaced_pod(
        "od", label_selector="app=web", field_selector="status.phase=Running"
    )
    assert sorted(p.metadata.name for p in pods.items) == ["web-0", "web-1"]
    assert pods.items[0].metadata.owner_references[0].uid == dep.metadata.uid
    await apps.patch_namespaced_deployment_scale("web", "od", {"spec": {"replicas": 0}})
    await asyncio.sleep(0.02)  # well under ready_delay: scaling down is immediate
    now = await apps.read_namespaced_deployment("web", "od")
    assert now.status.replicas == 0 and not now.status.ready_replicas
    assert (await core.list_namespaced_pod("od")).items == []


async def test_fail_and_recover_and_deletion_removes_pods(
    kube: Cluster, kube_client: client.ApiClient
) -> None:
    await ns(kube_client)
    apps, core = client.AppsV1Api(kube_client), client.CoreV1Api(kube_client)
    await apps.create_namespaced_deployment("od", deployment("web"))

    async def ready_replicas() -> int:
        status = (await apps.read_namespaced_deployment("web", "od")).status
        return int(status.ready_replicas or 0) if status else -1

    assert await eventually(lambda: _equals(ready_replicas(), 1))
    kube.workloads.fail("od", "web")
    assert await eventually(lambda: _equals(ready_replicas(), 0))
    pod = await core.read_namespaced_pod("web-0", "od")
    assert pod.status.conditions[0].status == "False"
    kube.workloads.recover("od", "web")
    assert await eventually(lambda: _equals(ready_replicas(), 1))
    await apps.delete_namespaced_deployment("web", "od")
    assert await eventually(lambda: _equals(_count_pods(core), 0))


async def _equals(value: Any, expected: Any) -> bool:
    return bool(await value == expected)


async def _count_pods(core: client.CoreV1Api) -> int:
    return len((await core.list_namespaced_pod("od")).items)


async def test_closing_the_server_ends_open_watches_cleanly_and_fast() -> None:
    cluster = await Cluster.start(name="closing", ready_delay=0)
    try:
        async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
            async with session.get(f"{cluster.api.url}/api/v1/nodes", params={"watch": "true"}) as resp:
                await resp.content.readline()  # the watch is open and streaming
                started = asyncio.get_running_loop().time()
                await cluster.close()
                rest = await resp.content.read()  # a clean end of the chunked body, no payload error
                assert asyncio.get_running_loop().time() - started < 0.4
        assert rest.count(b"\n") == 2  # the other two nodes, then the end
    finally:
        await cluster.close()
