"""The implementation of the commands registered in :mod:`failover.cli.runbook_cmd`."""

from __future__ import annotations

import argparse
import asyncio
import getpass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.markup import escape

from failover.cli import output
from failover.config import loader, runtime
from failover.core import errors
from failover.runbook import hand, operators, service, view
from failover.store import Store, sqlite


def _loaded(args: argparse.Namespace) -> loader.Loaded:
    return loader.load(args.config)


def _store(loaded: loader.Loaded) -> Store:
    if loaded.config.coordination.backend.value == "etcd":  # the store every instance shares
        from failover.ha import backend

        return backend.open_store(runtime.resolve(loaded))
    loaded.state_dir.mkdir(parents=True, exist_ok=True)
    return sqlite.SqliteStore(loaded.state_dir / "failover.db")


def _actor(args: argparse.Namespace, loaded: loader.Loaded) -> operators.Actor:
    return operators.identify(loaded.config, args.as_, secret_file=args.secret_file)


def _dirs(loaded: loader.Loaded) -> list[Path]:
    return [loaded.path.parent.parent / "playbooks", Path(__file__).resolve().parents[2] / "playbooks"]


def _playbooks(loaded: loader.Loaded) -> dict[str, Any]:
    from failover.playbook import loader as pb_loader

    found: dict[str, Any] = {}
    for directory in _dirs(loaded):
        for path in sorted(directory.glob("*.yaml")) if directory.is_dir() else ():
            if path.stem not in found:
                found[path.stem] = pb_loader.load_playbook(path)
    return found


def list_(args: argparse.Namespace) -> int:
    books = _playbooks(_loaded(args))
    doc = {"playbooks": [{"name": n, "description": pb.description, "steps": len(pb.steps()),
                          "manual_steps": [s.id for s in pb.steps() if s.uses == "manual"]}
                         for n, pb in books.items()]}
    if args.json:
        output.emit_json(doc)
        return 0
    for entry in doc["playbooks"]:
        manual = f"; manual: {', '.join(entry['manual_steps'])}" if entry["manual_steps"] else ""
        output.console.print(f"[bold]{entry['name']}[/bold]: {entry['description']} ({entry['steps']} steps{manual})")
    return 0


def show(args: argparse.Namespace) -> int:
    from failover.playbook import loader as pb_loader

    loaded = _loaded(args)
    pb = pb_loader.load_playbook_by_name(args.playbook, _dirs(loaded))
    if args.json:
        output.emit_json(pb.to_json())
        return 0
    output.console.print(f"[bold]{pb.name}[/bold]: {pb.description}")
    for i, stage in enumerate(pb.stages, 1):
        output.console.print(f"{i}. {stage.name}")
        for s in stage.steps:
            if s.uses == "manual":
                title = escape(hand.placeholder(s.with_.get("title")))
                output.console.print(f"   - {s.id} [yellow]manual[/yellow]: {title} "
                                     f"(role {s.with_.get('role')}, {s.with_.get('approvers', 1)} to confirm)")
            else:
                output.console.print(f"   - {s.id}: {s.uses}")
    return 0


async def start(args: argparse.Namespace) -> int:
    from failover import daemon as daemon_mod
    from failover.cli import live
    from failover.playbook import loader as pb_loader

    loaded = _loaded(args)
    actor = _actor(args, loaded)
    if args.break_glass is None and args.reason:
        raise errors.InputError("--reason goes with --break-glass RULE")
    rt = runtime.resolve(loaded)
    store = daemon_mod.open_store(rt)
    playbook = pb_loader.load_playbook_by_name(args.playbook, daemon_mod.playbook_dirs(rt))
    stored = store.get_state("status")
    status_doc = stored if isinstance(stored, dict) and _age(stored.get("updated_at")) <= \
        max(10.0, rt.config.health.interval * 3) else None
    started = await service.start(
        cfg=rt.config, store=store, playbook=playbook, source=args.source or daemon_mod.active_of(store, rt.config),
        target=args.to, actor=actor, roles=daemon_mod.roles_of(store, rt.config), step_mode=args.step,
        break_glass=(args.break_glass, args.reason) if args.break_glass else None, now=datetime.now(UTC),
        status=status_doc, backup_schedule=rt.config.lab.backup_interval if rt.config.lab else "@every 10m")
    holder = f"cli:{actor.name}:{getpass.getuser()}"
    if args.detach or not store.acquire_lease(holder, 24 * 3600):
        doc = {"run": started.run_id, "executed_by": store.lease_holder() or "the daemon (on its next cycle)",
               "overridden": [r.__dict__ for r in started.verdict.overridden]}
        if args.json:
            output.emit_json(doc)
        else:
            output.console.print(f"run {started.run_id} created; {doc['executed_by']} executes it. Follow it with "
                                 "`failover runbook status --watch`")
        return 0
    try:
        d = daemon_mod.Daemon(rt, store=store, observers=[live.LiveView(json_mode=args.json)], holder=holder)
        try:
            record = await d.engine.execute(started.run_id)
        finally:
            await d.services.aclose()
    finally:
        store.release_lease(holder)
    doc = view.run_view(rt.config, store, record)
    if args.json:
        output.emit_json(doc)
    else:
        view.print_view(doc, output.console)
    return 0 if record.phase.value == "succeeded" else 1


def _age(stamp: Any) -> float:
    try:
        return (datetime.now(UTC) - datetime.fromisoformat(str(stamp))).total_seconds()
    except ValueError:
        return float("inf")


async def status(args: argparse.Namespace) -> int:
    loaded = _loaded(args)
    store = _store(loaded)
    run = service.find_run(store, args.run)
    last = ""
    while True:
        doc = view.run_view(loaded.config, store, store.get_run(run.id) or run)
        if args.json and not args.watch:
            output.emit_json(doc)
            return 0
        text = output.dumps(doc)
        if text != last:
            last = text
            if args.json:
                output.emit_json(doc)
            else:
                view.print_view(doc, output.console)
        if not args.watch or doc["phase"] in ("succeeded", "failed", "cancelled"):
            return 0 if doc["phase"] != "failed" else 1
        await asyncio.sleep(1.0)


def _done(args: argparse.Namespace, doc: dict[str, Any], text: str) -> int:
    if args.json:
        output.emit_json(doc)
    else:
        output.console.print(text)
    return 0


def next_(args: argparse.Namespace) -> int:
    loaded = _loaded(args)
    actor = _actor(args, loaded)
    keys = service.release_next(store=_store(loaded), actor=actor, run_id=args.run)
    return _done(args, {"released": keys, "by": actor.name}, f"released: {', '.join(keys)}")


def confirm(args: argparse.Namespace) -> int:
    loaded = _loaded(args)
    actor = _actor(args, loaded)
    evidence = service.parse_evidence(args.evidence)
    signed = service.confirm(store=_store(loaded), actor=actor, run_id=args.run, key=args.step, evidence=evidence)
    return _done(args, {"step": args.step, "signed": signed, "by": actor.name},
                 f"{args.step}: confirmed by {actor.name} (signed so far: {', '.join(signed)})")


def skip(args: argparse.Namespace) -> int:
    loaded = _loaded(args)
    actor = _actor(args, loaded)
    service.skip(cfg=loaded.config, store=_store(loaded), actor=actor, run_id=args.run, key=args.step,
                 reason=args.reason)
    return _done(args, {"step": args.step, "skipped_by": actor.name}, f"{args.step}: skipped by {actor.name}")


def abort(args: argparse.Namespace) -> int:
    loaded = _loaded(args)
    actor = _actor(args, loaded)
    run = service.abort(cfg=loaded.config, store=_store(loaded), actor=actor, run_id=args.run, reason=args.reason)
    return _done(args, {"run": run.id, "phase": run.phase.value, "by": actor.name},
                 f"run {run.id} aborted by {actor.name}; a step already running finishes, nothing more starts")


def render(args: argparse.Namespace) -> int:
    from failover.runbook import handbook

    loaded = _loaded(args)
    store = _store(loaded) if (loaded.state_dir / "failover.db").exists() else None
    book = handbook.build(loaded, _playbooks(loaded), store)
    if args.format == "pdf":
        if args.output is None:
            raise errors.InputError("--format pdf needs -o FILE")
        handbook.write_pdf(book, args.output)
        output.console.print(f"wrote {args.output}")
        return 0
    text = handbook.to_markdown(book) if args.format == "md" else handbook.to_html(book)
    if args.output is None:
        print(text, end="")
    else:
        args.output.write_text(text, encoding="utf-8")
    return 0


def hash_secret(args: argparse.Namespace) -> int:
    secret = operators.read_secret(None)
    if not secret:
        raise errors.InputError(f"no secret: set ${operators.SECRET_ENV} or run in a terminal")
    print(operators.hash_secret(secret))
    return 0
