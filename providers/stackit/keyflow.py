"""The STACKIT service-account key flow: a key file in, a cached bearer token out.

Why a module of its own: STACKIT's machine credential is a *key* (JSON with an RSA private key),
exchanged for a short-lived token by POSTing a self-signed RS512 JWT (``stackit-sdk-go`` core
``KeyFlow``: header ``kid``; claims ``iss``/``sub``/``aud`` from the key, ``jti``, ``iat``,
``exp`` = now + 1 h). Every value learnt here (private key, assertion, tokens) is registered with
:mod:`failover.core.secrets` the moment it exists and never reaches a log line, an error or a repr.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from pydantic import BaseModel, ConfigDict, ValidationError

from failover.core import errors, http, secrets

logger = logging.getLogger(__name__)

LEGACY_TOKEN_ENDPOINT = "https://service-account.api.stackit.cloud/token"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


class ServiceAccountKey(BaseModel):
    """The fields of a key file the key flow needs (``credentials`` of the JSON file)."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    kid: str
    iss: str
    sub: str
    aud: str
    privateKey: str
    tokenEndpoint: str | None = None

    def __repr__(self) -> str:  # the private key never reaches a repr
        return f"ServiceAccountKey(kid={self.kid!r}, iss={self.iss!r})"

    __str__ = __repr__

    @classmethod
    def parse(cls, text: str) -> ServiceAccountKey:
        try:
            doc = json.loads(text)
            key = cls.model_validate(doc["credentials"])
        except (ValueError, KeyError, TypeError, ValidationError) as exc:
            # never chain the parser's error: it may quote the file's content
            raise errors.PermanentError(
                "provider stackit: credentials.service_account_key is not a STACKIT service-account "
                f"key file with credentials.kid/iss/sub/aud/privateKey ({type(exc).__name__})") from None
        secrets.register(key.privateKey)
        return key


class KeyFlowAuth:
    """:class:`failover.core.http.Authenticator` for the STACKIT key flow; caches the token until expiry."""

    def __init__(self, *, load_key: Callable[[], str], token_endpoint: str, timeout: float,
                 clock: Callable[[], float] = time.time) -> None:
        self._load_key = load_key
        self._default_endpoint = token_endpoint
        self._timeout = timeout
        self._clock = clock
        self._key: ServiceAccountKey | None = None
        self._api: http.ApiClient | None = None
        self._path = ""
        self._signer: Any = None
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = asyncio.Lock()
        self.token_requests = 0  #: how many tokens this authenticator fetched

    def __repr__(self) -> str:
        return f"KeyFlowAuth(cached={self._token is not None})"

    async def headers(self, client: httpx.AsyncClient, *, refresh: bool = False) -> dict[str, str]:
        async with self._lock:
            if refresh or self._token is None or self._clock() >= self._expires_at:
                await self._fetch()
            assert self._token is not None
            return {"Authorization": f"Bearer {self._token}"}

    def assertion(self, key: ServiceAccountKey) -> str:
        """The RS512 JWT that proves possession of the key (claims as in the SDK's KeyFlow).

        It is not registered as a secret: it only ever travels in the token request's form body,
        which nothing logs, and one fresh ~800-character value per token would grow the
        redaction pattern without end.
        """
        now = int(self._clock())
        claims = {"iss": key.iss, "sub": key.sub, "aud": key.aud, "jti": str(uuid.uuid4()),
                  "iat": now, "exp": now + 3600}
        try:
            if self._signer is None:  # parse the PEM once: it costs tens of ms
                self._signer = serialization.load_pem_private_key(key.privateKey.encode("ascii"), password=None)
            token = jwt.encode(claims, self._signer, algorithm="RS512", headers={"kid": key.kid})
        except (ValueError, TypeError, UnicodeError, jwt.PyJWTError):
            raise errors.PermanentError(
                f"provider stackit: cannot sign with service-account key {key.kid} (not an RSA private key)"
            ) from None
        return str(token)

    def _client(self) -> tuple[ServiceAccountKey, http.ApiClient]:
        if self._key is None or self._api is None:
            self._key = ServiceAccountKey.parse(self._load_key())
            url = httpx.URL(self._key.tokenEndpoint or self._default_endpoint)
            self._path = url.raw_path.decode("ascii") or "/"
            origin = f"{url.scheme}://{url.netloc.decode('ascii')}"
            # one try: a token request runs inside an API request's retry loop, which retries
            # (and honours Retry-After) for both; nested retries would multiply the attempts
            self._api = http.ApiClient(base_url=origin, service="stackit token", timeout=self._timeout,
                                       attempts=1)
        return self._key, self._api

    async def _fetch(self) -> None:
        key, api = self._client()
        form = {"grant_type": JWT_BEARER, "assertion": self.assertion(key)}
        self.token_requests += 1
        try:
            doc = await api.json("POST", self._path, content=_form(form),
                                 headers={"Content-Type": "application/x-www-form-urlencoded"}, ok=(200,))
        except http.ApiError as exc:
            raise errors.AuthError(f"provider stackit: service-account key {key.kid} rejected: {exc}") from exc
        token = doc.get("access_token") if isinstance(doc, dict) else None
        expires_in = doc.get("expires_in") if isinstance(doc, dict) else None
        if not isinstance(token, str) or not token or not isinstance(expires_in, int | float):
            raise errors.ProtocolError("stackit token: answer lacks access_token/expires_in")
        secrets.register(token)
        secrets.register(doc.get("refresh_token") if isinstance(doc.get("refresh_token"), str) else None)
        self._token = token
        margin = min(60.0, float(expires_in) / 10)
        self._expires_at = self._clock() + float(expires_in) - margin
        logger.debug("stackit: new access token for key %s, valid %ss", key.kid, expires_in)

    async def aclose(self) -> None:
        if self._api is not None:
            await self._api.aclose()


def _form(fields: dict[str, str]) -> bytes:
    return str(httpx.QueryParams(fields)).encode("ascii")
