"""Two tiers of data protection, measured in the same lab run: Velero backups alone vs WAL archiving.

A lab with PostgreSQL (``lab: {postgres: true}``): users write records through DNS and the ingress;
each record is committed in the active site's database *and* kept as a Kubernetes object (so the
Velero backup carries it). The active site is cut off; the daemon fails over on its own, restores
the newest Velero backup and recovers the database from the WAL archived to the target. Then:

* **Velero tier**: acknowledged records the target's restored objects lack; window = outage start
  minus the restored backup's completion;
* **WAL tier**: acknowledged records the target's recovered database lacks; window = outage start
  minus the last replayed commit.

Then, in a second lab, a **planned switchover** (writes stop, the last segment is archived, the
target recovers to it): records lost must be 0.

    .venv/bin/python bench/pgwal.py [--backup-interval 10] [--writes 20] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
ACTIVE, TARGET = "ionos-de-fra", "stackit-eu01"


def make_config(directory: Path, *, backup_interval: int) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    data = yaml.safe_load((REPO / "config" / "lab.yaml").read_text())
    data["workplace"]["profile"] = str(REPO / "config" / "workplaces" / "opendesk.yaml")
    data["lab"].update({"postgres": True, "archive_timeout": 2, "etcd_members": 0,
                        "backup_interval": f"@every {backup_interval}s", "ready_delay": 0.3})
    data["policy"].update({"max_wal_age": 60, "rpo": 600})
    data["health"].update({"timeout": 5.0})  # a loaded machine must not look like an outage
    path = directory / "lab.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


class Lab:
    def __init__(self, config: Path, state: Path) -> None:
        self.config, self.state = config, state
        os.environ["FAILOVER_STATE_DIR"] = str(state)

    def cli(self, *words: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "failover.cli", "--config", str(self.config), *words],
                              capture_output=True, text=True, timeout=timeout, check=False, env=dict(os.environ))

    def runtime(self) -> Any:
        from failover.config import loader, runtime

        return runtime.resolve(loader.load(self.config))


async def wait(predicate: Any, *, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        await asyncio.sleep(0.25)
    raise RuntimeError(f"timed out after {timeout:g}s waiting for {what}")


async def lost(lab: Lab, gen: Any, site: str) -> tuple[list[str], list[str]]:
    """(lost by the restored objects, lost by the recovered database) on ``site``."""
    from failover.lab import postgres as lab_postgres
    from failover.lab.control import ControlClient

    rt = lab.runtime()
    db = rt.sites[site].database
    in_db = await lab_postgres.record_ids(db.port)
    in_backup = set(await ControlClient(str(rt.lab["control"])).records(site))
    return gen.lost(in_backup), gen.lost(in_db)


def step_output(doc: dict[str, Any], key: str) -> dict[str, Any]:
    return next((s["output"] or {}) for s in doc["steps"] if s["key"] == key and s["status"] == "succeeded")


async def failover(directory: Path, *, backup_interval: int, writes: int) -> dict[str, Any]:
    from failover import daemon as daemon_mod
    from failover.lab.generator import WorkloadGenerator

    lab = Lab(make_config(directory, backup_interval=backup_interval), directory / "state")
    up = await asyncio.to_thread(lab.cli, "lab", "up", "--json")
    if up.returncode != 0:
        raise RuntimeError(f"lab up failed: {up.stderr[-1500:]}")
    daemon = None
    try:
        rt = lab.runtime()
        store = daemon_mod.open_store(rt)
        gen = WorkloadGenerator.for_runtime(rt, state_dir=directory, rate=5.0)
        writing = asyncio.ensure_future(gen.run())
        daemon = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "failover.cli", "--config", str(lab.config), "daemon",
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ))

        def ready() -> bool:
            doc = store.get_state("status")
            return isinstance(doc, dict) and bool(doc["sites"][TARGET]["ready"])

        await wait(ready, timeout=240, what=f"{TARGET} ready")
        await wait(lambda: len(gen.acked) >= writes, timeout=240, what=f"{writes} records")
        outage = time.time()
        await asyncio.to_thread(lab.cli, "lab", "break", ACTIVE, "--mode", "down")

        def finished() -> Any:
            runs = store.list_runs(limit=1)
            return runs[0] if runs and str(runs[0].phase) in daemon_mod.TERMINAL else None

        run = await wait(finished, timeout=600, what="the failover run")
        gen.stop()
        await writing
        doc = daemon_mod.run_document(store, str(run.id))
        lost_backup, lost_db = await lost(lab, gen, TARGET)
        backup = step_output(doc, "select-backup")
        recovered = step_output(doc, "recover-databases")
        from datetime import datetime

        completed = datetime.fromisoformat(backup["completed_at"]).timestamp()
        recovered_to = recovered.get("recovered_to")
        detected = datetime.fromisoformat(doc["detected_at"]).timestamp() if doc.get("detected_at") else time.time()
        # the old site's last acknowledged write: the fault took effect after it (the break command takes
        # a moment), and the new site acknowledges writes only after the DNS switch, long after detection
        last_ack = max((t for t in gen.acked.values() if t < detected), default=outage)

        def span(lost: list[str]) -> float:  # the measured window: from the first lost write to the last write
            return round(last_ack - min(gen.acked[i] for i in lost), 1) if lost else 0.0

        return {
            "phase": doc["phase"], "acknowledged": len(gen.acked),
            "velero": {"records_lost": len(lost_backup), "window_s": round(outage - completed, 1),
                       "lost_span_s": span(lost_backup)},
            "wal": {"records_lost": len(lost_db),
                    "window_s": round(outage - datetime.fromisoformat(recovered_to).timestamp(), 1)
                    if recovered_to else None,
                    "lost_span_s": span(lost_db),
                    "gap": recovered.get("databases", {}).get("opendesk", {}).get("gap")},
            "recovery_step_s": _duration(doc, "recover-databases"),
            "rto_s": _rto(doc, outage),
        }
    finally:
        if daemon is not None:
            daemon.kill()
            await daemon.wait()
        await asyncio.to_thread(lab.cli, "lab", "down")


async def switchover(directory: Path, *, writes: int) -> dict[str, Any]:
    from failover.lab.generator import WorkloadGenerator

    lab = Lab(make_config(directory, backup_interval=10), directory / "state")
    up = await asyncio.to_thread(lab.cli, "lab", "up", "--json")
    if up.returncode != 0:
        raise RuntimeError(f"lab up failed: {up.stderr[-1500:]}")
    try:
        rt = lab.runtime()
        gen = WorkloadGenerator.for_runtime(rt, state_dir=directory, rate=5.0)
        writing = asyncio.ensure_future(gen.run())
        await wait(lambda: len(gen.acked) >= writes, timeout=240, what=f"{writes} records")
        started = time.time()
        run = await asyncio.to_thread(lab.cli, "run", "switchover", "--to", TARGET, timeout=900)
        took = time.time() - started
        gen.stop()
        await writing
        lost_backup, lost_db = await lost(lab, gen, TARGET)
        return {"rc": run.returncode, "acknowledged": len(gen.acked), "records_lost": len(lost_db),
                "records_lost_by_objects": len(lost_backup), "took_s": round(took, 1),
                "error": run.stderr[-600:] if run.returncode else None}
    finally:
        await asyncio.to_thread(lab.cli, "lab", "down")


def _duration(doc: dict[str, Any], key: str) -> float | None:
    from datetime import datetime

    for s in doc["steps"]:
        if s["key"] == key and s["status"] == "succeeded" and s["started_at"] and s["finished_at"]:
            return round((datetime.fromisoformat(s["finished_at"]) - datetime.fromisoformat(s["started_at"]))
                         .total_seconds(), 1)
    return None


def _rto(doc: dict[str, Any], outage: float) -> float | None:
    from datetime import datetime

    verified = doc.get("verified_at")
    return round(datetime.fromisoformat(verified).timestamp() - outage, 1) if verified else None


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="failover-bench-pgwal-") as tmp:
        out = {"failover": await failover(Path(tmp) / "f", backup_interval=args.backup_interval,
                                          writes=args.writes) if not args.switchover_only else None}
        if not args.failover_only:
            out["switchover"] = await switchover(Path(tmp) / "s", writes=args.writes)
        return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backup-interval", type=int, default=10, help="Velero backup interval, seconds")
    parser.add_argument("--writes", type=int, default=20, help="records written before the outage")
    parser.add_argument("--failover-only", action="store_true")
    parser.add_argument("--switchover-only", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = asyncio.run(main_async(args))
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    f = result.get("failover")
    if f:
        print(f"failover ({f['phase']}, RTO {f['rto_s']}s, database recovery step {f['recovery_step_s']}s), "
              f"{f['acknowledged']} records acknowledged:")
        velero, wal = f["velero"], f["wal"]
        print(f"  Velero only   : {velero['records_lost']:3d} records lost, data-loss window {velero['window_s']}s "
              f"(lost writes span {velero['lost_span_s']}s)")
        print(f"  WAL archiving : {wal['records_lost']:3d} records lost, data-loss window {wal['window_s']}s "
              f"(lost writes span {wal['lost_span_s']}s)"
              + (f"  GAP: {wal['gap']}" if wal["gap"] else ""))
    s = result.get("switchover")
    if s:
        print(f"planned switchover (rc {s['rc']}, {s['took_s']}s): {s['records_lost']} of {s['acknowledged']} "
              f"records lost" + (f" ({s['error']})" if s["error"] else ""))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    raise SystemExit(main())
