"""The lab CA and test users of the lab's Kubernetes APIs (a token user and a certificate user)."""

from __future__ import annotations

import base64
import ssl
import tempfile
from pathlib import Path

import yaml

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


def httpx_options(kubeconfig: Path, *, credentials: bool = True) -> dict[str, object]:
    """``verify`` and ``headers`` for a plain httpx call with a lab kubeconfig's credentials (the
    CA, and the bearer token or the client certificate; only the CA without ``credentials``)."""
    doc = yaml.safe_load(kubeconfig.read_text(encoding="utf-8"))
    cluster, user = doc["clusters"][0]["cluster"], doc["users"][0]["user"]
    context = ssl.create_default_context(cadata=base64.b64decode(cluster["certificate-authority-data"]).decode())
    headers: dict[str, str] = {}
    if not credentials:
        pass
    elif "token" in user:
        headers["Authorization"] = f"Bearer {user['token']}"
    else:
        directory = Path(tempfile.mkdtemp(prefix="kubeauth-"))
        (directory / "c.crt").write_bytes(base64.b64decode(user["client-certificate-data"]))
        (directory / "c.key").write_bytes(base64.b64decode(user["client-key-data"]))
        context.load_cert_chain(str(directory / "c.crt"), str(directory / "c.key"))
    return {"verify": context, "headers": headers}
