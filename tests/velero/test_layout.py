"""Velero's object keys, byte for byte (pkg/persistence/object_store_layout.go)."""

from __future__ import annotations

import pytest

from failover.velero import layout


@pytest.mark.parametrize("prefix, root", [("", ""), ("p", "p/"), ("/p/q/", "p/q/")])
def test_root_normalises_the_prefix(prefix: str, root: str) -> None:
    assert layout.root(prefix) == root


def test_backup_keys_without_prefix() -> None:
    b = "b1"
    assert layout.backup_metadata("", b) == "backups/b1/velero-backup.json"
    assert layout.backup_tarball("", b) == "backups/b1/b1.tar.gz"
    assert layout.backup_logs("", b) == "backups/b1/b1-logs.gz"
    assert layout.backup_pod_volume_backups("", b) == "backups/b1/b1-podvolumebackups.json.gz"
    assert layout.backup_volume_snapshots("", b) == "backups/b1/b1-volumesnapshots.json.gz"
    assert layout.backup_item_operations("", b) == "backups/b1/b1-itemoperations.json.gz"
    assert layout.backup_resource_list("", b) == "backups/b1/b1-resource-list.json.gz"
    assert layout.backup_results("", b) == "backups/b1/b1-results.gz"
    assert layout.backup_volume_info("", b) == "backups/b1/b1-volumeinfo.json.gz"
    assert layout.backup_csi_file("", b, "volumesnapshots") == "backups/b1/b1-csi-volumesnapshots.json.gz"


def test_backup_and_restore_keys_with_prefix() -> None:
    assert layout.backup_metadata("site", "b1") == "site/backups/b1/velero-backup.json"
    assert layout.backup_dir("site", "b1") == "site/backups/b1/"
    assert layout.restore_logs("site", "r1") == "site/restores/r1/restore-r1-logs.gz"
    assert layout.restore_results("site", "r1") == "site/restores/r1/restore-r1-results.gz"
    assert layout.restore_resource_list("site", "r1") == "site/restores/r1/restore-r1-resource-list.json.gz"
    assert layout.restore_item_operations("site", "r1") == "site/restores/r1/restore-r1-itemoperations.json.gz"
    assert layout.restore_volume_info("site", "r1") == "site/restores/r1/r1-volumeinfo.json.gz"


def test_backup_name_from_common_prefix() -> None:
    assert layout.backup_name_from_prefix("", "backups/b1/") == "b1"
    assert layout.backup_name_from_prefix("p", "p/backups/b1/") == "b1"
    assert layout.backup_name_from_prefix("p", "backups/b1/") is None
    assert layout.backup_name_from_prefix("", "backups/") is None


def test_is_valid_accepts_only_velero_top_level_dirs() -> None:
    good = ["backups/", "restores/", "restic/", "metadata/", "plugins/", "kopia/"]
    assert layout.is_valid("", good)
    assert layout.invalid_top_level_dirs("", [*good, "junk/", "other/"]) == ["junk", "other"]
    assert layout.is_valid("p", ["p/backups/"])
    assert not layout.is_valid("p", ["p/backups/", "p/x/"])
