"""S3 access for Velero buckets: one location model, one client factory, one error translation.

Every site's backups live in an S3-compatible bucket on *its own* provider (IONOS, STACKIT, OTC,
SCS object storage, or a ``moto_server`` process in the lab). Those implementations differ in
small ways, so the client is configured for the common denominator: path-style addressing (no
per-bucket DNS names), checksums only when required (third-party S3s reject botocore's newer
default trailers), short connect/read timeouts and few retries (the caller's retry policy decides
how long to keep trying, not botocore's).

botocore and aiohttp exceptions never leave this module's context managers: connection problems,
timeouts, throttling and 5xx become :class:`~failover.core.errors.TemporaryError`; a missing bucket or
object or a refused credential becomes a :class:`~failover.core.errors.PermanentError` subclass below,
so callers can tell "the backup is not there" from "the storage is down".
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any

import aiobotocore.session
import aiohttp
import botocore.exceptions
from aiobotocore.config import AioConfig
from pydantic import BaseModel, ConfigDict, SecretStr, model_validator

from failover.core import errors, secrets

CONNECT_TIMEOUT = 3.0
READ_TIMEOUT = 10.0
COPY_READ_TIMEOUT = 60.0  #: pooled (copying) clients: completing a large multipart upload takes a while
MAX_ATTEMPTS = 2  # botocore's own retries; the caller's retry.call() does the patient retrying


class S3Location(BaseModel):
    """Where a Velero backup storage location keeps its objects (bucket plus optional prefix)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    endpoint: str
    bucket: str
    access_key: SecretStr
    secret_key: SecretStr
    region: str = "us-east-1"
    prefix: str = ""

    @model_validator(mode="after")
    def _register_secrets(self) -> S3Location:
        secrets.register(self.secret_key.get_secret_value())
        return self

    def describe(self) -> str:
        """``endpoint/bucket[/prefix]`` for messages (never includes credentials)."""
        path = f"{self.bucket}/{self.prefix.strip('/')}" if self.prefix.strip("/") else self.bucket
        return f"{self.endpoint.rstrip('/')}/{path}"


class StoragePermanentError(errors.PermanentError):
    """Base of the permanent S3 failures below."""


class BucketNotFound(StoragePermanentError):
    """The bucket does not exist (NoSuchBucket)."""


class AccessDenied(StoragePermanentError):
    """The credentials were refused or lack permission (AccessDenied, InvalidAccessKeyId, ...)."""


class ObjectNotFound(StoragePermanentError):
    """The object does not exist (NoSuchKey, or 404 on HEAD)."""


_NOT_FOUND_BUCKET = {"NoSuchBucket"}
_NOT_FOUND_KEY = {"NoSuchKey", "404", "NotFound"}
_DENIED = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403", "Forbidden",
           "InvalidToken", "ExpiredToken", "AllAccessDisabled"}
_TEMPORARY = {"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "RequestTimeTooSkewed",
              "ServiceUnavailable", "InternalError", "503", "500", "502", "504"}


def _client_error(exc: botocore.exceptions.ClientError, what: str) -> errors.FailoverError:
    err = exc.response.get("Error", {}) or {}
    code = str(err.get("Code", ""))
    status = int((exc.response.get("ResponseMetadata", {}) or {}).get("HTTPStatusCode", 0) or 0)
    detail = secrets.redact(f"{what}: {code or status} {err.get('Message', '')}".strip())
    if code in _NOT_FOUND_BUCKET:
        return BucketNotFound(detail)
    if code in _NOT_FOUND_KEY:
        return ObjectNotFound(detail)
    if code in _DENIED or status in (401, 403):
        return AccessDenied(detail)
    if code in _TEMPORARY or status >= 500 or status == 429:
        return errors.TemporaryError(detail)
    return errors.PermanentError(detail)


def translate_exception(exc: BaseException, what: str) -> errors.FailoverError | None:
    """Our error for a foreign S3/HTTP exception, or ``None`` if ``exc`` is not one of those."""
    if isinstance(exc, botocore.exceptions.ClientError):
        return _client_error(exc, what)
    if isinstance(exc, botocore.exceptions.NoCredentialsError | botocore.exceptions.PartialCredentialsError):
        return AccessDenied(f"{what}: no usable credentials")
    if isinstance(exc, botocore.exceptions.BotoCoreError | aiohttp.ClientError | TimeoutError | OSError):
        return errors.TemporaryError(secrets.redact(f"{what}: {type(exc).__name__}: {exc}"))
    return None


@contextmanager
def translating(what: str) -> Iterator[None]:
    """Translate foreign exceptions raised inside the block; ``what`` names the operation."""
    try:
        yield
    except errors.FailoverError:
        raise
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        ours = translate_exception(exc, what)
        if ours is None:
            raise
        raise ours from exc


@functools.cache
def _session() -> Any:
    """One botocore session per process: it caches the parsed S3 service model (~0.2 s per load)."""
    return aiobotocore.session.get_session()


def _config(max_connections: int = 10, read_timeout: float = READ_TIMEOUT) -> AioConfig:
    return AioConfig(
        max_pool_connections=max_connections,
        connect_timeout=CONNECT_TIMEOUT,
        read_timeout=read_timeout,
        retries={"max_attempts": MAX_ATTEMPTS, "mode": "standard"},
        s3={"addressing_style": "path"},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )


def _client_kwargs(loc: S3Location, config: AioConfig) -> dict[str, Any]:
    """``create_client`` arguments for ``loc``. A plain-HTTP endpoint gets ``verify=False``: there is
    no certificate to verify, and aiobotocore would otherwise load the whole CA bundle for every
    client it opens (measured: 41 % of the lab supervisor's CPU). HTTPS endpoints always verify."""
    kwargs: dict[str, Any] = {
        "endpoint_url": loc.endpoint, "region_name": loc.region, "config": config,
        "aws_access_key_id": loc.access_key.get_secret_value(),
        "aws_secret_access_key": loc.secret_key.get_secret_value(),
    }
    if loc.endpoint.lower().startswith("http://"):
        kwargs["verify"] = False
    return kwargs


#: the clients :func:`open_client` reuses inside :func:`shared_clients` (None: a new client per block)
_SHARED: contextvars.ContextVar[ClientPool | None] = contextvars.ContextVar("failover_s3_shared", default=None)


@asynccontextmanager
async def shared_clients() -> AsyncIterator[ClientPool]:
    """Within this block, and in every task started inside it, :func:`open_client` hands out one
    client per endpoint instead of opening (and closing) one per operation. For long-lived processes
    (the daemon, the lab): a client costs its model set-up and a cold connection pool, and a probe
    loop opens thousands. A fault still shows: a broken endpoint breaks the pooled connections too."""
    pool = ClientPool(max_connections=32, read_timeout=READ_TIMEOUT)
    token = _SHARED.set(pool)
    try:
        yield pool
    finally:
        _SHARED.reset(token)
        await pool.aclose()


@asynccontextmanager
async def open_client(loc: S3Location) -> AsyncIterator[Any]:
    """An aiobotocore S3 client for ``loc``; foreign errors inside the block are translated.

    Timeouts: connect 3 s, read 10 s, at most 2 attempts per call. Raises TemporaryError on
    connection/timeout/5xx, BucketNotFound/ObjectNotFound/AccessDenied on those answers. Inside
    :func:`shared_clients` the client is the shared one for the endpoint (not closed by this block).
    """
    pool = _SHARED.get()
    if pool is not None:
        client = await pool.client(loc)
        with translating(f"S3 {loc.describe()}"):
            yield client
        return
    session = _session()
    with translating(f"S3 {loc.describe()}"):
        async with session.create_client("s3", **_client_kwargs(loc, _config())) as client:
            yield client


async def ensure_bucket(loc: S3Location) -> None:
    """Create ``loc.bucket`` if it does not exist (idempotent)."""
    async with open_client(loc) as client:
        kwargs: dict[str, Any] = {"Bucket": loc.bucket}
        if loc.region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": loc.region}
        try:
            await client.create_bucket(**kwargs)
        except botocore.exceptions.ClientError as exc:
            code = str((exc.response.get("Error", {}) or {}).get("Code", ""))
            if code != "BucketAlreadyOwnedByYou":  # BucketAlreadyExists: someone else owns it
                raise


async def get_bytes(client: Any, loc: S3Location, key: str) -> bytes:
    """The whole object ``key`` of ``loc.bucket`` (ObjectNotFound if absent)."""
    with translating(f"GET {loc.bucket}/{key}"):
        response = await client.get_object(Bucket=loc.bucket, Key=key)
        async with response["Body"] as stream:
            data: bytes = await stream.read()
        return data


async def put_bytes(client: Any, loc: S3Location, key: str, data: bytes) -> None:
    """Upload ``data`` as ``key`` of ``loc.bucket``."""
    with translating(f"PUT {loc.bucket}/{key}"):
        await client.put_object(Bucket=loc.bucket, Key=key, Body=data)


def _pool_key(loc: S3Location) -> tuple[str, str, str]:
    return (loc.endpoint, loc.region, loc.access_key.get_secret_value())


class ClientPool:
    """One S3 client per endpoint (and credential), opened on first use and reused until closed.

    Opening an aiobotocore client costs tens of milliseconds (and its connection pool starts cold),
    so replication holds one per endpoint for its whole life instead of opening several per backup.
    Calls made with a pooled client must be wrapped in :func:`translating` by the caller. Its read
    timeout is 60 s (a retried CompleteMultipartUpload of a large object is worse than a wait). Closing
    the pool closes every client; the pool may be used again afterwards (clients reopen lazily).
    """

    def __init__(self, *, max_connections: int = 32, read_timeout: float = COPY_READ_TIMEOUT) -> None:
        self.max_connections = max_connections
        self.read_timeout = read_timeout
        self._clients: dict[tuple[str, str, str], Any] = {}
        self._stack = AsyncExitStack()
        self._lock = asyncio.Lock()

    async def client(self, loc: S3Location) -> Any:
        """The client for ``loc``'s endpoint (TemporaryError if it cannot be created)."""
        key = _pool_key(loc)
        found = self._clients.get(key)
        if found is not None:
            return found
        async with self._lock:
            if key not in self._clients:
                with translating(f"S3 {loc.describe()}"):
                    self._clients[key] = await self._stack.enter_async_context(_session().create_client(
                        "s3", **_client_kwargs(loc, _config(self.max_connections, self.read_timeout))))
            return self._clients[key]

    async def aclose(self) -> None:
        stack, self._stack, self._clients = self._stack, AsyncExitStack(), {}
        await stack.aclose()

    async def __aenter__(self) -> ClientPool:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


@dataclass(frozen=True)
class Listed:
    """One object as a listing shows it."""

    key: str
    size: int
    etag: str


async def list_prefixes(client: Any, loc: S3Location, prefix: str) -> list[str]:
    """The "directories" directly under ``prefix`` in ``loc.bucket`` (common prefixes, all pages)."""
    out: list[str] = []
    with translating(f"LIST {loc.bucket}/{prefix}"):
        paginator = client.get_paginator("list_objects_v2")
        async for page in paginator.paginate(Bucket=loc.bucket, Prefix=prefix, Delimiter="/"):
            out.extend(str(cp["Prefix"]) for cp in page.get("CommonPrefixes", []) or [])
    return out


async def list_objects(client: Any, loc: S3Location, prefix: str) -> list[Listed]:
    """Every object under ``prefix`` in ``loc.bucket`` (all pages), in key order."""
    out: list[Listed] = []
    with translating(f"LIST {loc.bucket}/{prefix}"):
        paginator = client.get_paginator("list_objects_v2")
        async for page in paginator.paginate(Bucket=loc.bucket, Prefix=prefix):
            out.extend(Listed(str(o["Key"]), int(o["Size"]), str(o.get("ETag", "")).strip('"'))
                       for o in page.get("Contents", []) or [])
    return out
