"""Velero's selection rules and restore order (pure)."""

from __future__ import annotations

from typing import Any

from failover.lab.velero_controller import parse_go_duration
from failover.velero import selection


def test_namespace_filter_globs_and_excludes() -> None:
    f = selection.NamespaceFilter(("open*",), ("opendesk-tmp",))
    assert f.matches("opendesk") and not f.matches("opendesk-tmp") and not f.matches("kube-system")
    assert selection.NamespaceFilter().matches("anything")


def test_resource_filter_accepts_plural_group_and_kind() -> None:
    f = selection.ResourceFilter(("deployments.apps", "ConfigMap"))
    assert f.matches(group="apps", plural="deployments", kind="Deployment")
    assert f.matches(group="", plural="configmaps", kind="ConfigMap")
    assert not f.matches(group="", plural="secrets", kind="Secret")
    assert not selection.ResourceFilter((), ("secrets",)).matches(group="", plural="secrets", kind="Secret")


def test_label_selectors() -> None:
    sel = {"matchLabels": {"app": "files"}, "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a"]}]}
    assert selection.selector_matches(sel, {"app": "files", "tier": "a"})
    assert not selection.selector_matches(sel, {"app": "files", "tier": "b"})
    assert selection.selector_matches({"matchExpressions": [{"key": "x", "operator": "DoesNotExist"}]}, {})
    ors = selection.LabelFilter(or_selectors=({"matchLabels": {"app": "a"}}, {"matchLabels": {"app": "b"}}))
    assert ors.matches({"app": "b"}) and not ors.matches({"app": "c"})


def test_cluster_scoped_tri_state() -> None:
    assert selection.Selection.from_spec({}).cluster_scoped_included()
    assert not selection.Selection.from_spec({"includedNamespaces": ["prod"]}).cluster_scoped_included()
    assert selection.Selection.from_spec({"includedNamespaces": ["prod"],
                                          "includeClusterResources": True}).cluster_scoped_included()


def test_restore_order_namespaces_then_config_then_workloads() -> None:
    order = sorted(["deployments.apps", "pods", "configmaps", "namespaces", "secrets", "clusters.cluster.x-k8s.io",
                    "persistentvolumeclaims", "services", "statefulsets.apps"], key=selection.restore_rank)
    assert order == ["namespaces", "persistentvolumeclaims", "secrets", "configmaps", "pods", "services",
                     "deployments.apps", "statefulsets.apps", "clusters.cluster.x-k8s.io"]


def test_strip_for_restore_removes_server_fields_and_status() -> None:
    meta = {"name": "c", "uid": "u", "resourceVersion": "7", "generation": 2, "creationTimestamp": "t",
            "managedFields": [], "labels": {"a": "b"}}
    obj: dict[str, Any] = {"kind": "ConfigMap", "metadata": meta, "data": {"k": "v"}, "status": {"x": 1}}
    out = selection.strip_for_restore(obj, keep_status=False)
    assert out == {"kind": "ConfigMap", "metadata": {"name": "c", "labels": {"a": "b"}}, "data": {"k": "v"}}
    assert "status" in selection.strip_for_restore(obj, keep_status=True)
    assert obj["metadata"]["uid"] == "u"  # the input is untouched


def test_go_durations() -> None:
    assert parse_go_duration("10s").total_seconds() == 10  # type: ignore[union-attr]
    assert parse_go_duration("1m30s").total_seconds() == 90  # type: ignore[union-attr]
    assert parse_go_duration("720h0m0s").total_seconds() == 720 * 3600  # type: ignore[union-attr]
    assert parse_go_duration("0 */6 * * *") is None and parse_go_duration("") is None
