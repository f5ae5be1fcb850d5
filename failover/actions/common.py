"""Helpers shared by the actions: typed access to the service bundle, polling, names."""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

from failover.config import models
from failover.core import errors
from failover.core import kubetypes as kt
from failover.kube import KubeClient
from failover.playbook.engine import StepContext
from failover.playbook.model import JSON
from failover.services import Services

T = TypeVar("T")


def services(ctx: StepContext) -> Services:
    svc = ctx.services
    if not isinstance(svc, Services):
        raise errors.PermanentError("the engine was started without the failover service bundle")
    return svc


def state_map(store: Any, key: str) -> dict[str, JSON]:
    """A mapping kept in the store's state (``{}`` when unset or not a mapping)."""
    value = store.get_state(key)
    return dict(value) if isinstance(value, dict) else {}


def components_of(svc: Services, *, group: int | None = None,
                  strategy: models.Strategy | None = None) -> list[models.Component]:
    return [c for c in svc.runtime.profile.components
            if (group is None or c.group == group) and (strategy is None or c.strategy is strategy)]


def k8s_name(*parts: str, limit: int = 63) -> str:
    """A deterministic DNS-1123 name from ``parts``; long names keep a hash suffix."""
    raw = "-".join(parts).lower()
    name = re.sub(r"[^a-z0-9-]+", "-", raw).strip("-")
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(raw.encode()).hexdigest()[:8]
    return f"{name[:limit - 9].rstrip('-')}-{digest}"


async def poll(fn: Callable[[], Awaitable[T | None]], *, timeout: float, interval: float = 0.5,
               what: str) -> T:
    """Call ``fn`` until it returns a value (not None); TemporaryError after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            value = await fn()
        except errors.TemporaryError:
            value = None
            if loop.time() >= deadline:
                raise
        if value is not None:
            return value
        if loop.time() >= deadline:
            raise errors.TemporaryError(f"{what}: not done after {timeout:g}s")
        await asyncio.sleep(interval)


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def workload_type(kind: str) -> kt.ResourceType:
    return kt.DEPLOYMENTS if kind == "Deployment" else kt.STATEFULSETS


async def scale_components(kube: KubeClient, components: list[models.Component], *,
                           replicas: int | None = None, skip_missing: bool = False) -> int:
    """Scale every workload of ``components`` to ``replicas`` (None: each workload's configured
    count); only writes when the count differs. Returns how many workloads were set."""
    count = 0
    for c in components:
        for w in c.workloads:
            rt = workload_type(w.kind)
            want = w.replicas if replicas is None else replicas
            current = await kube.get(rt, c.namespace, w.name)
            if current is None:
                if skip_missing:
                    continue
                raise errors.PermanentError(
                    f"{w.kind} {c.namespace}/{w.name} of {c.name} does not exist on {kube.site}")
            if int((current.get("spec") or {}).get("replicas", 1)) != want:
                await kube.scale(rt, c.namespace, w.name, want)
            count += 1
    return count
