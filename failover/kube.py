"""One site's Kubernetes API, through kubernetes-asyncio, from a kubeconfig as real clusters hand out.

The client is built from a kubeconfig (YAML text: a file, an ``{env|file}`` credential, or fetched
through the site's provider adapter, :meth:`providers.base.Provider.kubeconfig`) with everything
kubernetes-asyncio supports there: CA data, client certificates, bearer tokens (inline or
``tokenFile``) and exec plugins. A plain ``base_url`` + ``token`` is accepted too. Credentials are
renewed before they expire (client certificate ``notAfter``, a JWT's ``exp``, an exec plugin's
``expirationTimestamp``, and a maximum age for fetched kubeconfigs) and once after a 401.

The engine needs only a few verbs on generic resource types (:mod:`failover.core.kubetypes`), so
requests go through ``ApiClient.call_api`` and return plain objects. Errors are mapped at this
boundary exactly like the provider APIs' (:mod:`failover.core.http`): connection failures, timeouts,
429 and 5xx are :class:`~failover.core.errors.TemporaryError`, 404 is ``NotFoundError``, 409 and other
4xx an ``ApiError`` carrying the status, 401/403 an :class:`~failover.core.errors.AuthError`.

Every call is ONE attempt: a health probe must not retry (hysteresis is its retry), and the
actions are retried by the playbook engine and their own polls.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
import yaml
from cryptography import x509
from kubernetes_asyncio.client import ApiClient, Configuration
from kubernetes_asyncio.client.exceptions import ApiException
from kubernetes_asyncio.config.config_exception import ConfigException
from kubernetes_asyncio.config.kube_config import KubeConfigLoader

from failover.core import errors, http, secrets
from failover.core import kubetypes as kt

KubeObject = dict[str, Any]
Fetch = Callable[[], Awaitable[str]]
Query = list[tuple[str, str]]
OBJECT = {200: "object", 201: "object", 202: "object"}
#: connections per site: one probe round asks for every component's workloads at once, and a request
#: waiting for a free connection counts against its timeout
POOL_SIZE = 64


def resource_path(rt: kt.ResourceType, namespace: str | None = None, name: str | None = None,
                  subresource: str | None = None) -> str:
    base = f"/api/{rt.version}" if not rt.group else f"/apis/{rt.group}/{rt.version}"
    if rt.namespaced and namespace:
        base += f"/namespaces/{namespace}"
    base += f"/{rt.plural}"
    if name:
        base += f"/{name}"
        if subresource:
            base += f"/{subresource}"
    return base


def workload_ready(obj: KubeObject) -> bool:
    """A Deployment/StatefulSet is ready when every wanted replica is ready and observed."""
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    wanted = int(spec.get("replicas", 1))
    ready = int(status.get("readyReplicas") or 0)
    observed = int(status.get("observedGeneration") or 0)
    generation = int((obj.get("metadata") or {}).get("generation") or 0)
    return ready >= wanted and observed >= generation


@dataclass
class _Session:
    api: ApiClient
    renew_at: float | None  #: time.time() after which the credentials are renewed
    refreshable: bool  #: a new kubeconfig/exec run may give new credentials


class KubeClient:
    """One site's Kubernetes API (see the module docstring)."""

    def __init__(self, *, site: str, base_url: str | None = None, token: str | None = None,
                 kubeconfig: str | None = None, fetch: Fetch | None = None, context: str | None = None,
                 base_path: str = "", timeout: float = 5.0, verify: bool = True,
                 refresh_before: float = 300.0, max_age: float = 1800.0) -> None:
        if not (base_url or kubeconfig or fetch):
            raise errors.PermanentError(f"site {site}: no Kubernetes API, kubeconfig or provider kubeconfig")
        self.site = site
        self.service = f"kubernetes API of {site}"
        self._base_url, self._token, self._verify = base_url, token, verify
        self._kubeconfig, self._fetch, self._context, self._base_path = kubeconfig, fetch, context, base_path
        self._timeout, self._refresh_before, self._max_age = timeout, refresh_before, max_age
        self._session: _Session | None = None
        self._retired: list[ApiClient] = []
        self._lock = asyncio.Lock()
        if token:
            secrets.register(token)

    async def aclose(self) -> None:
        clients = [*self._retired, *([self._session.api] if self._session else [])]
        self._session, self._retired = None, []
        for client in clients:
            await client.close()

    # --- the verbs ------------------------------------------------------------------------------

    async def readyz(self) -> None:
        """Raise TemporaryError unless the API server answers ``/readyz`` with 200."""
        await self._call("GET", "/readyz", want=False)

    async def get(self, rt: kt.ResourceType, namespace: str | None, name: str) -> KubeObject | None:
        try:
            return await self._call("GET", resource_path(rt, namespace, name))
        except http.NotFoundError:
            return None

    async def list(self, rt: kt.ResourceType, namespace: str | None = None, *,
                   label_selector: str | None = None) -> list[KubeObject]:
        query = [("labelSelector", label_selector)] if label_selector else None
        body = await self._call("GET", resource_path(rt, namespace), query=query)
        return list(body.get("items") or [])

    async def create(self, rt: kt.ResourceType, obj: KubeObject) -> KubeObject:
        namespace = (obj.get("metadata") or {}).get("namespace")
        return await self._call("POST", resource_path(rt, namespace), body=obj)

    async def ensure(self, rt: kt.ResourceType, obj: KubeObject) -> tuple[KubeObject, bool]:
        """Create ``obj`` unless an object of that name exists; returns (object, created)."""
        meta = obj.get("metadata") or {}
        try:
            return await self.create(rt, obj), True
        except http.ApiError as exc:
            if exc.status != 409:
                raise
        existing = await self.get(rt, meta.get("namespace"), str(meta["name"]))
        if existing is None:  # deleted in between: try once more
            return await self.create(rt, obj), True
        return existing, False

    async def patch(self, rt: kt.ResourceType, namespace: str | None, name: str, patch: KubeObject, *,
                    subresource: str | None = None) -> KubeObject:
        return await self._call("PATCH", resource_path(rt, namespace, name, subresource), body=patch,
                                content_type="application/merge-patch+json")

    async def scale(self, rt: kt.ResourceType, namespace: str, name: str, replicas: int) -> None:
        await self.patch(rt, namespace, name, {"spec": {"replicas": replicas}}, subresource="scale")

    async def delete(self, rt: kt.ResourceType, namespace: str | None, name: str) -> bool:
        try:
            await self._call("DELETE", resource_path(rt, namespace, name), want=False)
        except http.NotFoundError:
            return False
        return True

    # --- one request, errors mapped -------------------------------------------------------------

    async def _call(self, method: str, path: str, *, query: Query | None = None,
                    body: KubeObject | None = None, content_type: str = "application/json",
                    want: bool = True) -> KubeObject:
        where = f"{self.service}: {method} {path}"
        renewed = False
        while True:
            session = await self._current()
            try:
                result = await session.api.call_api(
                    path, method, query_params=query, body=body, auth_settings=["BearerToken"],
                    header_params={"Accept": "application/json", "Content-Type": content_type},
                    response_types_map=OBJECT if want else None, _return_http_data_only=True,
                    _request_timeout=self._timeout)
            except ApiException as exc:
                if exc.status == 401 and session.refreshable and not renewed:
                    renewed = True  # rotated credentials: renew once, then it is the answer
                    await self._retire(session)
                    continue
                raise _mapped(where, exc) from None
            except (aiohttp.ClientConnectorCertificateError, aiohttp.ClientSSLError) as exc:
                raise errors.PermanentError(f"{where}: TLS failed ({exc.__class__.__name__}); check the "
                                            f"kubeconfig's certificate-authority") from None
            except aiohttp.ClientConnectorError:
                raise errors.TemporaryError(f"{where}: cannot connect") from None
            except TimeoutError:
                raise errors.TemporaryError(f"{where} timed out") from None
            except (aiohttp.ClientError, OSError) as exc:
                raise errors.TemporaryError(f"{where} failed: {type(exc).__name__}") from None
            if not want:
                return {}
            if not isinstance(result, dict):
                raise errors.ProtocolError(f"{where} answered with a body that is not a JSON object")
            return result

    # --- sessions: one ApiClient per set of credentials -----------------------------------------

    async def _current(self) -> _Session:
        async with self._lock:
            session = self._session
            if session is None or (session.renew_at is not None and time.time() >= session.renew_at):
                if session is not None:
                    self._retired.append(session.api)
                self._session = session = await self._open()
                await self._close_retired(keep=1)
            return session

    async def _retire(self, session: _Session) -> None:
        async with self._lock:
            if self._session is session:
                self._retired.append(session.api)
                self._session = None

    async def _close_retired(self, *, keep: int) -> None:
        # requests in flight may still use the newest retired client; older ones are done
        while len(self._retired) > keep:
            await self._retired.pop(0).close()

    async def _open(self) -> _Session:
        cfg = Configuration()
        cfg.connection_pool_maxsize = POOL_SIZE
        if self._kubeconfig is None and self._fetch is None:
            cfg.host = str(self._base_url).rstrip("/")
            cfg.verify_ssl = self._verify
            if self._token:
                cfg.api_key = {"BearerToken": self._token}
                cfg.api_key_prefix = {"BearerToken": "Bearer"}
            return _Session(ApiClient(configuration=cfg), renew_at=None, refreshable=False)
        text = await self._fetch() if self._fetch is not None else str(self._kubeconfig)
        secrets.register(text)
        doc = _parse(self.site, text)
        loader = KubeConfigLoader(config_dict=doc, active_context=self._context, config_base_path=self._base_path)
        try:
            await loader.load_and_set(cfg)
        except (ConfigException, KeyError, ValueError, OSError) as exc:
            raise errors.PermanentError(f"site {self.site}: unusable kubeconfig: {exc}") from None
        token = cfg.api_key.get("BearerToken")
        if token:
            secrets.register(token.removeprefix("Bearer "))
        expiry = _expiry(doc, loader, token)
        now = time.time()
        deadlines = [t - self._refresh_before for t in (expiry,) if t is not None]
        if self._fetch is not None:
            deadlines.append(now + self._max_age)
        renew_at = max(min(deadlines), now + 1.0) if deadlines else None
        refreshable = self._fetch is not None or _has_exec(doc, loader) or _token_file(doc, loader)
        return _Session(ApiClient(configuration=cfg), renew_at=renew_at, refreshable=refreshable)


def _mapped(where: str, exc: ApiException) -> errors.FailoverError:
    status = int(exc.status or 0)
    detail = _status_message(exc.body)
    text = f"{where} answered {status}" + (f": {detail}" if detail else "")
    if status in (401, 403):
        return errors.AuthError(text)
    if status == 429:
        headers: Any = exc.headers or {}
        return errors.TemporaryError(text, delay=http.parse_retry_after(headers.get("Retry-After")))
    if status >= 500 or status == 0:
        return errors.TemporaryError(text)
    if status == 404:
        return http.NotFoundError(text, status=status)
    return http.ApiError(text, status=status)


def _status_message(body: Any) -> str:
    try:
        doc = json.loads(body) if isinstance(body, (str, bytes)) else None
    except ValueError:
        return ""
    return str(doc.get("message") or "")[:300] if isinstance(doc, dict) else ""


def _parse(site: str, text: str) -> dict[str, Any]:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise errors.PermanentError(f"site {site}: the kubeconfig is not YAML ({exc.__class__.__name__})") from None
    if not isinstance(doc, dict) or not doc.get("clusters") or not doc.get("users"):
        raise errors.PermanentError(f"site {site}: not a kubeconfig (it needs clusters, users and contexts)")
    return doc


def _user(doc: dict[str, Any], loader: KubeConfigLoader) -> dict[str, Any]:
    context: dict[str, Any] = loader.current_context or {}
    inner: dict[str, Any] = context.get("context") or {}
    name = inner.get("user")
    for entry in doc.get("users") or []:
        if isinstance(entry, dict) and entry.get("name") == name:
            user = entry.get("user") or {}
            return user if isinstance(user, dict) else {}
    return {}


def _has_exec(doc: dict[str, Any], loader: KubeConfigLoader) -> bool:
    return "exec" in _user(doc, loader)


def _token_file(doc: dict[str, Any], loader: KubeConfigLoader) -> bool:
    return "tokenFile" in _user(doc, loader)


def _expiry(doc: dict[str, Any], loader: KubeConfigLoader, token: str | None) -> float | None:
    """When the credentials in use expire (seconds since the epoch), if they say so."""
    times: list[float] = []
    exec_expiry = getattr(loader, "exec_plugin_expiry", None)
    if isinstance(exec_expiry, datetime):
        times.append(exec_expiry.replace(tzinfo=exec_expiry.tzinfo or UTC).timestamp())
    cert = _user(doc, loader).get("client-certificate-data")
    if isinstance(cert, str):
        try:
            times.append(x509.load_pem_x509_certificate(base64.b64decode(cert)).not_valid_after_utc.timestamp())
        except (ValueError, binascii.Error):
            pass
    if token:
        exp = _jwt_exp(token.removeprefix("Bearer "))
        if exp is not None:
            times.append(exp)
    return min(times) if times else None


def _jwt_exp(token: str) -> float | None:
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    return float(exp) if isinstance(exp, (int, float)) else None
