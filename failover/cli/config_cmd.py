"""``failover config validate|schema``."""

from __future__ import annotations

import argparse
import json
from typing import Any

from failover.cli import output
from failover.config import loader


def register(sub: Any) -> None:
    p = sub.add_parser("config", help="validate the configuration or print its JSON Schema")
    csub = p.add_subparsers(dest="config_command", metavar="ACTION")
    csub.required = True
    v = csub.add_parser("validate", help="check the config and its workplace profile; exit 2 on problems")
    v.add_argument("--json", action="store_true")
    v.add_argument("--online", action="store_true",
                   help="also run the preflight against every provider and site (read-only; exit 1 on a failure)")
    v.set_defaults(func=validate)
    s = csub.add_parser("schema", help="print the JSON Schema of the config file")
    s.set_defaults(func=schema)


def validate(args: argparse.Namespace) -> int:
    loaded = loader.load(args.config)
    if getattr(args, "online", False):
        from failover.cli import preflight_cmd  # the preflight needs the product's clients

        return preflight_cmd.online(args, loaded)
    cfg = loaded.config
    summary = {
        "valid": True,
        "file": str(loaded.path),
        "sites": {s.name: {"provider": s.provider, "region": s.region, "role": s.role.value}
                  for s in cfg.sites},
        "components": len(loaded.profile.components),
        "restore_groups": loaded.profile.groups(),
        "warnings": list(loaded.warnings),
    }
    if args.json:
        output.emit_json(summary)
        return 0
    output.console.print(f"[green]ok[/green] {loaded.path}: {len(cfg.sites)} sites, "
                         f"{len(loaded.profile.components)} components, "
                         f"restore groups {loaded.profile.groups()}")
    for w in loaded.warnings:
        output.console.print(f"[yellow]warning:[/yellow] {w}")
    return 0


def schema(args: argparse.Namespace) -> int:
    print(json.dumps(loader.json_schema(), indent=2))
    return 0
