"""The lab's PersistentVolumes: one directory per site, namespace and claim, holding the users' files.

A real openDesk keeps most of its data on volumes (LDAP, mail, Synapse media, the databases), and
Velero carries it across providers only through its file-system backup (kopia). The lab models
that data as plain files under ``<state>/lab/volumes/<site>/<namespace>/<pvc>/``: the ingress
writes a user's file into the claim of the component that serves it, the lab's Velero backs the
claims up into the kopia repository and restores them on the target, and the demo counts the
files a user wrote that the new site's volume does not hold.

Which claim holds a component's users' files follows the seed (``seed.pvc_names``): the first
claim of the component's first workload.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from failover.config import models
from failover.lab import seed

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,127}$")


def users_claim(component: models.Component) -> str | None:
    """The claim that holds ``component``'s users' files (None if it has no claim)."""
    names = seed.pvc_names(component)
    return names[0] if names else None


def site_root(lab_root: Path, site: str) -> Path:
    """``<state>/lab/volumes/<site>``: where a site's volumes live."""
    return lab_root / "volumes" / site


class VolumeStore:
    """The volumes of one site's cluster."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def reset(self) -> VolumeStore:
        """Start empty (a new lab's clusters have fresh volumes); returns self."""
        shutil.rmtree(self.root, ignore_errors=True)
        self.root.mkdir(parents=True, exist_ok=True)
        return self

    def path(self, namespace: str, claim: str) -> Path:
        if not (_NAME.match(namespace) and _NAME.match(claim)):
            raise ValueError(f"not a namespace/claim name: {namespace}/{claim}")
        return self.root / namespace / claim

    def write_file(self, namespace: str, claim: str, name: str, data: bytes) -> None:
        """Write one file atomically (a backup never reads a half-written one)."""
        if not _NAME.match(name):
            raise ValueError(f"not a file name: {name!r}")
        directory = self.path(namespace, claim)
        directory.mkdir(parents=True, exist_ok=True)
        tmp = directory / f".{name}.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, directory / name)

    def files(self, namespace: str, claim: str) -> dict[str, bytes]:
        """Every file of the claim (relative name → content); empty if the volume holds nothing."""
        directory = self.path(namespace, claim)
        if not directory.is_dir():
            return {}
        return {p.name: p.read_bytes() for p in sorted(directory.iterdir())
                if p.is_file() and not p.name.startswith(".")}

    def names(self, namespace: str, claim: str) -> list[str]:
        directory = self.path(namespace, claim)
        if not directory.is_dir():
            return []
        return sorted(p.name for p in directory.iterdir() if p.is_file() and not p.name.startswith("."))

    def replace(self, namespace: str, claim: str, files: dict[str, bytes]) -> None:
        """Make the volume hold exactly ``files`` (a restore into a fresh claim)."""
        for name in set(self.names(namespace, claim)) - set(files):
            (self.path(namespace, claim) / name).unlink(missing_ok=True)
        for name, data in files.items():
            self.write_file(namespace, claim, name, data)
