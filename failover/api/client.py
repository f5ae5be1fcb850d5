"""The CLI's way to a remote daemon: ``failover status --server URL`` and friends through the API.

The token comes from ``--token`` or ``FAILOVER_TOKEN``; it is registered as a secret so that no
error message shows it. Refusals (401/403) and unreachable servers end as
:class:`~failover.core.errors.PermanentError` with the server's JSON error: exit code 1.
"""

from __future__ import annotations

import os
from typing import Any

import httpx

from failover.core import errors, secrets

TIMEOUT_S = 10.0


class ApiClient:
    def __init__(self, server: str, token: str | None = None, *, verify: bool = True) -> None:
        self.server = server.rstrip("/")
        self.token = token if token is not None else os.environ.get("FAILOVER_TOKEN")
        secrets.register(self.token)
        self.verify = verify

    async def _call(self, method: str, path: str, **params: Any) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        url = f"{self.server}{path}"
        try:
            async with httpx.AsyncClient(timeout=TIMEOUT_S, verify=self.verify) as http:
                r = await http.request(method, url, headers=headers, params=params or None)
        except httpx.HTTPError as exc:
            raise errors.PermanentError(f"cannot reach the daemon at {self.server}: {type(exc).__name__}") from exc
        try:
            body = r.json()
        except ValueError:
            body = {}
        if r.status_code >= 400:
            why = body.get("error") if isinstance(body, dict) else None
            hint = {401: " (give --token or set FAILOVER_TOKEN)", 403: " (this token's role may not do that)"}
            raise errors.PermanentError(f"{method} {path}: HTTP {r.status_code}: {why or r.reason_phrase}"
                                        f"{hint.get(r.status_code, '')}")
        if not isinstance(body, dict):
            raise errors.PermanentError(f"{method} {path}: the server's answer is not a JSON object")
        return body

    async def status(self) -> dict[str, Any]:
        return await self._call("GET", "/api/v1/status")

    async def history(self, limit: int) -> dict[str, Any]:
        runs = await self._call("GET", "/api/v1/runs", limit=limit)
        decisions = await self._call("GET", "/api/v1/decisions", limit=limit)
        return {"runs": runs.get("runs", []),
                "decisions": [{"at": d["at"], "sentence": d["sentence"]} for d in decisions.get("decisions", [])]}

    async def approve(self, run_id: str) -> dict[str, Any]:
        return await self._call("POST", f"/api/v1/runs/{run_id}/approve")

    async def set_paused(self, paused: bool) -> dict[str, Any]:
        return await self._call("POST", "/api/v1/pause" if paused else "/api/v1/resume")
