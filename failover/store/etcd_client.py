"""A small synchronous client of etcd's v3 JSON gateway (``/v3/kv/*``, ``/v3/lease/*``).

Why this and not a gRPC client library: etcd 3.4 serves the full v3 API as JSON over HTTP
(grpc-gateway) on its client port, so httpx — already a dependency — is enough; no generated
gRPC stubs, no protobuf pinning, no library that lags behind the server (the ``etcd3`` /
``etcd3aio`` packages are unmaintained or pin old protobuf/grpc versions). The calls we need are
few: range, txn (compare-and-swap), lease grant/keepalive/revoke. Keys and values are base64;
int64 fields arrive as strings and zero values are omitted.

Why synchronous: :class:`failover.store.Store` is a synchronous protocol (every call is one small
transaction). Each request is bounded by ``timeout``; a member that refuses the connection or
answers "no leader" is skipped for the next one. A call keeps trying for ``retry_for`` seconds
(an etcd election after a member loss takes about one election timeout, and a run must not fail
because of it), then fails with :class:`~failover.core.errors.TemporaryError`; the client then
fails fast for ``cooldown`` seconds so a partitioned process does not block its loop call after call.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from failover.core import errors


def b64(text: str | bytes) -> str:
    raw = text.encode() if isinstance(text, str) else text
    return base64.b64encode(raw).decode("ascii")


def unb64(text: str) -> str:
    return base64.b64decode(text).decode()


def prefix_end(prefix: str) -> str:
    """The ``range_end`` that selects every key starting with ``prefix``."""
    raw = bytearray(prefix.encode())
    raw[-1] += 1
    return b64(bytes(raw))


@dataclass(frozen=True)
class KV:
    key: str
    value: str
    create_revision: int
    mod_revision: int
    version: int
    lease: int

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> KV:
        return cls(key=unb64(d["key"]), value=unb64(d.get("value", "")),
                   create_revision=int(d.get("create_revision", 0)), mod_revision=int(d.get("mod_revision", 0)),
                   version=int(d.get("version", 0)), lease=int(d.get("lease", 0)))


# --- txn building blocks (the gateway's JSON shapes) -------------------------------------------

def cmp_value(key: str, value: str, result: str = "EQUAL") -> dict[str, Any]:
    return {"key": b64(key), "target": "VALUE", "result": result, "value": b64(value)}


def cmp_absent(key: str) -> dict[str, Any]:
    return {"key": b64(key), "target": "CREATE", "result": "EQUAL", "create_revision": "0"}


def cmp_mod(key: str, revision: int) -> dict[str, Any]:
    return {"key": b64(key), "target": "MOD", "result": "EQUAL", "mod_revision": str(revision)}


def op_put(key: str, value: str, *, lease: int = 0) -> dict[str, Any]:
    put: dict[str, Any] = {"key": b64(key), "value": b64(value)}
    if lease:
        put["lease"] = str(lease)
    return {"request_put": put}


def op_get(key: str) -> dict[str, Any]:
    return {"request_range": {"key": b64(key)}}


def op_delete(key: str) -> dict[str, Any]:
    return {"request_delete_range": {"key": b64(key)}}


@dataclass(frozen=True)
class TxnResult:
    succeeded: bool
    responses: list[dict[str, Any]]
    revision: int

    def kvs(self, index: int) -> list[KV]:
        rng = self.responses[index].get("response_range", {})
        return [KV.from_json(k) for k in rng.get("kvs", [])]


class EtcdClient:
    """Calls to one etcd cluster through whichever member answers (see module docstring)."""

    def __init__(self, endpoints: Sequence[str], *, timeout: float = 1.0, cooldown: float = 0.5,
                 retry_for: float = 2.0) -> None:
        if not endpoints:
            raise errors.PermanentError("coordination: etcd needs at least one endpoint")
        self.endpoints = [e.rstrip("/") for e in endpoints]
        self.timeout = timeout
        self.cooldown = cooldown
        self.retry_for = retry_for
        self._current = 0
        self._failing_until = 0.0
        self._http = httpx.Client(timeout=httpx.Timeout(timeout, connect=min(timeout, 0.5)))

    def close(self) -> None:
        self._http.close()

    def call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST ``body`` to ``path`` on a live member; TemporaryError when none could answer for
        ``retry_for`` seconds."""
        if time.monotonic() < self._failing_until:
            raise errors.TemporaryError("etcd unavailable (no quorum or unreachable; retrying shortly)", delay=0.5)
        deadline = time.monotonic() + self.retry_for
        while True:
            try:
                return self._once(path, body)
            except errors.TemporaryError:
                if time.monotonic() + 0.1 >= deadline:
                    self._failing_until = time.monotonic() + self.cooldown
                    raise
            time.sleep(0.1)

    def _once(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """One pass over the members, starting with the one that answered last."""
        last = ""
        for i in range(len(self.endpoints)):
            index = (self._current + i) % len(self.endpoints)
            url = self.endpoints[index] + path
            try:
                response = self._http.post(url, content=json.dumps(body))
            except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
                last = f"{self.endpoints[index]}: {type(exc).__name__}"
                continue
            except httpx.TimeoutException as exc:
                # a member that hangs has no quorum to offer: the others are not tried in this pass
                raise errors.TemporaryError(f"etcd unavailable: {self.endpoints[index]} timed out after "
                                            f"{self.timeout:g}s (no quorum?)", delay=0.5) from exc
            except httpx.HTTPError as exc:
                last = f"{self.endpoints[index]}: {type(exc).__name__}"
                continue
            data = _json(response)
            if response.status_code == 200:
                self._current = index
                return data
            message = str(data.get("error") or data.get("message") or response.text[:200])
            if response.status_code >= 500 or "timed out" in message or "leader" in message:
                last = f"{self.endpoints[index]}: {message}"
                continue
            raise errors.PermanentError(f"etcd refused {path}: {message}")
        raise errors.TemporaryError(f"etcd unavailable: {last}", delay=0.5)

    # --- kv ------------------------------------------------------------------------------------
    def get(self, key: str) -> KV | None:
        kvs = [KV.from_json(k) for k in self.call("/v3/kv/range", {"key": b64(key)}).get("kvs", [])]
        return kvs[0] if kvs else None

    def get_prefix(self, prefix: str, *, limit: int = 0, descending: bool = False) -> list[KV]:
        body: dict[str, Any] = {"key": b64(prefix), "range_end": prefix_end(prefix)}
        if limit:
            body["limit"] = str(limit)
        if descending:
            body.update(sort_order="DESCEND", sort_target="KEY")
        return [KV.from_json(k) for k in self.call("/v3/kv/range", body).get("kvs", [])]

    def put(self, key: str, value: str, *, lease: int = 0) -> int:
        body: dict[str, Any] = {"key": b64(key), "value": b64(value)}
        if lease:
            body["lease"] = str(lease)
        return int(self.call("/v3/kv/put", body)["header"]["revision"])

    def txn(self, compare: list[dict[str, Any]], success: list[dict[str, Any]],
            failure: list[dict[str, Any]] | None = None) -> TxnResult:
        data = self.call("/v3/kv/txn", {"compare": compare, "success": success, "failure": failure or []})
        return TxnResult(succeeded=bool(data.get("succeeded", False)), responses=list(data.get("responses", [])),
                         revision=int(data["header"]["revision"]))

    # --- leases --------------------------------------------------------------------------------
    def grant(self, ttl: int) -> int:
        data = self.call("/v3/lease/grant", {"TTL": str(ttl)})
        if data.get("error"):
            raise errors.TemporaryError(f"etcd lease grant failed: {data['error']}")
        return int(data["ID"])

    def keepalive(self, lease: int) -> int:
        """The lease's remaining TTL after the refresh; 0 when it has expired (it is gone)."""
        data = self.call("/v3/lease/keepalive", {"ID": str(lease)})
        if "result" not in data and data.get("error"):
            # a stream error ("no leader", "leader changed" during an election) says nothing about the
            # lease: only a result with TTL 0 means it expired (etcd answers an unknown lease so)
            error = data["error"]
            message = error.get("message") if isinstance(error, dict) else error
            raise errors.TemporaryError(f"etcd lease keepalive failed: {message}", delay=0.5)
        return int((data.get("result") or {}).get("TTL", 0))

    def revoke(self, lease: int) -> None:
        self.call("/v3/lease/revoke", {"ID": str(lease)})


def _json(response: httpx.Response) -> dict[str, Any]:
    text = response.text.strip()
    # keepalive is a streaming RPC: the gateway answers one JSON object per line
    first = text.splitlines()[0] if text else "{}"
    try:
        data = json.loads(first)
    except ValueError as exc:
        raise errors.ProtocolError(f"etcd answered non-JSON ({response.status_code})") from exc
    return data if isinstance(data, dict) else {}
