"""Conformance of the lab's Kubernetes API emulator, driven through kubernetes-asyncio's typed clients.

Each test asserts one documented behaviour of the real API server that the failover relies on;
each would fail against kmock (the reason the lab has its own emulator).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from kubernetes_asyncio import client, watch
from kubernetes_asyncio.client.rest import ApiException

from failover.lab.kube.cluster import Cluster


@pytest.fixture
async def api() -> AsyncIterator[client.ApiClient]:
    cluster = await Cluster.start(name="t", ready_delay=0.05)
    config = client.Configuration(host=cluster.api.url)
    async with client.ApiClient(config) as api_client:
        yield api_client
    await cluster.close()


def deployment(name: str, replicas: int = 1, **labels: str) -> client.V1Deployment:
    sel = {"app": name}
    return client.V1Deployment(
        metadata=client.V1ObjectMeta(name=name, labels={**sel, **labels}),
        spec=client.V1DeploymentSpec(replicas=replicas, selector=client.V1LabelSelector(match_labels=sel),
                                     template=client.V1PodTemplateSpec(metadata=client.V1ObjectMeta(labels=sel))))


async def ns(api: client.ApiClient, name: str = "od") -> None:
    await client.CoreV1Api(api).create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))


async def test_version_discovery_and_readyz(api: client.ApiClient) -> None:
    info = await client.VersionApi(api).get_code()
    assert info.major == "1"
    groups = await client.ApisApi(api).get_api_versions()
    assert {"apps", "velero.io", "cluster.x-k8s.io"} <= {g.name for g in groups.groups}
    resources = await client.AppsV1Api(api).get_api_resources()
    assert {"deployments", "deployments/scale", "statefulsets/status"} <= {r.name for r in resources.resources}


async def test_create_is_201_with_server_fields_and_duplicates_conflict(api: client.ApiClient) -> None:
    await ns(api)
    apps = client.AppsV1Api(api)
    _, status, _ = await apps.create_namespaced_deployment_with_http_info("od", deployment("web"))
    assert status == 201
    got = await apps.read_namespaced_deployment("web", "od")
    assert got.metadata.uid and got.metadata.resource_version and got.metadata.generation == 1
    with pytest.raises(ApiException) as info:
        await apps.create_namespaced_deployment("od", deployment("web"))
    assert info.value.status == 409 and '"reason":"AlreadyExists"' in info.value.body.replace(" ", "")


async def test_not_found_is_a_status_object(api: client.ApiClient) -> None:
    await ns(api)
    with pytest.raises(ApiException) as info:
        await client.AppsV1Api(api).read_namespaced_deployment("nope", "od")
    assert info.value.status == 404 and '"reason":"NotFound"' in info.value.body.replace(" ", "")


async def test_stale_resource_version_is_409_and_generation_follows_spec(api: client.ApiClient) -> None:
    await ns(api)
    apps = client.AppsV1Api(api)
    first = await apps.create_namespaced_deployment("od", deployment("web"))
    await apps.patch_namespaced_deployment("web", "od", {"spec": {"replicas": 2}})
    first.spec.replicas = 5
    with pytest.raises(ApiException) as info:
        await apps.replace_namespaced_deployment("web", "od", first)
    assert info.value.status == 409
    now = await apps.read_namespaced_deployment("web", "od")
    assert now.spec.replicas == 2 and now.metadata.generation == 2


async def test_selectors_and_json_patch(api: client.ApiClient) -> None:
    await ns(api)
    apps = client.AppsV1Api(api)
    await apps.create_namespaced_deployment("od", deployment("a", tier="web"))
    await apps.create_namespaced_deployment("od", deployment("b", tier="db"))
    listed = await apps.list_namespaced_deployment("od", label_selector="tier in (web)")
    assert [d.metadata.name for d in listed.items] == ["a"]
    by_field = await apps.list_namespaced_deployment("od", field_selector="metadata.name!=a")
    assert [d.metadata.name for d in by_field.items] == ["b"]
    await apps.patch_namespaced_deployment("a", "od", [{"op": "replace", "path": "/spec/replicas", "value": 4}])
    assert (await apps.read_namespaced_deployment("a", "od")).spec.replicas == 4


async def test_scale_subresource_and_workloads_become_ready(api: client.ApiClient) -> None:
    await ns(api)
    apps = client.AppsV1Api(api)
    await apps.create_namespaced_deployment("od", deployment("web"))
    scale = await apps.read_namespaced_deployment_scale("web", "od")
    assert scale.kind == "Scale" and scale.spec.replicas == 1 and scale.status.selector == "app=web"
    await apps.patch_namespaced_deployment_scale("web", "od", {"spec": {"replicas": 3}})
    for _ in range(40):
        dep = await apps.read_namespaced_deployment("web", "od")
        if dep.status and dep.status.ready_replicas == 3:
            break
        await asyncio.sleep(0.05)
    assert dep.status.ready_replicas == 3 and dep.status.observed_generation == dep.metadata.generation
    pods = await client.CoreV1Api(api).list_namespaced_pod("od", label_selector="app=web")
    assert len(pods.items) == 3


async def test_watch_streams_events_and_times_out(api: client.ApiClient) -> None:
    await ns(api)
    core = client.CoreV1Api(api)
    listed = await core.list_namespaced_config_map("od")
    rv = listed.metadata.resource_version
    await core.create_namespaced_config_map("od", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="c1")))
    await core.patch_namespaced_config_map("c1", "od", {"data": {"k": "v"}})
    seen = []
    async with watch.Watch().stream(core.list_namespaced_config_map, "od", resource_version=rv,
                                    timeout_seconds=1) as stream:
        async for event in stream:
            seen.append((event["type"], event["object"].metadata.name))
    assert seen == [("ADDED", "c1"), ("MODIFIED", "c1")]


async def test_custom_resources_velero_restore(api: client.ApiClient) -> None:
    await ns(api, "velero")
    crd = client.CustomObjectsApi(api)
    body = {"apiVersion": "velero.io/v1", "kind": "Restore", "metadata": {"name": "r1"},
            "spec": {"backupName": "b1"}}
    created = await crd.create_namespaced_custom_object("velero.io", "v1", "velero", "restores", body)
    assert created["metadata"]["name"] == "r1" and created["metadata"]["uid"]
    await crd.patch_namespaced_custom_object_status("velero.io", "v1", "velero", "restores", "r1",
                                                    {"status": {"phase": "Completed"}})
    got = await crd.get_namespaced_custom_object("velero.io", "v1", "velero", "restores", "r1")
    assert got["status"]["phase"] == "Completed" and got["spec"]["backupName"] == "b1"
