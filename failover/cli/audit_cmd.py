"""``failover audit show|verify|export``: the hash-chained audit trail (see :mod:`failover.audit`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from failover.cli import lazy


def register(sub: Any) -> None:
    p = sub.add_parser("audit", help="the tamper-evident audit trail: show, verify, export")
    asub = p.add_subparsers(dest="audit_command", metavar="ACTION", parser_class=type(p))
    asub.required = True
    c = asub.add_parser("show", help="the entries, oldest first")
    c.add_argument("--run", default=None, help="only the entries of this run")
    c.add_argument("--limit", type=int, default=None, help="only the newest N entries")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=lazy.command("failover.cli.audit_impl", "show"))
    c = asub.add_parser("verify", help="check the hash chain; names each changed, deleted or reordered entry")
    c.add_argument("--file", type=Path, default=None, help="verify an exported file instead of the state")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=lazy.command("failover.cli.audit_impl", "verify"))
    c = asub.add_parser("export", help="the log as JSON Lines (verifiable offline with verify --file)")
    c.add_argument("-o", "--output", type=Path, default=None, help="file (default: stdout)")
    c.set_defaults(func=lazy.command("failover.cli.audit_impl", "export"))
