"""The backup tarball and velero-backup.json, as Velero writes and reads them."""

from __future__ import annotations

import io
import json
import tarfile
from datetime import UTC, datetime

import pytest

from failover.core import errors
from failover.velero import models, tarball

DEPLOY = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "prod"},
          "spec": {"replicas": 2, "note": "a<b & c>d"}}
NS = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "prod"}}
POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "prod"}}
ITEMS = [
    tarball.Item("apps", "deployments", "prod", "web", DEPLOY),
    tarball.Item("", "namespaces", None, "prod", NS),
    tarball.Item("", "pods", "prod", "p", POD),
]


def test_tarball_has_velero_paths_modes_and_duplicate_preferred_version() -> None:
    data = tarball.build(ITEMS, mtime=1_700_000_000)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        members = {m.name: m for m in tar.getmembers()}
        files = {name: tar.extractfile(m).read() for name, m in members.items()}  # type: ignore[union-attr]
    assert files["metadata/version"] == b"1.1.0\n"
    assert set(files) == {
        "metadata/version",
        "resources/deployments.apps/namespaces/prod/web.json",
        "resources/deployments.apps/v1-preferredversion/namespaces/prod/web.json",
        "resources/namespaces/cluster/prod.json",
        "resources/namespaces/v1-preferredversion/cluster/prod.json",
        "resources/pods/namespaces/prod/p.json",
        "resources/pods/v1-preferredversion/namespaces/prod/p.json",
    }
    web = files["resources/deployments.apps/namespaces/prod/web.json"]
    assert web == files["resources/deployments.apps/v1-preferredversion/namespaces/prod/web.json"]
    # Go's json.Marshal: compact, sorted keys, HTML-safe escapes
    assert web.startswith(b'{"apiVersion":"apps/v1","kind":"Deployment","metadata":')
    assert b"a\\u003cb \\u0026 c\\u003ed" in web
    assert all(m.mode == 0o755 for m in members.values())


def test_tarball_round_trip_returns_each_item_once() -> None:
    contents = tarball.read(tarball.build(ITEMS))
    assert contents.version == "1.1.0"
    assert sorted((i.group_resource, i.namespace, i.name) for i in contents.items) == [
        ("deployments.apps", "prod", "web"), ("namespaces", None, "prod"), ("pods", "prod", "p")]
    assert next(i for i in contents.items if i.name == "web").obj == DEPLOY


def test_resource_list_keys_and_sorted_values() -> None:
    extra = tarball.Item("apps", "deployments", "alpha", "api", {**DEPLOY, "metadata": {"name": "api"}})
    assert tarball.resource_list([*ITEMS, extra]) == {
        "apps/v1/Deployment": ["alpha/api", "prod/web"], "v1/Namespace": ["prod"], "v1/Pod": ["prod/p"]}


def test_garbage_is_not_a_tarball() -> None:
    with pytest.raises(errors.ProtocolError, match="tarball"):
        tarball.read(b"not gzip")
    with pytest.raises(errors.ProtocolError, match="metadata/version"):
        tarball.read(_tar_without_version())


def _tar_without_version() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        data = b"{}"
        info = tarfile.TarInfo("resources/pods/namespaces/x/p.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


BACKUP = {"kind": "Backup", "apiVersion": "velero.io/v1",
          "metadata": {"name": "b1", "namespace": "velero", "labels": {"velero.io/storage-location": "default"}},
          "spec": {"includedNamespaces": ["prod"], "storageLocation": "default"},
          "status": {"phase": "Completed", "startTimestamp": "2026-05-20T08:00:00Z",
                     "completionTimestamp": "2026-05-20T08:01:10Z", "progress": {"totalItems": 42, "itemsBackedUp": 42},
                     "warnings": 1, "errors": 0, "formatVersion": "1.1.0"}}


def test_parse_backup_metadata() -> None:
    info = models.parse_backup(json.dumps(BACKUP).encode())
    assert info.name == "b1" and info.phase is models.BackupPhase.COMPLETED and info.is_complete
    assert info.completion_timestamp == datetime(2026, 5, 20, 8, 1, 10, tzinfo=UTC)
    assert info.start_timestamp is not None and info.start_timestamp.tzinfo is not None
    assert info.storage_location == "default" and info.included_namespaces == ("prod",)
    assert (info.total_items, info.warnings, info.errors) == (42, 1, 0)


@pytest.mark.parametrize("phase, complete", [("Completed", True), ("PartiallyFailed", True), ("Failed", False),
                                             ("Finalizing", False), ("InProgress", False)])
def test_only_completed_and_partially_failed_are_complete(phase: str, complete: bool) -> None:
    doc = {**BACKUP, "status": {**BACKUP["status"], "phase": phase}}  # type: ignore[dict-item]
    assert models.parse_backup(doc).is_complete is complete


@pytest.mark.parametrize("doc, message", [
    (b"{not json", "not JSON"),
    (b"[]", "not a JSON object"),
    ({**BACKUP, "metadata": {}}, "metadata.name is missing"),
    ({**BACKUP, "status": {"phase": "Exploded"}}, "'Exploded' is not a Velero backup phase"),
    ({**BACKUP, "status": {"phase": "Completed", "completionTimestamp": "yesterday"}}, "completionTimestamp"),
    ({**BACKUP, "status": {"phase": "Completed", "completionTimestamp": "2026-05-20T08:00:00"}}, "no time zone"),
    ({**BACKUP, "status": {"phase": "Completed", "errors": "many"}}, "errors must be an integer"),
    ({**BACKUP, "spec": {"includedNamespaces": "prod"}}, "includedNamespaces"),
])
def test_malformed_metadata_raises_a_clear_protocol_error(doc: object, message: str) -> None:
    with pytest.raises(errors.ProtocolError, match="malformed Velero backup metadata") as info:
        models.parse_backup(doc)  # type: ignore[arg-type]
    assert message in str(info.value)
