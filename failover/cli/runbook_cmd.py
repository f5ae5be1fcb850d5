"""``failover runbook``: drive a run by the book — list, show, start, status, next, confirm, skip,
abort, render — with operators proven by their secrets and every action in the audit log."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from failover.cli import lazy


def _identity(p: argparse.ArgumentParser) -> None:
    p.add_argument("--as", dest="as_", default=None, metavar="NAME", help="the operator acting (proved by "
                   "$FAILOVER_OPERATOR_SECRET, --secret-file or a prompt)")
    p.add_argument("--secret-file", type=Path, default=None, help="file holding the operator's secret")


def register(sub: Any) -> None:
    p = sub.add_parser("runbook", help="runs by the book: step by step, manual steps, four eyes, Notfallhandbuch")
    rsub = p.add_subparsers(dest="runbook_command", metavar="ACTION", parser_class=type(p))
    rsub.required = True

    def cmd(name: str, help_: str, func: str, *, identity: bool = False, run: bool = False,
            json_: bool = True) -> argparse.ArgumentParser:
        c: argparse.ArgumentParser = rsub.add_parser(name, help=help_)
        if identity:
            _identity(c)
        if run:
            c.add_argument("--run", default=None, help="run id (default: the run in progress)")
        if json_:
            c.add_argument("--json", action="store_true")
        c.set_defaults(func=lazy.command("failover.cli.runbook_impl", func))
        return c

    cmd("list", "the playbooks and their manual steps", "list_")
    c = cmd("show", "a playbook step by step", "show")
    c.add_argument("playbook")
    c = cmd("start", "start a playbook run (the daemon executes it, or this command if none runs)", "start",
            identity=True)
    c.add_argument("playbook")
    c.add_argument("--to", required=True, help="target site")
    c.add_argument("--from", dest="source", default=None, help="source site (default: the active site)")
    c.add_argument("--step", action="store_true", help="step mode: each automated step waits for `next`")
    c.add_argument("--detach", action="store_true", help="only create the run; the daemon executes it")
    c.add_argument("--break-glass", default=None, metavar="RULE",
                   help="override one blocking safety rule: cooldown, standby-not-ready, no-quorum, stale-backup")
    c.add_argument("--reason", default="", help="why (required with --break-glass)")
    c = cmd("status", "where the run is, what comes next, who must act", "status", run=True)
    c.add_argument("--watch", action="store_true", help="follow the run until it ends")
    cmd("next", "step mode: let the waiting step(s) run", "next_", identity=True, run=True)
    c = cmd("confirm", "confirm a manual step (its role; four eyes where it needs two)", "confirm",
            identity=True, run=True)
    c.add_argument("step")
    c.add_argument("--evidence", action="append", default=[], metavar="FIELD=TEXT", help="evidence (repeatable)")
    c = cmd("skip", "skip a step that has not run", "skip", identity=True, run=True)
    c.add_argument("step")
    c.add_argument("--reason", required=True)
    c = cmd("abort", "abort the run: nothing more starts", "abort", identity=True, run=True)
    c.add_argument("--reason", required=True)
    c = cmd("render", "the Notfallhandbuch (emergency manual) as Markdown, HTML or PDF", "render", json_=False)
    c.add_argument("--format", choices=["md", "html", "pdf"], default="md")
    c.add_argument("-o", "--output", type=Path, default=None, help="file (default: stdout; required for pdf)")
    cmd("hash-secret", "print a secret_hash for the config (reads the secret like --as does)", "hash_secret",
        json_=False)
