"""The lab CA and test users of the lab's Kubernetes APIs (a token user and a certificate user)."""

from __future__ import annotations

from pathlib import Path

from failover.lab.kube.auth import Authenticator
from failover.lab.pki import ClientCert, LabCA, new_token


class Credentials:
    """The lab CA and one token user and one certificate user of the test clusters."""

    def __init__(self, directory: Path) -> None:
        self.ca = LabCA(directory)
        self.token = new_token()
        self.cert: ClientCert = self.ca.client_cert("cert-admin", ["system:masters"])

    def authenticator(self) -> Authenticator:
        return Authenticator(tokens={self.token: "token-admin"})

    def kubeconfig(self, server: str, *, variant: str = "token") -> dict[str, object]:
        if variant == "token":
            return self.ca.kubeconfig(name="test", server=server, token=self.token)
        return self.ca.kubeconfig(name="test", server=server, cert=self.cert)
