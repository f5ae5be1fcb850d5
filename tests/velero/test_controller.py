"""The lab's Velero controller against MemoryStores and real moto_server processes.

The centre piece is the failover path itself: backup on site A, replicate to B's bucket on another
"provider", B's ReadOnly BSL syncs it, a Restore with namespaceMapping recreates the objects on B.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_asyncio

from failover import s3
from failover.lab.kube import types as kt
from failover.lab.kube.store import MemoryStore
from failover.lab.motoserver import MotoServer
from failover.lab.velero_controller import VeleroController
from failover.velero import bucket, layout

pytestmark = pytest.mark.asyncio(loop_scope="module")

NS = "velero"


def ns(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def ensure_ns(store: MemoryStore, name: str) -> None:
    try:
        store.create(kt.NAMESPACES, ns(name))
    except kt.AlreadyExists:
        pass


def seed(store: MemoryStore) -> None:
    for name in ("prod", "other"):
        ensure_ns(store, name)
    store.create(kt.CONFIGMAPS, {"apiVersion": "v1", "kind": "ConfigMap",
                                 "metadata": {"name": "cfg", "namespace": "prod", "labels": {"app": "files"}},
                                 "data": {"k": "v"}})
    store.create(kt.SECRETS, {"apiVersion": "v1", "kind": "Secret",
                              "metadata": {"name": "sec", "namespace": "prod", "labels": {"app": "mail"}},
                              "data": {"p": "cGFzcw=="}})
    store.create(kt.DEPLOYMENTS, {"apiVersion": "apps/v1", "kind": "Deployment",
                                  "metadata": {"name": "files", "namespace": "prod", "labels": {"app": "files"}},
                                  "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "files"}},
                                           "template": {"metadata": {"labels": {"app": "files"}}, "spec": {}}}})
    store.create(kt.PODS, {"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": "files-1", "namespace": "prod", "labels": {"app": "files"},
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "files-x", "uid": "u",
                             "controller": True}]}, "spec": {}})
    store.create(kt.CONFIGMAPS, {"apiVersion": "v1", "kind": "ConfigMap",
                                 "metadata": {"name": "elsewhere", "namespace": "other"}, "data": {}})


def add_bsl(store: MemoryStore, loc: s3.S3Location, *, name: str = "default", mode: str = "ReadWrite") -> None:
    store.create(kt.VELERO_BSLS, {"apiVersion": "velero.io/v1", "kind": "BackupStorageLocation",
                                  "metadata": {"name": name, "namespace": NS},
                                  "spec": {"provider": "aws", "objectStorage": {"bucket": loc.bucket},
                                           "accessMode": mode, "default": True}})


def velero_obj(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "velero.io/v1", "kind": kind, "metadata": {"name": name, "namespace": NS}, "spec": spec}


async def wait_for(fn: Callable[[], Any], *, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


def phase_of(store: MemoryStore, rt: kt.ResourceType, name: str, phases: tuple[str, ...]) -> dict[str, Any] | None:
    try:
        obj = store.get(rt, NS, name)
    except kt.NotFound:
        return None
    return obj if (obj.get("status") or {}).get("phase") in phases else None


TERMINAL = ("Completed", "PartiallyFailed", "Failed", "FailedValidation")


class Site:
    def __init__(self, server: MotoServer, make_location: Any, *, mode: str = "ReadWrite", **kw: Any) -> None:
        self.loc: s3.S3Location = make_location(server)
        self.store = MemoryStore()
        ensure_ns(self.store, NS)
        add_bsl(self.store, self.loc, mode=mode)
        self.controller = VeleroController(self.store, locations={"default": self.loc}, sync_period=0.1, **kw)

    async def run_to_end(self, rt: kt.ResourceType, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        self.store.create(rt, velero_obj(rt.kind, name, spec))
        result: dict[str, Any] = await wait_for(lambda: phase_of(self.store, rt, name, TERMINAL))
        return result


@pytest_asyncio.fixture(loop_scope="module")
async def site_a(moto_a: MotoServer, make_location: Any) -> AsyncIterator[Site]:
    site = Site(moto_a, make_location)
    await s3.ensure_bucket(site.loc)
    seed(site.store)
    await site.controller.start()
    yield site
    await site.controller.stop()


async def copy_backup(src: s3.S3Location, dst: s3.S3Location, name: str) -> None:
    """Replication as the product does it: every object, velero-backup.json last."""
    objects = await bucket.list_backup_objects(src, name)
    ordered = sorted(objects, key=lambda o: o.key.endswith(layout.METADATA_FILE))
    async with s3.open_client(src) as sc, s3.open_client(dst) as dc:
        for obj in ordered:
            await s3.put_bytes(dc, dst, obj.key, await s3.get_bytes(sc, src, obj.key))


async def test_bsl_is_validated_and_a_backup_lands_in_velero_layout(site_a: Site) -> None:
    bsl = await wait_for(lambda: phase_of(site_a.store, kt.VELERO_BSLS, "default", ("Available",)))
    assert bsl["status"]["lastValidationTime"].endswith("Z")
    done = await site_a.run_to_end(kt.VELERO_BACKUPS, "b1", {"includedNamespaces": ["prod"]})
    assert done["status"]["phase"] == "Completed", done["status"]
    assert done["metadata"]["labels"]["velero.io/storage-location"] == "default"
    assert done["status"]["progress"] == {"totalItems": 5, "itemsBackedUp": 5}
    keys = {o.key for o in await bucket.list_backup_objects(site_a.loc, "b1")}
    assert {"backups/b1/velero-backup.json", "backups/b1/b1.tar.gz", "backups/b1/b1-resource-list.json.gz",
            "backups/b1/b1-logs.gz", "backups/b1/b1-results.gz"} <= keys
    assert await bucket.read_gz_json(site_a.loc, layout.backup_resource_list("", "b1")) == {
        "apps/v1/Deployment": ["prod/files"], "v1/ConfigMap": ["prod/cfg"], "v1/Namespace": ["prod"],
        "v1/Pod": ["prod/files-1"], "v1/Secret": ["prod/sec"]}
    info = await bucket.read_backup(site_a.loc, "b1")
    assert info.is_complete and info.completion_timestamp is not None


async def test_backup_to_read_only_bsl_fails_validation(moto_a: MotoServer, make_location: Any) -> None:
    site = Site(moto_a, make_location, mode="ReadOnly")
    await s3.ensure_bucket(site.loc)
    await site.controller.start()
    try:
        done = await site.run_to_end(kt.VELERO_BACKUPS, "nope", {})
    finally:
        await site.controller.stop()
    assert done["status"]["phase"] == "FailedValidation"
    assert done["status"]["validationErrors"] == [
        "backup can't be created because backup storage location default is currently in read-only mode"]
    assert await bucket.list_backups(site.loc) == []


async def test_backup_replicate_restore_across_two_providers(site_a: Site, moto_b: MotoServer,
                                                             make_location: Any) -> None:
    await site_a.run_to_end(kt.VELERO_BACKUPS, "daily", {"includedNamespaces": ["prod"]})
    site_b = Site(moto_b, make_location, mode="ReadOnly", item_delay=0.01)
    await s3.ensure_bucket(site_b.loc)
    created: list[str] = []
    site_b.store.add_listener(lambda rt, ev: created.append(f"{rt.key}/{ev.object['metadata']['name']}")
                              if ev.type is kt.EventType.ADDED and rt.group != "velero.io" else None)
    await site_b.controller.start()
    try:
        await copy_backup(site_a.loc, site_b.loc, "daily")
        synced = await wait_for(lambda: phase_of(site_b.store, kt.VELERO_BACKUPS, "daily", ("Completed",)))
        assert synced["metadata"]["labels"]["velero.io/storage-location"] == "default"
        assert site_b.store.get(kt.VELERO_BSLS, NS, "default")["status"]["lastSyncedTime"]
        done = await site_b.run_to_end(kt.VELERO_RESTORES, "r1", {
            "backupName": "daily", "namespaceMapping": {"prod": "prod-dr"}, "existingResourcePolicy": "update"})
    finally:
        await site_b.controller.stop()
    status = done["status"]
    assert status["phase"] == "Completed", status
    assert (status["errors"], status["warnings"]) == (0, 0)
    assert status["progress"]["totalItems"] == 5 and status["startTimestamp"] and status["completionTimestamp"]
    dep = site_b.store.get(kt.DEPLOYMENTS, "prod-dr", "files")
    assert dep["spec"]["replicas"] == 2
    assert dep["metadata"]["labels"] == {"app": "files", "velero.io/backup-name": "daily",
                                         "velero.io/restore-name": "r1"}
    assert dep["metadata"]["uid"] != site_a.store.get(kt.DEPLOYMENTS, "prod", "files")["metadata"]["uid"]
    assert site_b.store.get(kt.SECRETS, "prod-dr", "sec")["data"] == {"p": "cGFzcw=="}
    with pytest.raises(kt.NotFound):
        site_b.store.get(kt.PODS, "prod-dr", "files-1")  # owned pod: the workload recreates it
    with pytest.raises(kt.NotFound):
        site_b.store.get(kt.NAMESPACES, None, "prod")  # mapped, not restored under the old name
    order = [c for c in created if not c.startswith("namespaces/velero")]
    assert order == ["namespaces/prod-dr", "secrets/sec", "configmaps/cfg", "deployments.apps/files"]
    assert not [o for o in await bucket.list_backups(site_b.loc) if o != "daily"]
    async with s3.open_client(site_b.loc) as client:  # ReadOnly BSL: no restore files written
        listing = await client.list_objects_v2(Bucket=site_b.loc.bucket, Prefix="restores/")
    assert listing.get("KeyCount", 0) == 0


async def test_restore_validation_collects_every_problem(site_a: Site) -> None:
    done = await site_a.run_to_end(kt.VELERO_RESTORES, "bad", {"existingResourcePolicy": "merge",
                                                               "labelSelector": {}, "orLabelSelectors": [{}]})
    assert done["status"]["phase"] == "FailedValidation"
    errs = done["status"]["validationErrors"]
    assert any("Either a backup or schedule" in e for e in errs)
    assert "Invalid ExistingResourcePolicy: merge" in errs
    assert any("orLabelSelectors" in e for e in errs)
    missing = await site_a.run_to_end(kt.VELERO_RESTORES, "missing", {"backupName": "ghost"})
    assert missing["status"]["phase"] == "FailedValidation"
    assert 'backups.velero.io "ghost" not found' in missing["status"]["validationErrors"][0]


async def test_restore_fails_when_the_bsl_is_unavailable(site_a: Site) -> None:
    await site_a.run_to_end(kt.VELERO_BACKUPS, "b-unavail", {"includedNamespaces": ["prod"]})
    async with s3.open_client(site_a.loc) as client:
        await s3.put_bytes(client, site_a.loc, "not-velero/x", b"x")  # IsValid now fails
    try:
        done = await site_a.run_to_end(kt.VELERO_RESTORES, "r-unavail", {"backupName": "b-unavail"})
        bsl = site_a.store.get(kt.VELERO_BSLS, NS, "default")
        refused = await site_a.run_to_end(kt.VELERO_BACKUPS, "b-refused", {})
    finally:
        async with s3.open_client(site_a.loc) as client:
            await client.delete_object(Bucket=site_a.loc.bucket, Key="not-velero/x")
        await wait_for(lambda: phase_of(site_a.store, kt.VELERO_BSLS, "default", ("Available",)))
    assert done["status"]["phase"] == "Failed"
    assert done["status"]["failureReason"] == "The BSL default is unavailable, cannot retrieve the backup"
    assert bsl["status"]["phase"] == "Unavailable" and "not-velero" in bsl["status"]["message"]
    assert refused["status"]["phase"] == "FailedValidation"
    assert refused["status"]["validationErrors"] == [
        "backup can't be created because BackupStorageLocation default is in Unavailable status."]


async def test_existing_objects_none_warns_update_replaces_and_results_are_uploaded(site_a: Site) -> None:
    await site_a.run_to_end(kt.VELERO_BACKUPS, "b-exist", {"includedNamespaces": ["prod"]})
    site_a.store.patch(kt.CONFIGMAPS, "prod", "cfg", {"data": {"k": "changed"}})
    kept = await site_a.run_to_end(kt.VELERO_RESTORES, "r-none", {"backupName": "b-exist",
                                                                  "includedResources": ["configmaps"]})
    assert kept["status"]["phase"] == "Completed" and kept["status"]["warnings"] == 1
    assert site_a.store.get(kt.CONFIGMAPS, "prod", "cfg")["data"] == {"k": "changed"}
    updated = await site_a.run_to_end(kt.VELERO_RESTORES, "r-update", {
        "backupName": "b-exist", "existingResourcePolicy": "update",
        "orLabelSelectors": [{"matchLabels": {"app": "files"}}]})
    assert updated["status"]["phase"] == "Completed" and updated["status"]["errors"] == 0
    assert site_a.store.get(kt.CONFIGMAPS, "prod", "cfg")["data"] == {"k": "v"}
    results = await bucket.read_gz_json(site_a.loc, layout.restore_results("", "r-none"))
    assert "already exists" in results["warnings"]["namespaces"]["prod"][0]
    listing = await bucket.read_gz_json(site_a.loc, layout.restore_resource_list("", "r-update"))
    assert listing["v1/ConfigMap"] == ["prod/cfg(updated)"] and "v1/Secret" not in listing


async def test_restart_never_reruns_a_restore(site_a: Site) -> None:
    await site_a.run_to_end(kt.VELERO_BACKUPS, "b-restart", {"includedNamespaces": ["prod"]})
    done = await site_a.run_to_end(kt.VELERO_RESTORES, "r-once", {"backupName": "b-restart",
                                                                  "namespaceMapping": {"prod": "prod-once"}})
    assert done["status"]["phase"] == "Completed"
    site_a.store.create(kt.VELERO_RESTORES, velero_obj("Restore", "r-half", {"backupName": "b-restart"}))
    await site_a.controller.stop()
    site_a.store.patch(kt.VELERO_RESTORES, NS, "r-half", {"status": {"phase": "InProgress"}}, subresource="status")
    site_a.store.delete(kt.CONFIGMAPS, "prod-once", "cfg")
    fresh = VeleroController(site_a.store, locations=site_a.controller.locations, sync_period=0.1)
    await fresh.start()
    try:
        half = await wait_for(lambda: phase_of(site_a.store, kt.VELERO_RESTORES, "r-half", ("Failed",)))
        await asyncio.sleep(0.3)
    finally:
        await fresh.stop()
    assert "during the server starting" in half["status"]["failureReason"]
    assert site_a.store.get(kt.VELERO_RESTORES, NS, "r-once")["status"] == done["status"]
    with pytest.raises(kt.NotFound):
        site_a.store.get(kt.CONFIGMAPS, "prod-once", "cfg")
    await site_a.controller.start()  # the fixture stops it again


async def test_schedule_every_creates_named_backups_and_cron_is_rejected(site_a: Site) -> None:
    site_a.store.create(kt.VELERO_SCHEDULES, velero_obj("Schedule", "hourly", {
        "schedule": "@every 1h", "template": {"includedNamespaces": ["other"]}}))
    site_a.store.create(kt.VELERO_SCHEDULES, velero_obj("Schedule", "later", {
        "schedule": "@every 1h", "skipImmediately": True, "template": {}}))
    site_a.store.create(kt.VELERO_SCHEDULES, velero_obj("Schedule", "cron", {"schedule": "0 * * * *",
                                                                             "template": {}}))

    def of(schedule: str) -> list[dict[str, Any]]:
        return site_a.store.list(kt.VELERO_BACKUPS, NS, label_selector=f"velero.io/schedule-name={schedule}")[0]

    backup = await wait_for(lambda: phase_of(site_a.store, kt.VELERO_BACKUPS, of("hourly")[0]["metadata"]["name"],
                                             ("Completed",)) if of("hourly") else None)
    name = backup["metadata"]["name"]
    assert name.startswith("hourly-") and len(name) == len("hourly-") + 14 and name[7:].isdigit()
    assert backup["spec"]["includedNamespaces"] == ["other"]
    sched = site_a.store.get(kt.VELERO_SCHEDULES, NS, "hourly")
    assert sched["status"]["phase"] == "Enabled" and sched["status"]["lastBackup"].endswith("Z")
    cron = await wait_for(lambda: phase_of(site_a.store, kt.VELERO_SCHEDULES, "cron", ("FailedValidation",)))
    assert "unsupported in lab" in cron["status"]["validationErrors"][0]
    await asyncio.sleep(0.5)  # a few more schedule ticks: nothing else is due within the hour
    assert len(of("hourly")) == 1 and of("later") == []
    assert site_a.store.get(kt.VELERO_SCHEDULES, NS, "later")["status"]["lastSkipped"].endswith("Z")
    for schedule in ("hourly", "later", "cron"):
        site_a.store.delete(kt.VELERO_SCHEDULES, NS, schedule)


async def test_schedule_every_runs_again_after_the_interval(site_a: Site) -> None:
    site_a.store.create(kt.VELERO_SCHEDULES, velero_obj("Schedule", "often", {
        "schedule": "@every 1s", "template": {"includedNamespaces": ["other"]}}))
    try:
        await wait_for(lambda: len(site_a.store.list(kt.VELERO_BACKUPS, NS,
                                                     label_selector="velero.io/schedule-name=often")[0]) >= 2)
    finally:
        site_a.store.delete(kt.VELERO_SCHEDULES, NS, "often")
