"""Who may talk to the lab's Kubernetes APIs, and with what: the lab CA, one credential per site and
the kubeconfig files that carry them (``lab status --json`` gives each site's path; the provider
emulators hand out the same text through their vendor APIs).

As the clouds do it: IONOS hands out kubeconfigs with a bearer token; STACKIT SKE, OTC CCE and the
SCS Cluster API kubeconfig Secret carry a client certificate. The SCS management cluster accepts the
provider's ``management_token``. Every admitted request is recorded per site in RBAC terms, so a lab
run shows exactly which verbs on which resources the product used.
"""

from __future__ import annotations

import dataclasses
import os
import ssl
from pathlib import Path

import yaml

from failover.lab.kube.auth import Access, Authenticator
from failover.lab.pki import LabCA, new_token

TOKEN_KINDS = frozenset({"ionos"})  #: provider kinds whose kubeconfigs carry a token, not a certificate


class LabAccess:
    def __init__(self, root: Path) -> None:
        self.ca = LabCA(root / "pki")
        self.kubeconfigs = root / "kubeconfigs"
        self.kubeconfigs.mkdir(parents=True, exist_ok=True)
        os.chmod(self.kubeconfigs, 0o700)
        self.records: dict[str, set[Access]] = {}
        self._tls = self.ca.server_context()
        self._users: dict[str, tuple[str, str | None]] = {}  #: site -> (user, token or None for a cert)
        self._kubeconfigs: dict[str, tuple[str, str, Path]] = {}  #: site -> (server, text, file)

    @property
    def tls(self) -> ssl.SSLContext:
        return self._tls

    def authenticator(self, site: str, kind: str) -> Authenticator:
        """The site's API accepts its own admin credential (and any certificate of the lab CA)."""
        user = f"failover-{site}"
        token = new_token() if kind in TOKEN_KINDS else None
        self._users[site] = (user, token)
        records = self.records.setdefault(site, set())
        return Authenticator(tokens={token: user} if token else {}, records=records)

    def management_authenticator(self) -> Authenticator:
        return Authenticator(records=self.records.setdefault("scs-management", set()))

    def kubeconfig(self, site: str, server: str) -> tuple[str, Path]:
        """The site's kubeconfig (YAML text) and the 0600 file holding it."""
        cached = self._kubeconfigs.get(site)
        if cached is not None and cached[0] == server:
            return cached[1], cached[2]
        user, token = self._users[site]
        cert = None if token else self.ca.client_cert(user, ["system:masters"])
        text = yaml.safe_dump(self.ca.kubeconfig(name=site, server=server, token=token, cert=cert), sort_keys=False)
        path = self.kubeconfigs / f"{site}.yaml"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        self._kubeconfigs[site] = (server, text, path)
        return text, path

    def used(self) -> dict[str, list[dict[str, str]]]:
        """What each site's API was asked for so far (RBAC terms), for ``lab status --json``."""
        return {site: [dataclasses.asdict(a) for a in sorted(records, key=lambda a: (a.group, a.resource, a.verb))]
                for site, records in self.records.items()}
