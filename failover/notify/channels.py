"""The channels a notice goes out through: Matrix, e-mail (SMTP), a JSON webhook.

Each sender makes one attempt and raises :class:`~failover.core.errors.TemporaryError` when it
failed (the dispatcher retries later). Every attempt of the same delivery carries the same
idempotency key — the Matrix transaction id, the e-mail's Message-ID, the webhook's
``Idempotency-Key`` — so a receiver that sees a notice twice (at-least-once) can tell.
"""

from __future__ import annotations

import hashlib
import ssl
import urllib.parse
from email.message import EmailMessage
from typing import Protocol

import aiosmtplib
import httpx

from failover.config.surface import Channel, EmailChannel, MatrixChannel, WebhookChannel
from failover.core import errors, secrets
from failover.notify.outbox import Delivery


class Sender(Protocol):
    async def send(self, delivery: Delivery) -> None:
        """Deliver once; raises TemporaryError on failure (never anything else)."""


def txn_id(delivery: Delivery) -> str:
    return hashlib.sha256(delivery.key.encode()).hexdigest()[:32]


class MatrixSender:
    def __init__(self, channel: MatrixChannel, http: httpx.AsyncClient) -> None:
        self.channel = channel
        self.http = http
        self._room_id: str | None = channel.room if channel.room.startswith("!") else None

    async def _room(self, token: str) -> str:
        if self._room_id is None:
            alias = urllib.parse.quote(self.channel.room, safe="")
            r = await self.http.get(f"{self.channel.homeserver.rstrip('/')}/_matrix/client/v3/directory/room/{alias}",
                                    headers={"Authorization": f"Bearer {token}"})
            _check(r, f"resolving {self.channel.room}")
            self._room_id = str(r.json()["room_id"])
        return self._room_id

    async def send(self, delivery: Delivery) -> None:
        token = self.channel.access_token.read("matrix access token")
        try:
            room = urllib.parse.quote(await self._room(token), safe="")
            url = (f"{self.channel.homeserver.rstrip('/')}/_matrix/client/v3/rooms/{room}/send/m.room.message/"
                   f"{txn_id(delivery)}")
            r = await self.http.put(url, headers={"Authorization": f"Bearer {token}"},
                                    json={"msgtype": "m.text", "body": delivery.notice.text()})
        except httpx.HTTPError as exc:
            raise errors.TemporaryError(f"matrix {self.channel.homeserver}: {type(exc).__name__}") from exc
        _check(r, "sending to the room")


class EmailSender:
    def __init__(self, channel: EmailChannel, timeout: float) -> None:
        self.channel = channel
        self.timeout = timeout

    def message(self, delivery: Delivery) -> EmailMessage:
        n = delivery.notice
        msg = EmailMessage()
        msg["From"] = self.channel.sender
        msg["To"] = ", ".join(self.channel.to)
        msg["Subject"] = n.title
        msg["Message-ID"] = f"<{txn_id(delivery)}@{self.channel.sender.split('@', 1)[1]}>"
        msg.set_content(n.text())
        return msg

    async def send(self, delivery: Delivery) -> None:
        c = self.channel
        context = ssl.create_default_context()
        if not c.verify_tls:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        try:
            await aiosmtplib.send(
                self.message(delivery), hostname=c.host, port=c.port, start_tls=c.starttls, use_tls=False,
                tls_context=context if c.starttls else None,
                username=c.username.read("smtp username") if c.username else None,
                password=c.password.read("smtp password") if c.password else None, timeout=self.timeout)
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise errors.TemporaryError(f"smtp {c.host}:{c.port}: {type(exc).__name__}: "
                                        f"{secrets.redact(str(exc))[:160]}") from exc


class WebhookSender:
    def __init__(self, channel: WebhookChannel, http: httpx.AsyncClient) -> None:
        self.channel = channel
        self.http = http

    async def send(self, delivery: Delivery) -> None:
        n = delivery.notice
        body = {k: v for k, v in n.__dict__.items()}
        body["text"] = n.text()
        try:
            r = await self.http.post(self.channel.url, json=body, headers={"Idempotency-Key": txn_id(delivery)})
        except httpx.HTTPError as exc:
            raise errors.TemporaryError(f"webhook {self.channel.url}: {type(exc).__name__}") from exc
        _check(r, self.channel.url)


def sender_for(channel: Channel, *, http: httpx.AsyncClient, timeout: float) -> Sender:
    if isinstance(channel, MatrixChannel):
        return MatrixSender(channel, http)
    if isinstance(channel, EmailChannel):
        return EmailSender(channel, timeout)
    return WebhookSender(channel, http)


def _check(r: httpx.Response, what: str) -> None:
    if r.status_code >= 300:
        raise errors.TemporaryError(f"{what}: HTTP {r.status_code} {secrets.redact(r.text[:160])}")
