"""The implementation of the commands registered in :mod:`failover.cli.audit_cmd`."""

from __future__ import annotations

import argparse
import sys

from failover import audit
from failover.cli import output
from failover.config import loader
from failover.store import AuditRecord, sqlite


def _entries(args: argparse.Namespace) -> list[AuditRecord]:
    loaded = loader.load(args.config)
    if loaded.config.coordination.backend.value == "etcd":  # the log every instance appends to
        from failover.config import runtime
        from failover.ha import backend

        return backend.open_store(runtime.resolve(loaded)).audit_records()
    db = loaded.state_dir / "failover.db"
    if not db.exists():
        return []
    return sqlite.SqliteStore(db).audit_records()


def show(args: argparse.Namespace) -> int:
    entries = [e for e in _entries(args) if args.run is None or e.body.get("run") == args.run]
    if args.limit is not None:
        entries = entries[-args.limit:]
    if args.json:
        output.emit_json({"entries": [{"seq": e.seq, **e.body, "prev": e.prev, "hash": e.hash} for e in entries]})
        return 0
    for e in entries:
        output.console.print(audit.describe(e), markup=False)
    return 0


def verify(args: argparse.Namespace) -> int:
    entries = audit.read_export(args.file) if args.file else _entries(args)
    problems = audit.verify(entries)
    doc = {"entries": len(entries), "intact": not problems, "head": entries[-1].hash if entries else None,
           "problems": [p.__dict__ for p in problems]}
    if args.json:
        output.emit_json(doc)
    elif problems:
        for p in problems:
            output.console.print(f"TAMPERED: {p.message}", markup=False)
        output.console.print(f"{len(problems)} problem(s) in {len(entries)} entries")
    else:
        output.console.print(f"intact: {len(entries)} entries, head {doc['head']}")
    return 1 if problems else 0


def export(args: argparse.Namespace) -> int:
    lines = list(audit.export_lines(_entries(args)))
    text = "".join(f"{line}\n" for line in lines)
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text, encoding="utf-8")
        output.console.print(f"wrote {len(lines)} entries to {args.output}")
    return 0
