"""``status`` and ``history`` for an operator at 3 a.m.: an answer in a blink.

``status`` reads the snapshot the daemon writes into the store every controller cycle (key
``status``); while it is fresh (younger than three health intervals, at least 10 s) nothing is
probed and nothing heavy is imported: the config, the SQLite store and plain-text tables. A probe
round of its own runs only with ``--live`` (all sites concurrently, progress on stderr), because a
probe round takes seconds when a site is down, exactly when someone is waiting for the answer. A
stale snapshot is still shown, marked as stale, with the hint to probe.

``status --watch`` redraws whenever what an operator acts on changes (health, readiness, reasons,
roles, the run and its step), not on every replication-lag tick, until Ctrl-C (exit 0).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from failover.cli import configcache, output, tables
from failover.core import errors
from failover.store import queries

if TYPE_CHECKING:
    from failover.config import loader

CLEAR = "\x1b[H\x1b[2J"


def _load(args: argparse.Namespace) -> loader.Loaded:
    from failover.config import loader

    return loader.load(args.config)


def max_age(facts: configcache.Facts) -> float:
    """How old the daemon's snapshot may be and still count as the current state."""
    return max(10.0, facts.interval * 3)


def _age(stamp: Any) -> float:
    try:
        when = datetime.fromisoformat(str(stamp))
    except ValueError:
        return float("inf")
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return (datetime.now(UTC) - when).total_seconds()


def snapshot_document(store: Any, *, fresh_for: float) -> dict[str, Any] | None:
    """The daemon's last status snapshot with ``age_s``/``stale``, or None if it never wrote one."""
    stored = store.get_state("status")
    if not isinstance(stored, dict):
        return None
    doc: dict[str, Any] = dict(stored)
    age = _age(doc.get("updated_at"))
    doc["age_s"] = round(age, 1) if age != float("inf") else None
    doc["stale"] = age > fresh_for
    if doc["stale"]:
        doc["source"] = (f"the daemon's last snapshot is {_ago(age)} old (stale: is the daemon running?); "
                         "`failover status --live` probes the sites now")
    return doc


def _ago(seconds: float) -> str:
    if seconds == float("inf"):
        return "of unknown age"
    if seconds < 120:
        return f"{seconds:.0f}s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def _with_run(doc: dict[str, Any], store: Any) -> dict[str, Any]:
    run = queries.current_run(store)
    step = (doc.get("run") or {}).get("step") if isinstance(doc.get("run"), dict) else None
    doc["run"] = None if run is None else {"id": str(run.id), "playbook": run.playbook, "phase": str(run.phase),
                                           "step": step}
    doc["paused"] = bool(store.get_state("paused"))
    from failover.runbook import state as runbook_state  # break glass is shown loudly while its run lives

    doc["break_glass"] = runbook_state.break_glass_of(store, None if run is None else str(run.id))
    return doc


async def probe_document(loaded: loader.Loaded, store: Any, *,
                         progress: Callable[[str], None]) -> dict[str, Any]:
    """One probe round of every site, concurrently (``--live``); the heavy imports live here."""
    import asyncio

    from failover import daemon as daemon_mod
    from failover.config import runtime

    rt = runtime.resolve(loaded)
    d = daemon_mod.Daemon(rt, store=store, holder="status-probe")
    names = list(d.watcher.sites)
    done: list[str] = []
    progress(f"probing {len(names)} sites…")

    async def one(name: str) -> None:
        await d.watcher.round(name)
        done.append(name)
        progress(f"probed {len(done)}/{len(names)} sites ({', '.join(done)})")

    try:
        await asyncio.gather(*(one(name) for name in names))
        if d.wal.enabled:  # the databases' archived WAL on each standby
            await d.wal.read_once(d.roles())
        doc = daemon_mod.status_document(rt, d.snapshot(), store)
        d.wal.annotate(doc)
    finally:
        await d.replicator.aclose()
        await d.services.aclose()
    doc["source"] = "one probe round by this command (--live)"
    doc["age_s"], doc["stale"] = 0.0, False
    return doc


def _live(loaded: loader.Loaded, store: Any, *, json_mode: bool) -> dict[str, Any]:
    """A probe round with its progress on stderr: a spinner on a terminal, else one line."""
    import asyncio

    if sys.stderr.isatty():
        with output.err_console.status("probing the sites…") as spinner:
            return asyncio.run(probe_document(loaded, store, progress=spinner.update))
    if not json_mode:
        print("probing the sites (--live)…", file=sys.stderr)
    return asyncio.run(probe_document(loaded, store, progress=lambda _: None))


def read_status(args: argparse.Namespace, facts: configcache.Facts, store: Any) -> dict[str, Any]:
    if args.live:
        doc = _live(_load(args), store, json_mode=bool(args.json))
    else:
        found = snapshot_document(store, fresh_for=max_age(facts))
        if found is None:
            raise errors.PermanentError(
                f"no daemon has written a status into {facts.state_dir} yet: start `failover daemon`, "
                "or probe the sites now with `failover status --live`")
        doc = found
    sites = doc.get("sites") or {}
    order = [n for n in facts.sites if n in sites] + [n for n in sites if n not in facts.sites]
    doc["sites"] = {name: sites[name] for name in order}  # the config's order, not the store's
    return _with_run(doc, store)


def open_store(args: argparse.Namespace, facts: configcache.Facts) -> Any:
    """SQLite in the state directory at once; the etcd store (coordination) through the daemon's way."""
    if facts.backend == "local":
        return queries.open_store(facts.state_dir)
    from failover import daemon as daemon_mod
    from failover.config import runtime

    return daemon_mod.open_store(runtime.resolve(_load(args)))


def status(args: argparse.Namespace) -> int:
    facts = configcache.facts(args.config)
    store = open_store(args, facts)
    if args.watch:
        return watch(args, facts, store)
    try:
        doc = read_status(args, facts, store)
    except errors.TemporaryError as exc:  # etcd cannot answer: what one probe round from here sees
        import asyncio

        from failover.cli import ops_cmd
        from failover.config import runtime

        return asyncio.run(ops_cmd._status_without_coordination(args, runtime.resolve(_load(args)), exc))
    if args.json:
        output.emit_json(doc)
        return 0
    print_status(doc, wide=args.wide)
    for g in doc.get("break_glass") or []:
        output.console.print(f"[red bold]BREAK GLASS[/red bold]: {g['rule']} overridden by {g['by']}: {g['reason']}",
                             markup=True)
    return 0


def print_status(doc: dict[str, Any], *, wide: bool = False) -> None:
    print_lines(tables.status_lines(doc, width=output.terminal_width(), wide=wide, color=output.color_enabled()))


def print_lines(lines: list[str]) -> None:
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()


def change_key(doc: dict[str, Any]) -> tuple[Any, ...]:
    """What a redraw is for: roles, health, readiness, reasons, the run and its step (not lag)."""
    sites = tuple((name, s.get("role"), s.get("health"), s.get("ready"), tuple(s.get("reasons") or ()),
                   tuple(s.get("ready_reasons") or ())) for name, s in (doc.get("sites") or {}).items())
    run = doc.get("run") or {}
    return (doc.get("active"), doc.get("paused"), doc.get("stale"), sites,
            run.get("id"), run.get("phase"), run.get("step"))


def watch(args: argparse.Namespace, facts: configcache.Facts, store: Any) -> int:
    """Redraw on change until Ctrl-C (exit 0); ``--json`` prints one document per change."""
    interval = max(0.5, min(5.0, facts.interval))
    last: tuple[Any, ...] | None = None
    try:
        while True:
            try:
                doc = read_status(args, facts, store)
            except errors.PermanentError as exc:  # no snapshot yet: say so and keep watching
                doc = {"active": None, "sites": {}, "run": None, "source": str(exc), "stale": True}
            key = change_key(doc)
            if key != last:
                last = key
                _draw(args, doc, interval)
            time.sleep(interval)
    except KeyboardInterrupt:
        if not args.json:
            print()
        return 0


def _draw(args: argparse.Namespace, doc: dict[str, Any], interval: float) -> None:
    if args.json:
        sys.stdout.write(output.dumps(doc).replace("\n", "") + "\n")  # one line per change (JSON Lines)
        sys.stdout.flush()
        return
    color = output.color_enabled()
    lines = tables.status_lines(doc, width=output.terminal_width(), wide=args.wide, color=color)
    stamp = datetime.now().strftime("%H:%M:%S")
    footer = output.paint(f"changed at {stamp}; checking every {interval:g}s; Ctrl-C quits", "dim", color=color)
    sys.stdout.write((CLEAR if sys.stdout.isatty() else "\n") + "\n".join([*lines, "", footer]) + "\n")
    sys.stdout.flush()


def history(args: argparse.Namespace) -> int:
    store = open_store(args, configcache.facts(args.config))
    runs = [queries.run_document(store, r.id) for r in store.list_runs(limit=args.limit)]
    decisions = [{"at": str(d.ts), "sentence": d.sentence} for d in store.decisions(limit=args.limit)]
    doc = {"runs": runs, "decisions": decisions}
    if args.json:
        output.emit_json(doc)
        return 0
    print_lines(tables.history_lines(doc, width=output.terminal_width(), wide=args.wide,
                                     color=output.color_enabled()))
    return 0
