"""Real parts for the operations surface: a Synapse homeserver (once per session, in its own
virtualenv so its pinned dependencies never meet the project's), an SMTP server with STARTTLS
(aiosmtpd), and headless Chromium for the status page."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import hmac
import os
import secrets
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

SYNAPSE_VENV = Path(os.environ.get("FAILOVER_SYNAPSE_VENV",
                                   Path.home() / ".cache" / "failover-test" / "synapse-venv"))
CHROMIUM = "/usr/bin/chromium"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- Synapse ---------------------------------------------------------------------------------------

@dataclass
class Matrix:
    url: str
    token: str
    room: str
    user: str

    def messages(self) -> list[str]:
        r = httpx.get(f"{self.url}/_matrix/client/v3/rooms/{self.room}/messages",
                      params={"dir": "b", "limit": "50"}, headers={"Authorization": f"Bearer {self.token}"},
                      timeout=10)
        r.raise_for_status()
        return [str(e["content"].get("body", "")) for e in r.json()["chunk"] if e.get("type") == "m.room.message"]


def _synapse_python() -> Path:
    python = SYNAPSE_VENV / "bin" / "python"
    probe = subprocess.run([str(python), "-c", "import synapse"], capture_output=True, check=False) \
        if python.exists() else None
    if probe is None or probe.returncode != 0:
        subprocess.run([sys.executable, "-m", "venv", str(SYNAPSE_VENV)], check=True, timeout=300)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "matrix-synapse"], check=True, timeout=1500)
    return python


def _synapse_config(home: Path, port: int, shared_secret: str) -> Path:
    seed = base64.b64encode(secrets.token_bytes(32)).decode().rstrip("=")
    (home / "signing.key").write_text(f"ed25519 a_test {seed}\n")
    rate = "{per_second: 1000, burst_count: 1000}"
    cfg = home / "homeserver.yaml"
    cfg.write_text(f"""
server_name: failover.test
pid_file: {home}/homeserver.pid
listeners:
  - {{port: {port}, bind_addresses: ['127.0.0.1'], type: http, tls: false, x_forwarded: false,
     resources: [{{names: [client], compress: false}}]}}
database: {{name: sqlite3, args: {{database: {home}/homeserver.db}}}}
media_store_path: {home}/media
signing_key_path: {home}/signing.key
registration_shared_secret: {shared_secret}
macaroon_secret_key: {secrets.token_hex(16)}
form_secret: {secrets.token_hex(16)}
report_stats: false
trusted_key_servers: []
suppress_key_server_warning: true
enable_registration: false
rc_message: {rate}
rc_login: {{address: {rate}, account: {rate}, failed_attempts: {rate}}}
rc_registration: {rate}
rc_admin_redaction: {rate}
rc_joins: {{local: {rate}, remote: {rate}}}
""")
    return cfg


def _register_bot(url: str, shared_secret: str, user: str) -> str:
    nonce = httpx.get(f"{url}/_synapse/admin/v1/register", timeout=10).json()["nonce"]
    password = secrets.token_urlsafe(16)
    mac = hmac.new(shared_secret.encode(), digestmod=hashlib.sha1)
    for part in (nonce, user, password):
        mac.update(part.encode())
        mac.update(b"\x00")
    mac.update(b"notadmin")
    r = httpx.post(f"{url}/_synapse/admin/v1/register", timeout=30,
                   json={"nonce": nonce, "username": user, "password": password, "admin": False,
                         "mac": mac.hexdigest()})
    r.raise_for_status()
    return str(r.json()["access_token"])


@pytest.fixture(scope="session")
def synapse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Matrix]:
    python = _synapse_python()
    home = tmp_path_factory.mktemp("synapse")
    port = free_port()
    shared_secret = secrets.token_hex(16)
    cfg = _synapse_config(home, port, shared_secret)
    log = (home / "synapse.log").open("w")
    proc = subprocess.Popen([str(python), "-m", "synapse.app.homeserver", "-c", str(cfg)], cwd=home,
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"synapse exited {proc.returncode}: {(home / 'synapse.log').read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/_matrix/client/versions", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("synapse did not answer within 120 s")
            time.sleep(0.3)  # start-up poll of an external process (not a test synchronisation)
        token = _register_bot(url, shared_secret, "failover-bot")
        room = httpx.post(f"{url}/_matrix/client/v3/createRoom", headers={"Authorization": f"Bearer {token}"},
                          json={"name": "Krisenstab", "preset": "private_chat"}, timeout=30)
        room.raise_for_status()
        yield Matrix(url=url, token=token, room=str(room.json()["room_id"]), user="@failover-bot:failover.test")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


# --- SMTP ------------------------------------------------------------------------------------------

@dataclass
class Mailbox:
    host: str
    port: int
    messages: list[str] = field(default_factory=list)
    tls_sessions: int = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.content
        text = content.decode("utf-8", "replace") if isinstance(content, bytes) else str(content)
        if session.ssl is not None:
            self.tls_sessions += 1
        self.messages.append(text)
        return "250 OK"


def _self_signed(directory: Path) -> ssl.SSLContext:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1)).sign(key, hashes.SHA256()))
    (directory / "smtp.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "smtp.key").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                          serialization.PrivateFormat.PKCS8,
                                                          serialization.NoEncryption()))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(directory / "smtp.crt", directory / "smtp.key")
    return context


@pytest.fixture(scope="session")
def smtp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mailbox]:
    box = Mailbox("127.0.0.1", free_port())
    context = _self_signed(tmp_path_factory.mktemp("smtp"))
    controller = Controller(box, hostname=box.host, port=box.port, tls_context=context, require_starttls=True)
    controller.start()
    try:
        yield box
    finally:
        controller.stop()


# --- Chromium --------------------------------------------------------------------------------------

async def chromium(url: str, tmp: Path, *, screenshot: Path | None = None, size: str = "1200,1500",
                   budget_ms: int = 0) -> str:
    """Load ``url`` in headless Chromium; return the DOM (and take a screenshot, if asked)."""
    profile = tmp / f"chromium-{secrets.token_hex(4)}"
    args = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
            f"--user-data-dir={profile}", f"--window-size={size}"]
    if budget_ms:
        args.append(f"--virtual-time-budget={budget_ms}")
    args += [f"--screenshot={screenshot}", "--dump-dom"] if screenshot else ["--dump-dom"]
    proc = await asyncio.create_subprocess_exec(*args, url, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=90)
    if proc.returncode != 0 or (screenshot is not None and not screenshot.exists()):
        raise AssertionError(f"chromium {url} -> {proc.returncode}: {err.decode()[-1500:]}")
    return out.decode()

