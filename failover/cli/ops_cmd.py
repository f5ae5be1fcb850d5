"""Operations commands: ``status``, ``plan``, ``run``, ``approve``, ``history``, ``daemon``,
``pause``, ``resume`` — the surface the on-call engineer and the runbook use."""

from __future__ import annotations

import argparse
import contextlib
import getpass
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from failover.cli import output
from failover.core import errors

if TYPE_CHECKING:  # the commands import what they need when they run (fast start-up)
    from failover.config import runtime

logger = logging.getLogger("failover.cli")


def register(sub: Any) -> None:
    p = sub.add_parser("status", help="sites, health with reasons, readiness, active site, current run")
    p.add_argument("--json", action="store_true")
    p.add_argument("--live", action="store_true",
                   help="probe every site now instead of reading the daemon's last snapshot")
    p.add_argument("--watch", action="store_true", help="redraw on every change until Ctrl-C")
    p.add_argument("--wide", action="store_true", help="every column and every reason in full, one line per site")
    _remote_options(p)
    p.set_defaults(func=status)

    p = sub.add_parser("plan", help="dry run: what a failover would do now (changes nothing)")
    p.add_argument("kind", choices=["failover", "switchover"])
    p.add_argument("--to", required=True, help="target site")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=plan)

    p = sub.add_parser("run", help="run a playbook now (holds the lease while it runs)")
    p.add_argument("playbook", help="playbook name (failover, switchover) or path")
    p.add_argument("--to", required=True, help="target site")
    p.add_argument("--from", dest="source", default=None, help="source site (default: the active site)")
    p.add_argument("--backup", default="", help="restore this backup instead of the newest")
    p.add_argument("--allow-stale", action="store_true", help="accept a backup older than the RPO")
    p.add_argument("--force", action="store_true",
                   help="run although the target is refused (active, fenced, not ready, …); needs --reason")
    p.add_argument("--reason", default="", help="why the refusal is overridden (journaled with your name)")
    p.add_argument("--as", dest="as_", default=None, metavar="NAME",
                   help="with --force: the operator overriding (needs the break-glass role when the config "
                        "names operators)")
    p.add_argument("--secret-file", type=Path, default=None, help="file holding the operator's secret")
    p.add_argument("--without-coordination", metavar="REASON", default=None,
                   help="etcd has no quorum: run from this host's local journal anyway (recorded with REASON)")
    p.add_argument("--json", action="store_true")
    output.add_verbose_flag(p)
    p.set_defaults(func=run)

    p = sub.add_parser("approve", help="approve a failover run that waits for approval")
    p.add_argument("run_id")
    p.add_argument("--by", default=None, help="who approves (default: the login name; with --server: the token's)")
    _remote_options(p)
    p.add_argument("--as", dest="as_", default=None, metavar="NAME",
                   help="approve as this operator (proved by its secret; needed with policy.approvers > 1)")
    p.add_argument("--secret-file", type=Path, default=None, help="file holding the operator's secret")
    p.set_defaults(func=approve)

    p = sub.add_parser("history", help="past runs and decisions")
    p.add_argument("--limit", type=output.bounded_int(1, 10_000), default=20, help="at most this many (1-10000)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--wide", action="store_true", help="one line per run and decision, nothing wrapped or left out")
    _remote_options(p)
    p.set_defaults(func=history)

    p = sub.add_parser("daemon", help="run the failover daemon (watch, replicate, decide, act)")
    p.add_argument("--once", action="store_true", help="one probe round and one controller cycle")
    p.add_argument("--name", default=None, help="this daemon's name as lease holder and observer (default: "
                   "$FAILOVER_NODE, else the host name (local backend) or host:pid:random (etcd))")
    p.set_defaults(func=daemon)

    p = sub.add_parser("unfence", help="re-admit a fenced site as a standby once it has been cleaned up")
    p.add_argument("site")
    p.add_argument("--yes", action="store_true", help="confirm the site no longer serves or writes")
    p.set_defaults(func=unfence)

    for name, value in (("pause", True), ("resume", False)):
        p = sub.add_parser(name, help=f"{name} automatic failover (the daemon keeps watching)")
        _remote_options(p)
        p.set_defaults(func=_pause, paused=value)


def _remote_options(p: Any) -> None:
    p.add_argument("--server", default=None, metavar="URL",
                   help="talk to a remote daemon's API (e.g. https://failover.example:8480)")
    p.add_argument("--token", default=None, help="operator bearer token (default: $FAILOVER_TOKEN)")


def _remote(args: argparse.Namespace, command: str) -> int:
    """``--server``: the command through the daemon's API (failover.cli.remote_cmd)."""
    import asyncio

    from failover.cli import remote_cmd

    return int(asyncio.run(getattr(remote_cmd, command)(args)))


def _runtime(args: argparse.Namespace) -> runtime.Runtime:
    from failover.config import loader, runtime

    return runtime.resolve(loader.load(args.config))


async def _probed_snapshot(d: Any, target: str) -> Any:
    """Probe rounds of every site (concurrently) until each check of ``target`` has a verdict (at
    most ``fail_after`` rounds: a check fails only after that many failed samples), then the
    controller's snapshot."""
    import asyncio

    for _ in range(max(1, d.cfg.health.fail_after)):
        await asyncio.gather(*(d.watcher.round(name) for name in d.watcher.sites))
        view = d.watcher.views().get(target)
        if view is None or all(c.passing is not None for c in view.checks):
            break
    if d.wal.enabled:  # the databases' archived WAL on each standby (policy.max_wal_age)
        await d.wal.read_once(d.roles())
    return d.snapshot()


def status(args: argparse.Namespace) -> int:
    from failover.cli import reads  # the store and the tables: only when asked for

    if args.server:
        return _remote(args, "status")
    return reads.status(args)


async def _status_without_coordination(args: argparse.Namespace, rt: runtime.Runtime,
                                       exc: errors.TemporaryError) -> int:
    """etcd cannot answer: say so, and show what one probe round from here sees."""
    import tempfile
    from pathlib import Path

    from failover import daemon as daemon_mod
    from failover.store import sqlite

    with tempfile.TemporaryDirectory() as tmp:
        local = sqlite.SqliteStore(Path(tmp) / "probe.db")
        d = daemon_mod.Daemon(rt, store=local, holder="status-probe")
        try:
            for name in d.watcher.sites:
                await d.watcher.round(name)
            doc = daemon_mod.status_document(rt, d.snapshot(), local)
        finally:
            await d.services.aclose()
            local.close()
    doc.update(epoch=None, source="one probe round by this command: the coordination backend is unavailable")
    doc["coordination"] = {"backend": rt.config.coordination.backend.value, "available": False,
                           "error": str(exc), "effect": "no automatic failover; the daemons keep watching; "
                           "a manual run needs --without-coordination REASON"}
    if args.json:
        output.emit_json(doc)
    else:
        from failover.cli import reads

        output.console.print(f"[red]coordination unavailable[/red]: {exc}; no automatic failover")
        reads.print_status(doc, wide=bool(getattr(args, "wide", False)))
    return 0


async def plan(args: argparse.Namespace) -> int:
    """Dry run: the steps, the backup that would be restored, the expected data loss."""
    from failover import controller
    from failover import daemon as daemon_mod
    from failover.playbook import loader as pb_loader
    from failover.velero import verify

    rt = _runtime(args)
    if args.to not in rt.sites:
        raise errors.InputError(f"--to: unknown site {args.to!r} (sites: {', '.join(rt.sites)})")
    playbook = pb_loader.load_playbook_by_name(args.kind, daemon_mod.playbook_dirs(rt))
    store = daemon_mod.open_store(rt)
    active = daemon_mod.active_of(store, rt.config)
    d = daemon_mod.Daemon(rt, store=store, holder="plan-probe")
    try:
        refused = controller.refusals(await _probed_snapshot(d, args.to), args.to, args.kind, d.policy)
    finally:
        await d.services.aclose()
    target = rt.sites[args.to]
    now = datetime.now(UTC)
    choice = await verify.choose(target.storage, bad=verify.bad_backups(store, args.to), now=now,
                                 rpo=rt.config.policy.rpo) if target.storage else verify.Choice(info=None)
    newest = choice.info
    age = (now - newest.completion_timestamp).total_seconds() if newest and newest.completion_timestamp else None
    doc = {
        "playbook": playbook.name, "from": active, "to": args.to,
        "backup": newest.name if newest else None,
        "backup_completed_at": newest.completion_timestamp.isoformat() if newest and newest.completion_timestamp
        else None,
        "expected_data_loss_s": age, "rpo_s": rt.config.policy.rpo,
        "within_rpo": age is not None and age <= rt.config.policy.rpo,
        "restore_groups": sorted({c.group for c in rt.profile.components if c.strategy.value == "restore"}),
        "stages": [{"name": s.name, "steps": [st.id for st in s.steps]} for s in playbook.stages],
        "changes_made": False,
        "would_refuse": refused,
        "skipped_backups": [{"backup": n, "why": w} for n, w in choice.skipped],
    }
    if args.json:
        output.emit_json(doc)
        return 1 if refused else 0
    c = output.console
    c.print(f"plan: {playbook.name} {active} -> {args.to} (dry run, nothing changed)")
    for reason in refused:
        c.print(f"[red]would refuse:[/red] {reason}")
    c.print(f"backup: {doc['backup'] or 'NONE'}; expected data loss ≈ "
            f"{'?' if age is None else f'{age:.0f}s'} (RPO {rt.config.policy.rpo:.0f}s)")
    for i, stage in enumerate(doc["stages"], 1):
        c.print(f"  {i}. {stage['name']}: {', '.join(stage['steps'])}")
    return 0 if doc["backup"] and not refused else 1


async def run(args: argparse.Namespace) -> int:
    from failover import controller, identity
    from failover import daemon as daemon_mod
    from failover.cli import live

    if args.force and not args.reason.strip():
        raise errors.InputError("--force needs --reason TEXT: the override is journaled with your name and why")
    rt = _runtime(args)
    store = _run_store(args, rt)
    holder = identity.make_holder(f"cli-{getpass.getuser()}")
    from failover.core import tasks
    from failover.ha import coordinator
    from failover.store.etcd import EtcdStore

    shared = isinstance(store, EtcdStore)  # etcd: a short lease, kept alive while the run lasts
    ttl = rt.config.coordination.lease_ttl if shared else 3600
    current = store.lease_holder()
    if current is not None and identity.is_dead_local(current):
        store.release_lease(current)  # a crashed daemon or CLI on this host
    if not store.acquire_lease(holder, ttl):
        raise errors.PermanentError("another actor (the daemon?) holds the lease: `failover pause` it or "
                                    "let it act; at most one actor mutates the workplace")
    keeper = tasks.create_guarded_task(coordinator.keep_lease(store, holder, ttl), name="lease keeper") \
        if shared else None
    try:
        source = args.source or daemon_mod.active_of(store, rt.config)
        if args.to not in rt.sites or source not in rt.sites:
            raise errors.InputError(f"unknown site; sites: {', '.join(rt.sites)}")
        observer = live.LiveView(json_mode=args.json)
        d = daemon_mod.Daemon(rt, store=store, observers=[observer], holder=holder)
        quiet = contextlib.nullcontext() if args.json else \
            live.quiet_logs(rt.state_dir, name="run", verbose=args.verbose or args.debug)
        try:
            kind = "switchover" if "switchover" in args.playbook else "failover"
            snapshot = await _probed_snapshot(d, args.to)
            binding = controller.binding_refusals(snapshot, args.to)
            if binding:  # --force does not lift these
                return _refused(binding, args, overridable=False)
            refused = controller.refusals(snapshot, args.to, kind, d.policy, allow_stale=args.allow_stale)
            override = await _override(rt, store, refused, args, kind)
            if refused and not override:
                return _refused(refused, args)
            with quiet:
                record = await d.run_playbook(args.playbook, source=source, target=args.to, backup=args.backup,
                                              allow_stale=args.allow_stale, override=override)
        finally:
            await d.services.aclose()
    finally:
        if keeper is not None:
            await tasks.cancel_and_wait(keeper)
        store.release_lease(holder)
    summary = daemon_mod.run_document(store, record.id)
    if args.json:
        output.emit_json(summary)
    else:
        live.print_summary(summary)
    return 0 if summary["phase"] == "succeeded" else 1


async def _override(rt: runtime.Runtime, store: Any, refused: list[str], args: argparse.Namespace,
                    kind: str) -> str:
    """The journaled override text when ``--force --reason`` overrides refusals, else ``""``.

    The same break glass as ``runbook start --break-glass``: when the config names operators, the
    operator proves who they are (``--as``) and needs the break-glass role; the override is a
    decision, an audit entry, a WARNING and a notice."""
    if not args.force:
        return ""
    from failover.runbook import operators, service, state

    actor = operators.identify(rt.config, args.as_, secret_file=args.secret_file)
    if actor.authenticated:
        operators.require_role(actor, rt.config.policy.break_glass_role, "override a refusal (--force)")
    reason = args.reason.strip()
    what = "; ".join(refused) if refused else "no refusal"
    store.append_decision(f"operator override by {actor.name} of a {kind} to {args.to} ({what}); reason: "
                          f"{reason}", {"override": f"{actor.name}: {reason}", "target": args.to, "refused": refused})
    glass = state.BreakGlass(rule=f"{kind}-refusal", reason=reason, by=actor.name,
                             at=datetime.now(UTC).isoformat(), sentence=what)
    await service.announce_break_glass(rt.config, store, glass, None)
    return f"{actor.name}: {reason}"


def _refused(refused: list[str], args: argparse.Namespace, *, overridable: bool = True) -> int:
    if args.json:
        output.emit_json({"refused": True, "would_refuse": refused, "changes_made": False,
                          "overridable": overridable})
    else:
        for reason in refused:
            output.err_console.print(f"refused: {reason}")
        output.err_console.print("nothing was changed; if you must, override with --force --reason TEXT" if overridable
                                 else "nothing was changed; no override lifts this refusal")
    return 1


def _run_store(args: argparse.Namespace, rt: runtime.Runtime) -> Any:
    """The store a manual run journals to: the configured one, or — when etcd has no quorum and the
    operator says why — this host's local journal, with the override recorded in it."""
    from failover import daemon as daemon_mod
    from failover.ha import backend
    from failover.store import sqlite

    if not backend.uses_etcd(rt):
        return daemon_mod.open_store(rt)
    store = daemon_mod.open_store(rt)
    try:
        store.lease_holder()
        store.current_epoch()
        return store
    except errors.TemporaryError as exc:
        reason = (args.without_coordination or "").strip()
        if not reason:
            raise errors.InputError(f"the coordination backend is unavailable ({exc}); no automatic failover "
                                    "happens. To run anyway from this host, add --without-coordination "
                                    "\"REASON\" (recorded)") from exc
    rt.state_dir.mkdir(parents=True, exist_ok=True)
    local = sqlite.SqliteStore(rt.state_dir / "failover.db")
    local.append_decision(f"manual run without coordination by {getpass.getuser()}: {reason}",
                          {"override": "without-coordination", "by": getpass.getuser(), "reason": reason})
    logger.warning("running without coordination (etcd unavailable): %s", reason)
    return local


def approve(args: argparse.Namespace) -> int:
    from failover import daemon as daemon_mod

    if args.server:
        return _remote(args, "approve")
    rt = _runtime(args)
    store = daemon_mod.open_store(rt)
    run_record = store.get_run(args.run_id)
    if run_record is None:
        raise errors.InputError(f"no run {args.run_id!r}; `failover history` lists runs")
    if str(run_record.phase) != "waiting_approval":
        raise errors.InputError(f"run {args.run_id} is {run_record.phase}, not waiting for approval")
    if args.as_ or rt.config.policy.approvers > 1:  # four eyes: operators proven by their secrets
        from failover.runbook import operators, service

        actor = operators.identify(rt.config, args.as_, secret_file=args.secret_file)
        names, done = service.approve(cfg=rt.config, store=store, actor=actor, run_id=args.run_id)
        output.console.print(f"run {args.run_id} approved by {', '.join(names)}; the daemon proceeds on its next "
                             "cycle" if done else f"run {args.run_id}: approval {len(names)} of "
                             f"{rt.config.policy.approvers} ({', '.join(names)}); another operator must approve")
        return 0
    store.approve_run(args.run_id, args.by or getpass.getuser())
    output.console.print(f"run {args.run_id} approved; the daemon proceeds on its next cycle")
    return 0


def history(args: argparse.Namespace) -> int:
    from failover.cli import reads

    if args.server:
        return _remote(args, "history")
    return reads.history(args)


async def daemon(args: argparse.Namespace) -> int:
    import asyncio

    from failover import daemon as daemon_mod
    from failover.config import loader, runtime

    rt = runtime.resolve(loader.load(args.config), observer=args.name)
    crash = daemon_mod.CrashAfterSteps.from_env()
    d = daemon_mod.Daemon(rt, observers=[crash] if crash else None, holder=args.name)
    if args.once:
        sentence = await d.run(once=True)
        output.console.print(sentence)
        return 0
    try:
        await d.run()
    except asyncio.CancelledError:
        pass
    return 0


def _pause(args: argparse.Namespace) -> int:
    from failover import daemon as daemon_mod

    if args.server:
        return _remote(args, "set_paused")
    rt = _runtime(args)
    store = daemon_mod.open_store(rt)
    store.set_state("paused", bool(args.paused))
    if not args.paused:  # a human looked: failed runs before now no longer count toward the limit
        store.set_state("resumed_at", datetime.now(UTC).isoformat())
    output.console.print("automation paused" if args.paused else "automation resumed")
    return 0


def unfence(args: argparse.Namespace) -> int:
    """Fenced → standby. Deliberate: a fenced site may hold stale data; it becomes a target again
    only after replication has refreshed its bucket and it is ready."""
    from failover import daemon as daemon_mod

    rt = _runtime(args)
    store = daemon_mod.open_store(rt)
    raw = store.get_state("roles")
    roles = daemon_mod.roles_of(store, rt.config)
    if args.site not in roles:
        raise errors.InputError(f"unknown site {args.site!r} (sites: {', '.join(roles)})")
    if roles[args.site] != "fenced":
        raise errors.InputError(f"{args.site} is {roles[args.site]}, not fenced")
    if not args.yes:
        raise errors.InputError(f"unfencing {args.site} makes it a failover target again; confirm with --yes")
    if not store.cas_state("roles", raw, {**roles, args.site: "standby"}):  # roles are compare-and-set
        raise errors.TemporaryError("the roles changed while unfencing (a failover?); check `failover status` "
                                    "and try again")
    output.console.print(f"{args.site} is a standby again (epoch {store.current_epoch()})")
    return 0
