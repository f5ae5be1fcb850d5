"""The lab's certificate authority: TLS for its Kubernetes APIs and client certificates for users.

Real clusters serve their API over TLS with a cluster CA and accept a bearer token or a client
certificate signed by that CA; the lab does the same so that nothing proves less than a real
cluster would. EC P-256 keys (fast to make); the CA and the server certificate (for ``127.0.0.1``
and ``localhost``) are made once per lab, client certificates per user (``CN`` = user name,
``O`` = groups). Keys are written 0600 under the lab's state directory.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import os
import secrets as pysecrets
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = datetime.timedelta(days=2)


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _pem_cert(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _write(path: Path, data: bytes, mode: int = 0o600) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


@dataclass(frozen=True)
class ClientCert:
    user: str
    cert_pem: bytes
    key_pem: bytes


class LabCA:
    """A CA with one server certificate for the lab's loopback APIs."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        os.chmod(directory, 0o700)
        self.directory = directory
        now = datetime.datetime.now(datetime.UTC)
        self._key = _key()
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "failover lab CA")])
        self.cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                     .public_key(self._key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + VALIDITY)
                     .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                     .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                                  content_commitment=False, key_encipherment=False,
                                                  data_encipherment=False, key_agreement=False,
                                                  encipher_only=False, decipher_only=False), critical=True)
                     .sign(self._key, hashes.SHA256()))
        self.ca_file = directory / "ca.crt"
        _write(self.ca_file, _pem_cert(self.cert), 0o644)
        server_key = _key()
        sans = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                            x509.DNSName("localhost")])
        server = self._issue(server_key, "failover-lab-apiserver", [], sans, ExtendedKeyUsageOID.SERVER_AUTH)
        self.server_cert_file, self.server_key_file = directory / "apiserver.crt", directory / "apiserver.key"
        _write(self.server_cert_file, _pem_cert(server), 0o644)
        _write(self.server_key_file, _pem_key(server_key))

    @property
    def ca_pem(self) -> bytes:
        return _pem_cert(self.cert)

    def _issue(self, key: ec.EllipticCurvePrivateKey, cn: str, groups: list[str],
               sans: x509.SubjectAlternativeName | None, usage: x509.ObjectIdentifier) -> x509.Certificate:
        now = datetime.datetime.now(datetime.UTC)
        attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn),
                 *(x509.NameAttribute(NameOID.ORGANIZATION_NAME, g) for g in groups)]
        builder = (x509.CertificateBuilder().subject_name(x509.Name(attrs)).issuer_name(self.cert.subject)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + VALIDITY)
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.ExtendedKeyUsage([usage]), critical=False))
        if sans is not None:
            builder = builder.add_extension(sans, critical=False)
        return builder.sign(self._key, hashes.SHA256())

    def client_cert(self, user: str, groups: list[str] | None = None) -> ClientCert:
        key = _key()
        cert = self._issue(key, user, groups or [], None, ExtendedKeyUsageOID.CLIENT_AUTH)
        return ClientCert(user=user, cert_pem=_pem_cert(cert), key_pem=_pem_key(key))

    def server_context(self) -> ssl.SSLContext:
        """TLS for a lab API: the server certificate; client certificates of this CA are verified
        when presented (a bearer token is the other way in)."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(self.ca_file))
        context.load_cert_chain(str(self.server_cert_file), str(self.server_key_file))
        context.verify_mode = ssl.CERT_OPTIONAL
        return context

    def client_context(self, cert: ClientCert | None = None) -> ssl.SSLContext:
        """A client context trusting this CA (for the lab's own callers and tests)."""
        context = ssl.create_default_context(cafile=str(self.ca_file))
        if cert is not None:
            cert_file = self.directory / f"{cert.user}.crt"
            key_file = self.directory / f"{cert.user}.key"
            _write(cert_file, cert.cert_pem)
            _write(key_file, cert.key_pem)
            context.load_cert_chain(str(cert_file), str(key_file))
        return context

    def kubeconfig(self, *, name: str, server: str, token: str | None = None,
                   cert: ClientCert | None = None) -> dict[str, object]:
        """A kubeconfig as a cloud hands it out: the CA inline, a token or a client certificate."""
        user: dict[str, str] = {}
        if token is not None:
            user["token"] = token
        if cert is not None:
            user["client-certificate-data"] = base64.b64encode(cert.cert_pem).decode("ascii")
            user["client-key-data"] = base64.b64encode(cert.key_pem).decode("ascii")
        ca = base64.b64encode(self.ca_pem).decode("ascii")
        return {
            "apiVersion": "v1", "kind": "Config", "current-context": name,
            "clusters": [{"name": name, "cluster": {"server": server, "certificate-authority-data": ca}}],
            "users": [{"name": f"{name}-admin", "user": user}],
            "contexts": [{"name": name, "context": {"cluster": name, "user": f"{name}-admin"}}],
        }


def new_token() -> str:
    return pysecrets.token_urlsafe(24)
