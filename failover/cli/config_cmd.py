"""``failover config validate|schema``."""

from __future__ import annotations

import argparse
import json
from typing import Any

from failover.cli import output


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
    if getattr(args, "online", False):
        from failover.cli import preflight_cmd  # the preflight needs the product's clients
        from failover.config import loader

        return preflight_cmd.online(args, loader.load(args.config))
    from failover.cli import configcache  # validates, or knows the unchanged files are valid

    summary = configcache.facts(args.config).summary
    if args.json:
        output.emit_json(summary)
        return 0
    color = output.color_enabled()
    print(f"{output.paint('ok', 'green', color=color)} {summary['file']}: {len(summary['sites'])} sites, "
          f"{summary['components']} components, restore groups {summary['restore_groups']}")
    for w in summary["warnings"]:
        print(f"{output.paint('warning:', 'yellow', color=color)} {w}")
    return 0


def schema(args: argparse.Namespace) -> int:
    from failover.config import loader

    print(json.dumps(loader.json_schema(), indent=2))
    return 0
