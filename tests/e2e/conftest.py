"""End-to-end fixtures: a real lab (PowerDNS, moto_server processes, kube emulators, ingresses)
started through the CLI in a temporary state directory, with a fast test config."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from failover import daemon as daemon_mod
from failover.config import loader, runtime
from failover.core import tasks

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Lab:
    config: Path
    state: Path

    def env(self, **extra: str) -> dict[str, str]:
        return {**os.environ, "FAILOVER_STATE_DIR": str(self.state), **extra}

    def cli(self, *words: str, check: bool = True, timeout: float = 120,
            extra_env: dict[str, str] | None = None) -> dict[str, Any]:
        proc = subprocess.run([sys.executable, "-m", "failover.cli", "--config", str(self.config), *words],
                              capture_output=True, text=True, env=self.env(**(extra_env or {})), timeout=timeout,
                              check=False)
        if check and proc.returncode != 0:
            raise AssertionError(f"failover {' '.join(words)} -> {proc.returncode}\n{proc.stderr[-2000:]}")
        out = proc.stdout.strip()
        return json.loads(out) if out.startswith("{") else {"rc": proc.returncode, "out": out, "err": proc.stderr}

    def runtime(self) -> runtime.Runtime:
        os.environ["FAILOVER_STATE_DIR"] = str(self.state)
        return runtime.resolve(loader.load(self.config))


LAB_OPERATOR = "alice"  #: config/lab.yaml's operator with the break-glass role
LAB_OPERATOR_ENV = {"FAILOVER_SECRET_ALICE": "e2e-alice-secret", "FAILOVER_OPERATOR_SECRET": "e2e-alice-secret"}


def make_config(tmp: Path, **policy: Any) -> Path:
    data = yaml.safe_load((REPO / "config" / "lab.yaml").read_text())
    data["workplace"]["profile"] = str(REPO / "config" / "workplaces" / "opendesk.yaml")
    # margins as in production (a loaded CI machine must not look like an outage)
    data["health"].update({"interval": 1.0, "timeout": 2.0, "storage_timeout": 10.0, "fail_after": 3,
                           "recover_after": 2})
    data["lab"].update({"backup_interval": "@every 5s", "sync_period": 0.5, "ready_delay": 0.3,
                        "restore_item_delay": 0.0, "slow_latency": 3.0})
    data["policy"].update({"cooldown": 300, **policy})
    path = tmp / "lab.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture
def lab_factory(tmp_path: Path) -> Iterator[Callable[..., Lab]]:
    started: list[Lab] = []

    def start(**policy: Any) -> Lab:
        lab = Lab(config=make_config(tmp_path, **policy), state=tmp_path / "state")
        lab.cli("lab", "up", "--json")
        started.append(lab)
        return lab

    yield start
    for lab in started:
        lab.cli("lab", "down", check=False)


@pytest.fixture
def lab(lab_factory: Callable[..., Lab]) -> Lab:
    return lab_factory()


async def wait_for(predicate: Callable[[], Any], *, timeout: float, what: str, interval: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


@pytest.fixture
async def running_daemon() -> AsyncIterator[Callable[[Lab], daemon_mod.Daemon]]:
    started: list[tuple[daemon_mod.Daemon, asyncio.Task[Any]]] = []

    def start(lab: Lab) -> daemon_mod.Daemon:
        d = daemon_mod.Daemon(lab.runtime(), holder="test-node")
        started.append((d, tasks.create_guarded_task(d.run(), name="daemon under test", eternal=True)))
        return d

    yield start
    for _, task in started:
        await tasks.cancel_and_wait(task, timeout=10)


def newest_run(d: daemon_mod.Daemon) -> Any:
    runs = d.store.list_runs(limit=1)
    return runs[0] if runs else None
