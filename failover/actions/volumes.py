"""Verifying the restored volumes: every file-system backup of the restored backup is there, readable.

A restore whose PodVolumeRestores found no data still brings the apps up, on empty volumes, and
the app probes pass. So the verify stage also reads the restored backup's PodVolumeBackups from
the target's bucket and, for each, the snapshot's manifest from the kopia repository of its
namespace there, and checks that every pack the snapshot needs is present: a snapshot that cannot
be restored (no repository, an index pointing at a missing pack) fails the step. It reports the
volumes and the files they hold, which the lab compares with the files users wrote. The
repository is read in the lab's kopia-style format; on a real (encrypted) kopia repository only
the presence of the repository and the snapshot list is checked (``files`` null).
"""

from __future__ import annotations

import json

from pydantic import BaseModel, ConfigDict

from failover import s3
from failover.actions import common
from failover.core import errors
from failover.playbook import registry
from failover.playbook.engine import StepContext, StepResult
from failover.velero import kopia, kopia_volumes

LAB_FORMAT = "lab-kopia/1"


class VerifyVolumesParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    site: str
    backup: str


@registry.action("verify-volumes", params=VerifyVolumesParams, timeout=300, mutating=False)
async def verify_volumes(ctx: StepContext, p: VerifyVolumesParams) -> StepResult:
    """Every PodVolumeBackup of ``backup`` has its snapshot readable in ``site``'s bucket."""
    svc = common.services(ctx)
    loc = svc.site(p.site).storage
    if loc is None:
        raise errors.PermanentError(f"site {p.site} has no storage configured")
    pvbs = [v for v in await kopia_volumes.read(loc, p.backup) if v.snapshot_id]
    files: int | None = 0
    problems: list[str] = []
    async with s3.open_client(loc) as client:
        repos: dict[str, kopia.Repository] = {}
        for pvb in pvbs:
            repo = repos.setdefault(pvb.namespace, kopia.Repository(client, loc, pvb.namespace))
            try:
                fmt = json.loads(await s3.get_bytes(client, loc, repo.dir + kopia.FORMAT_BLOB))
                if fmt.get("format") != LAB_FORMAT:
                    files = None
                    continue
                held = await repo.check_snapshot(pvb.snapshot_id)
            except (errors.FailoverError, ValueError, KeyError) as exc:
                problems.append(f"{pvb.namespace}/{pvb.claim}: {exc}")
                continue
            if files is not None:
                files += held
    if problems:
        raise errors.PermanentError(f"{len(problems)} of {len(pvbs)} volumes of {p.backup} cannot be restored on "
                                    f"{p.site}: {'; '.join(problems[:3])}")
    ctx.progress(f"{len(pvbs)} volumes of {p.backup} readable on {p.site}"
                 + (f", {files} files" if files is not None else ""))
    return {"site": p.site, "backup": p.backup, "volumes": len(pvbs), "files": files}
