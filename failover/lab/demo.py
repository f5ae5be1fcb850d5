"""``failover lab demo``: the whole story, live — a provider outage and the automatic failover.

1. the lab comes up (four providers, PowerDNS, S3, clusters, openDesk);
2. steady state: the active site backs up, the daemon replicates to the standbys, users write
   records through DNS (the workload generator);
3. the active site's provider goes down;
4. the daemon detects it, fences, restores on the best ready standby group by group, moves DNS,
   verifies every app — shown step by step as it happens;
5. the old site comes back and stays fenced;
6. the summary: RTO from outage start and from detection, the data-loss window, and the records
   and volume files users had written that the new site does not hold (counted, not estimated);
   the lab goes down.

It drives the product exactly as an operator would: the lab through its CLI, the daemon in-process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from rich.markup import escape

from failover import daemon as daemon_mod
from failover import s3
from failover.cli import live, output
from failover.config import loader, runtime
from failover.core import errors, tasks
from failover.lab import generator as gen_mod
from failover.lab import runtime as lab_runtime
from failover.lab import volumes

log = logging.getLogger("failover.demo")


def _cli(args: argparse.Namespace, *words: str) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "failover.cli"]
    if args.config:
        cmd += ["--config", str(args.config)]
    proc = subprocess.run([*cmd, *words], capture_output=True, text=True, timeout=120, check=False)
    if proc.returncode != 0:
        raise errors.PermanentError(f"`failover {' '.join(words)}` failed: {proc.stderr.strip()[-500:]}")
    out = proc.stdout.strip()
    return json.loads(out) if out.startswith("{") else {}


class _SentencePrinter(logging.Handler):
    def __init__(self, t0: float, json_mode: bool) -> None:
        super().__init__(logging.INFO)
        self.t0, self.json_mode, self.sentences = t0, json_mode, []  # type: ignore[var-annotated]

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        self.sentences.append({"t": round(time.monotonic() - self.t0, 2), "sentence": message})
        if not self.json_mode:
            live.say(f"[dim]{time.monotonic() - self.t0:6.1f}s[/dim] [cyan]decision:[/cyan] {escape(message)}")


def say(args: argparse.Namespace, text: str) -> None:
    if not args.json:
        live.say(text)


async def _wait(predicate: Any, *, timeout: float, what: str, interval: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(interval)
    raise errors.TemporaryError(f"demo: {what} did not happen within {timeout:.0f}s")


async def _records(rt: runtime.Runtime, site: str) -> set[str]:
    assert rt.lab is not None
    control = str(rt.lab["control"])
    async with httpx.AsyncClient(timeout=5) as client:
        r = await client.get(f"{control}/sites/{site}/records")
        r.raise_for_status()
        return set(r.json()["ids"])


def _files(rt: runtime.Runtime, site: str) -> set[str]:
    """Ids of the users' files the site's volumes hold (restored by the file-system backup)."""
    store = volumes.VolumeStore(volumes.site_root(lab_runtime.LabPaths(rt.state_dir).root, site))
    held: set[str] = set()
    for component in rt.profile.components:
        claim = volumes.users_claim(component)
        if component.stateful and claim is not None:
            held.update(store.names(component.namespace, claim))
    return held


async def _objects(gen: gen_mod.WorkloadGenerator, site: str) -> set[str]:
    """Keys of the users' objects the site's app bucket holds (replicated by the daemon)."""
    loc = gen.app_buckets.get(site)
    if loc is None:
        return set()
    async with s3.ClientPool() as pool:
        return {o.key for o in await s3.list_objects(await pool.client(loc), loc, "users/")}


async def story(args: argparse.Namespace, rt: runtime.Runtime, t0: float) -> dict[str, Any]:
    cfg = rt.config
    source = cfg.active_site().name
    store = daemon_mod.open_store(rt)
    view = live.LiveView(json_mode=args.json, t0=t0)  # one clock with the decisions
    d = daemon_mod.Daemon(rt, store=store, observers=[view], holder="demo-daemon")
    daemon_task = tasks.create_guarded_task(d.run(), name="daemon", eternal=True)
    gen = gen_mod.WorkloadGenerator.for_runtime(rt, state_dir=rt.state_dir / "lab")
    gen_task = tasks.create_guarded_task(gen.run(), name="workload generator")
    try:
        say(args, "[bold]2. steady state[/bold]: backups on the active site, replication to the standbys, "
                  "users writing records")

        async def standbys_ready() -> bool:
            views = d.watcher.views()
            return any(v.ready for v in views.values() if v.role == "standby") and \
                views[source].health.value == "healthy"

        await _wait(standbys_ready, timeout=60, what="a ready standby")
        wall_start = time.time()

        async def users_data_replicated() -> bool:
            # steady state: a backup taken after users began writing has reached a ready standby
            views = d.watcher.views()
            return len(gen.acked) >= 10 and any(
                v.ready and v.newest_backup is not None and v.newest_backup.completed_at.timestamp() > wall_start + 2
                for v in views.values() if v.role == "standby")

        await _wait(users_data_replicated, timeout=90, what="a backup of the users' records on a standby")
        ready = [n for n, v in d.watcher.views().items() if v.ready]
        say(args, f"   ready standbys: {', '.join(ready)}; records written so far: {len(gen.acked)}")
        say(args, f"[bold]3. outage[/bold]: {source} ({cfg.site(source).provider}) goes down")
        broke_at = time.monotonic()
        _cli(args, "lab", "break", source, "--mode", "down")

        async def failed_over() -> bool:
            run = daemon_mod.current_run(store)
            runs = store.list_runs(limit=1)
            return run is None and bool(runs) and str(runs[0].phase) in daemon_mod.TERMINAL

        say(args, "[bold]4. the daemon takes over[/bold]")
        await _wait(failed_over, timeout=90, what="the failover")
        gen.stop()
        await tasks.cancel_and_wait(gen_task)
        record = store.list_runs(limit=1)[0]
        doc = daemon_mod.run_document(store, str(record.id))
        target = str(doc.get("to"))
        held = await _records(rt, target)
        lost = sorted(set(gen.acked) - held)
        lost_files = gen.lost_files(_files(rt, target))
        lost_objects = sorted(set(gen.objects) - await _objects(gen, target))
        say(args, f"[bold]5. the old site comes back[/bold]: healing {source}")
        _cli(args, "lab", "heal", source)
        await asyncio.sleep(cfg.health.interval * (cfg.health.recover_after + 2))
        roles = daemon_mod.roles_of(store, cfg)
        return {
            "run": doc, "from": source, "to": target, "phase": doc["phase"],
            "rto_s": doc.get("rto_s"), "rto_from_detection_s": doc.get("rto_from_detection_s"),
            "data_loss_window_s": doc.get("data_loss_window_s"),
            "records_written": len(gen.acked), "records_lost": len(lost), "lost_ids": lost[:20],
            "files_written": len(gen.files), "files_lost": len(lost_files), "lost_files": lost_files[:20],
            "objects_written": len(gen.objects), "objects_lost": len(lost_objects),
            "seconds_from_break_to_done": round(time.monotonic() - broke_at, 2),
            "roles_after_heal": roles, "active_after_heal": daemon_mod.active_of(store, cfg),
        }
    finally:
        gen.stop()
        await tasks.cancel_and_wait(gen_task, daemon_task, timeout=10)


def _summary(args: argparse.Namespace, result: dict[str, Any]) -> None:
    if args.json:
        return
    live.say("\n[bold]6. summary[/bold] (Übungsbericht in short)")
    live.print_summary(result["run"])
    live.say(f"  records written by users: {result['records_written']}; lost: {result['records_lost']}")
    live.say(f"  after healing: active={result['active_after_heal']}, "
             f"{result['from']} is {result['roles_after_heal'].get(result['from'])} (no flip-back)")
    live.say(f"  files written by users (in volumes): {result['files_written']}; lost: {result['files_lost']}")
    live.say(f"  objects written by users (in the app's bucket): {result['objects_written']}; "
             f"lost: {result['objects_lost']}")


def main(args: argparse.Namespace) -> int:
    return asyncio.run(amain(args))


async def amain(args: argparse.Namespace) -> int:
    loaded = loader.load(args.config)
    if loaded.config.lab is None:
        raise errors.InputError(f"{loaded.path}: the demo runs only on a lab config (it has no `lab:` section)")
    # the view shows every step and decision: the log lines repeating them go to a file
    quiet = contextlib.nullcontext() if args.json else live.quiet_logs(
        Path(loaded.state_dir), name="demo", verbose=bool(getattr(args, "verbose", False) or args.debug))
    with quiet:
        return await _demo(args, loaded)


async def _demo(args: argparse.Namespace, loaded: loader.Loaded) -> int:
    t0 = time.monotonic()
    printer = _SentencePrinter(t0, args.json)
    logging.getLogger("failover.daemon").addHandler(printer)
    # on screen the printer shows the decisions and the log file keeps them; --json prints them at the end
    logging.getLogger("failover.daemon").propagate = not args.json
    say(args, "[bold]1. the lab comes up[/bold]: four providers, PowerDNS, S3, Kubernetes, openDesk")
    _cli(args, "lab", "down")
    state = Path(loaded.state_dir)
    (state / "failover.db").unlink(missing_ok=True)
    _cli(args, "lab", "up", "--json")
    try:
        rt = runtime.resolve(loaded)
        result = await story(args, rt, t0)
    finally:
        _cli(args, "lab", "down")
    result["decisions"] = printer.sentences
    result["total_s"] = round(time.monotonic() - t0, 2)
    if args.json:
        output.emit_json(result)
    else:
        _summary(args, result)
        output.console.print(f"demo finished in {result['total_s']:.0f}s; the lab is down.")
    return 0 if result["phase"] == "succeeded" and result["active_after_heal"] == result["to"] else 1
