"""``--server URL``: ``status``, ``history``, ``approve``, ``pause``, ``resume`` against a remote
daemon's API (:mod:`failover.api.client`) instead of the local state directory."""

from __future__ import annotations

import argparse

from failover.api.client import ApiClient
from failover.cli import output


def _client(args: argparse.Namespace) -> ApiClient:
    return ApiClient(args.server, args.token)


async def status(args: argparse.Namespace) -> int:
    from failover.cli import reads

    doc = await _client(args).status()
    if args.json:
        output.emit_json(doc)
    else:
        reads.print_status(doc, wide=bool(getattr(args, "wide", False)))
    return 0


async def history(args: argparse.Namespace) -> int:
    doc = await _client(args).history(args.limit)
    if args.json:
        output.emit_json(doc)
        return 0
    for r in doc["runs"]:
        output.console.print(f"run {r['id']} {r['playbook']} {r['phase']}: {r.get('from')} -> {r.get('to')} "
                             f"rto={r.get('rto_s')}s data_loss_window={r.get('data_loss_window_s')}s")
    for d in doc["decisions"]:
        output.console.print(f"{d['at']}  {d['sentence']}")
    return 0


async def approve(args: argparse.Namespace) -> int:
    doc = await _client(args).approve(args.run_id)
    output.console.print(f"run {doc['run']} approved by {doc['approved_by']}; the daemon proceeds on its next cycle")
    return 0


async def set_paused(args: argparse.Namespace) -> int:
    await _client(args).set_paused(bool(args.paused))
    output.console.print("automation paused" if args.paused else "automation resumed")
    return 0
