"""One HTTP client for every provider API, with the project's error mapping in one place.

Adapters describe *what* to call; this module decides what a failure means (after httpx's
``map_httpcore_exceptions``):

=========================  ==============================================================
answer                     becomes
=========================  ==============================================================
timeout, refused, reset    :class:`~failover.core.errors.TemporaryError` (retried)
429                        :class:`~failover.core.errors.TemporaryError` with ``delay`` from
                           ``Retry-After`` (seconds or HTTP date)
5xx                        :class:`~failover.core.errors.TemporaryError` (retried)
401                        the authenticator is asked for fresh credentials **once**; a second
                           401 is :class:`~failover.core.errors.AuthError`
404                        :class:`NotFoundError` (permanent)
other 4xx                  :class:`ApiError` (permanent), with the vendor's message
body that is not JSON      :class:`~failover.core.errors.ProtocolError` (from :meth:`ApiClient.json`)
=========================  ==============================================================

Error texts name the service, method, path and status, plus the vendor's message passed through
:func:`failover.core.secrets.redact`; request headers (which carry tokens) never appear anywhere.
"""

from __future__ import annotations

import email.utils
import json as jsonlib
import logging
import re
import ssl
import time
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import httpx

from failover.core import errors, retry, secrets

DEFAULT_TIMEOUT = 10.0

#: headers whose values are credentials; httpcore logs raw headers at DEBUG before any adapter
#: could register a freshly issued token, so they are registered and masked in those records
SECRET_HEADERS = ("x-subject-token", "x-auth-token", "authorization", "x-api-key", "proxy-authorization")
_HEADER_VALUE = re.compile(r"(\(b'(?:" + "|".join(SECRET_HEADERS) + r")', b')([^']*)(')", re.IGNORECASE)


class SecretHeaderFilter(logging.Filter):
    """Registers and masks credential header values in httpcore's debug records."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "b'" not in message:
            return True
        matches = list(_HEADER_VALUE.finditer(message))
        if matches:
            for match in matches:
                secrets.register(match.group(2))
            record.msg, record.args = _HEADER_VALUE.sub(rf"\g<1>{secrets.MASK}\g<3>", message), None
        return True


def install_header_filter() -> None:
    """Install :class:`SecretHeaderFilter` on httpcore's loggers (idempotent)."""
    for name in ("httpcore.http11", "httpcore.http2", "httpcore.connection"):
        target = logging.getLogger(name)
        if not any(isinstance(f, SecretHeaderFilter) for f in target.filters):
            target.addFilter(SecretHeaderFilter())


install_header_filter()


class ApiError(errors.PermanentError):
    """The provider rejected a request (4xx other than 401/429)."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


class NotFoundError(ApiError):
    """404: the addressed object does not exist."""


class Authenticator(Protocol):
    """Supplies auth headers; caches its token until expiry."""

    async def headers(self, client: httpx.AsyncClient, *, refresh: bool = False) -> dict[str, str]:
        """Auth headers for the next request; ``refresh=True`` discards any cached token."""
        ...


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _vendor_message(response: httpx.Response) -> str:
    """The vendor's error text from the known error body shapes, redacted and shortened."""
    try:
        body = response.json()
    except ValueError:
        text = response.text
    else:
        text = _pick_message(body) if isinstance(body, dict) else ""
        if not text:
            text = jsonlib.dumps(body)[:300]
    return secrets.redact(text.strip())[:300]


def _pick_message(body: Mapping[str, Any]) -> str:
    # IONOS {"httpStatus","messages":[{"errorCode","message"}]}; STACKIT {"error","message"};
    # OTC CCE {"errorCode","errorMessage"}; OTC DNS/Designate {"code","message"}; Keystone
    # {"error":{"message"}}; PowerDNS {"error"}.
    messages = body.get("messages")
    if isinstance(messages, list) and messages and isinstance(messages[0], dict):
        return "; ".join(str(m.get("message", "")) for m in messages if isinstance(m, dict))
    for key in ("message", "errorMessage", "error_description"):
        if isinstance(body.get(key), str):
            return str(body[key])
    err = body.get("error")
    if isinstance(err, dict) and isinstance(err.get("message"), str):
        return str(err["message"])
    if isinstance(err, str):
        return err
    return ""


class ApiClient:
    """An ``httpx.AsyncClient`` for one provider service with retries and error mapping."""

    def __init__(
        self,
        *,
        base_url: str,
        service: str,
        auth: Authenticator | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        attempts: int = 4,
        max_delay: float = 10.0,
        verify: bool | ssl.SSLContext = True,
    ) -> None:
        self.service = service
        self._auth = auth
        self._attempts = attempts
        self._max_delay = max_delay
        self._client = httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=timeout, verify=verify)

    @property
    def http(self) -> httpx.AsyncClient:
        """The underlying client (authenticators use it for token requests)."""
        return self._client

    async def aclose(self) -> None:
        await self._client.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str | int] | None = None,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
        ok: Sequence[int] = (200, 201, 202, 204),
    ) -> httpx.Response:
        """Send one request (retried on temporary failures) and return a successful response."""

        async def once() -> httpx.Response:
            return await self._send(method, path, json=json, params=params, headers=headers,
                                    content=content, ok=ok)

        return await retry.call(once, attempts=self._attempts, max_delay=self._max_delay)

    async def json(self, method: str, path: str, **kwargs: Any) -> Any:
        """Like :meth:`request`, returning the parsed JSON body (ProtocolError if it is not JSON)."""
        response = await self.request(method, path, **kwargs)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise errors.ProtocolError(
                f"{self.service}: {method} {path} answered {response.status_code} with a body "
                "that is not JSON"
            ) from exc

    async def _send(
        self,
        method: str,
        path: str,
        *,
        json: Any,
        params: Mapping[str, str | int] | None,
        headers: Mapping[str, str] | None,
        content: bytes | None,
        ok: Sequence[int],
    ) -> httpx.Response:
        refreshed = False
        while True:
            merged = dict(headers or {})
            if self._auth is not None:
                merged.update(await self._auth.headers(self._client, refresh=refreshed))
            try:
                response = await self._client.request(
                    method, path, json=json, params=params, headers=merged, content=content
                )
            except httpx.TimeoutException as exc:
                raise errors.TemporaryError(f"{self.service}: {method} {path} timed out") from exc
            except httpx.ConnectError as exc:
                raise errors.TemporaryError(f"{self.service}: {method} {path}: cannot connect") from exc
            except httpx.TransportError as exc:
                raise errors.TemporaryError(
                    f"{self.service}: {method} {path} failed: {type(exc).__name__}"
                ) from exc
            if response.status_code == 401 and self._auth is not None and not refreshed:
                refreshed = True
                continue
            return self._check(method, path, response, ok)

    def _check(self, method: str, path: str, response: httpx.Response, ok: Sequence[int]) -> httpx.Response:
        status = response.status_code
        if status in ok:
            return response
        where = f"{self.service}: {method} {path} answered {status}"
        detail = _vendor_message(response)
        text = f"{where}: {detail}" if detail else where
        if status == 401:
            raise errors.AuthError(f"{text} (credentials rejected after re-authentication)")
        if status == 429:
            delay = parse_retry_after(response.headers.get("Retry-After"))
            raise errors.TemporaryError(text, delay=delay)
        if status >= 500:
            raise errors.TemporaryError(text)
        if status == 404:
            raise NotFoundError(text, status=status)
        raise ApiError(text, status=status)
