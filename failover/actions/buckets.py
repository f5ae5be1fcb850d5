"""Pointing the restored apps at the target's copy of their buckets.

The restored Nextcloud still names the lost site's object storage in its configuration (it came
out of the backup), so after the restore every workload of a component with an ``s3-bucket``
data entry gets the target's endpoint and bucket name as environment variables (the names come
from the profile: ``env_endpoint``, ``env_bucket``). Idempotent: a workload that already carries
the values is not written again; only the workload's first container is changed.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from failover import buckets
from failover.actions import common
from failover.config import models
from failover.core import errors
from failover.playbook import registry
from failover.playbook.engine import StepContext, StepResult


class PointBucketsParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    site: str


def _with_env(container: dict[str, Any], values: dict[str, str]) -> dict[str, Any] | None:
    """``container`` with ``values`` set in its env, or None if it holds them already."""
    env = [e for e in container.get("env") or [] if e.get("name") not in values]
    current = {e.get("name"): e.get("value") for e in container.get("env") or []}
    if all(current.get(k) == v for k, v in values.items()):
        return None
    return {**container, "env": [*env, *({"name": k, "value": v} for k, v in sorted(values.items()))]}


@registry.action("point-buckets", params=PointBucketsParams, timeout=60)
async def point_buckets(ctx: StepContext, p: PointBucketsParams) -> StepResult:
    """Set each bucket-using workload's S3 endpoint and bucket to the target's copy."""
    svc = common.services(ctx)
    target = svc.site(p.site)
    kube = svc.kube_for(p.site)
    if target.storage is None and svc.runtime.profile.buckets():
        raise errors.PermanentError(f"site {p.site} has no object storage configured for the apps' buckets")
    changed: list[str] = []
    for component, data in svc.runtime.profile.buckets():
        if component.strategy is not models.Strategy.RESTORE and not component.workloads:
            continue
        assert target.storage is not None
        loc = buckets.location(target.storage, target.site, data.bucket)
        values = {data.env_endpoint: loc.endpoint, data.env_bucket: loc.bucket}
        for workload in component.workloads:
            rt = common.workload_type(workload.kind)
            obj = await kube.get(rt, component.namespace, workload.name)
            containers = ((((obj or {}).get("spec") or {}).get("template") or {}).get("spec") or {}).get(
                "containers") or []
            if obj is None or not containers:
                continue
            first = _with_env(dict(containers[0]), values)
            if first is None:
                continue
            await kube.patch(rt, component.namespace, workload.name,
                             {"spec": {"template": {"spec": {"containers": [first, *containers[1:]]}}}})
            changed.append(f"{component.namespace}/{workload.name}")
    ctx.progress(f"{len(changed)} workloads point at {p.site}'s buckets")
    return {"site": p.site, "workloads": list(changed)}
