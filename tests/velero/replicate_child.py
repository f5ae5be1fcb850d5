"""A replication in a child process, for tests that measure its memory or kill it mid-copy.

``python -m tests.velero.replicate_child '<json>'`` with ``src``/``dst`` (S3Location fields) and
``backup`` (one backup) or ``kopia`` (sync every repository). Prints one JSON line per event:
``{"ready": rss_kib}`` before copying, each copied kopia blob as ``{"copied": key}`` (so a test can
kill the process mid-copy), and ``{"done": ..., "hwm_kib": ..., "baseline_kib": ...}`` at the end.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys

from failover import replicate, s3, s3copy
from failover.velero import kopia_sync


def _status(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


class _Printer(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("kopia ") and " copied " in record.getMessage():
            print(json.dumps({"copied": record.getMessage()}), flush=True)


async def main(args: dict[str, object]) -> None:
    src = s3.S3Location.model_validate(args["src"])
    dst = s3.S3Location.model_validate(args["dst"])
    log = logging.getLogger("failover.velero.kopia_sync")
    log.setLevel(logging.DEBUG)
    log.addHandler(_Printer())
    async with s3.ClientPool() as pool:
        await pool.client(src)  # warm: the baseline includes botocore's loaded service model
        await pool.client(dst)
        baseline = _status("VmRSS")
        print(json.dumps({"ready": baseline}), flush=True)
        if "backup" in args:
            copier = replicate.Copier(pool, asyncio.Semaphore(int(str(args.get("concurrency", 4)))))
            done = await replicate._copy_backup(copier, src, dst, str(args["backup"]))
            sums = {c.key: c.sha256 for c in copier.copies}
        else:
            done = await kopia_sync.sync_all(pool, src, dst, limit=asyncio.Semaphore(int(str(args["concurrency"]))),
                                             part_size=s3copy.PART_SIZE)
            sums = {}
    print(json.dumps({"done": done, "sha256": sums, "hwm_kib": _status("VmHWM"), "baseline_kib": baseline}),
          flush=True)


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
