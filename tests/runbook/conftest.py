"""A small non-lab world for the runbook: a config with operators (secrets from env and a hash),
two static sites, a webhook receiver on loopback, and the CLI called in-process."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import yaml
from aiohttp import web

from failover import cli
from failover.config import loader
from failover.playbook import engine, registry
from failover.runbook import operators
from failover.store import sqlite
from tests.runbook import rb_actions  # noqa: F401  (registers rb-note)

SECRETS = {"alice": "alice-secret-1", "bob": "bob-secret-2", "carol": "carol-secret-3", "dave": "dave-secret-4"}

GATE = """
name: gate
description: two automated steps around a four-eyes gate
params:
  from: {type: str, required: true}
  to: {type: str, required: true}
  allow_stale: {type: bool, default: false}
stages:
  - name: one
    steps:
      - {id: first, uses: rb-note, with: {text: "to {{ params.to }}"}}
  - name: decide
    steps:
      - id: approve
        uses: manual
        with:
          title: Krisenstab approves
          role: krisenstab
          approvers: 2
          instructions: "Decide **now**."
          checklist: [outage confirmed]
          evidence: [decision]
  - name: two
    steps:
      - {id: second, uses: rb-note}
  - name: three
    steps:
      - {id: third, uses: rb-note}
"""


@dataclass
class World:
    root: Path
    config: Path
    state: Path
    hooks: list[dict[str, Any]] = field(default_factory=list)

    def cli(self, *words: str, who: str | None = None, secret: str | None = None,
            capsys: pytest.CaptureFixture[str] | None = None) -> tuple[int, Any, str]:
        """Run ``failover --config … WORDS`` in-process as ``who``; returns (rc, JSON or text, stderr)."""
        env_secret = secret if secret is not None else (SECRETS.get(who, "") if who else "")
        os.environ[operators.SECRET_ENV] = env_secret
        assert capsys is not None
        capsys.readouterr()
        rc = cli.main(["--config", str(self.config), *words, *(["--as", who] if who else [])])
        out = capsys.readouterr()
        text = out.out.strip()
        try:
            return rc, json.loads(text), out.err
        except ValueError:
            return rc, text, out.err

    def store(self) -> sqlite.SqliteStore:
        return sqlite.SqliteStore(self.state / "failover.db")

    def report_ready(self, *, ready: bool = True, reasons: list[str] | None = None) -> None:
        """What a running daemon writes: a fresh status document."""
        self.store().set_state("status", {
            "updated_at": datetime.now(UTC).isoformat(), "active": "act",
            "sites": {"stb": {"ready": ready, "ready_reasons": reasons or [], "role": "standby"},
                      "act": {"ready": False, "ready_reasons": [], "role": "active"}}})


@pytest.fixture
async def hooks() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    got: list[dict[str, Any]] = []

    async def receive(request: web.Request) -> web.Response:
        got.append(await request.json())
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/hook", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}/hook", got
    await runner.cleanup()


@pytest.fixture
def world(tmp_path: Path, hooks: tuple[str, list[dict[str, Any]]],
          monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    repo = Path(__file__).resolve().parents[2]
    (tmp_path / "config").mkdir()
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "playbooks" / "gate.yaml").write_text(GATE)
    for name in ("alice", "bob", "carol"):
        monkeypatch.setenv(f"RB_SECRET_{name.upper()}", SECRETS[name])
    cfg = {
        "version": 1,
        "workplace": {"name": "rb", "profile": str(repo / "config" / "workplaces" / "opendesk.yaml"),
                      "zone": "rb.test."},
        "providers": {"p1": {"kind": "ionos"}, "p2": {"kind": "stackit"}, "powerdns": {"kind": "powerdns"}},
        "sites": [{"name": "act", "provider": "p1", "region": "r1", "role": "active"},
                  {"name": "stb", "provider": "p2", "region": "r2"}],
        "policy": {"mode": "approval", "approvers": 2, "cooldown": 600},
        "notify": [hooks[0]],
        "roles": {"krisenstab": "decides"},
        "operators": [
            {"name": "alice", "roles": ["operator", "krisenstab", "break-glass"], "secret": {"env": "RB_SECRET_ALICE"}},
            {"name": "bob", "roles": ["krisenstab", "approver"], "secret": {"env": "RB_SECRET_BOB"}},
            {"name": "carol", "roles": ["krisenstab", "approver"], "secret": {"env": "RB_SECRET_CAROL"}},
            {"name": "dave", "roles": ["operator"], "secret_hash": operators.hash_secret(SECRETS["dave"],
                                                                                        iterations=1000)},
        ],
    }
    path = tmp_path / "config" / "rb.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    state = tmp_path / "state"
    state.mkdir()
    monkeypatch.setenv("FAILOVER_STATE_DIR", str(state))
    yield World(root=tmp_path, config=path, state=state, hooks=hooks[1])


async def wait_for(predicate: Callable[[], Any], *, timeout: float = 20, what: str) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        value = predicate()
        if value:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@dataclass
class Notifying:
    """The parts of the daemon's service bundle the manual action's notice uses."""

    http: httpx.AsyncClient
    runtime: Any


def executor(world: World, run_id: str) -> asyncio.Task[Any]:
    """The engine executing the run, as the daemon would (in-process; notices go to the webhook)."""
    registry.ensure_builtin()
    loaded = loader.load(world.config)
    services = Notifying(http=httpx.AsyncClient(timeout=5), runtime=SimpleNamespace(config=loaded.config))

    async def execute() -> Any:
        try:
            return await engine.Engine(store=world.store(), services=services).execute(run_id)
        finally:
            await services.http.aclose()

    return asyncio.get_running_loop().create_task(execute())
