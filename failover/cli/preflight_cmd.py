"""``failover config validate --online``: the offline validation, then the preflight
(:mod:`failover.preflight`), one line per check; exit 1 if any check failed."""

from __future__ import annotations

import argparse
import asyncio

from failover import preflight
from failover.cli import output
from failover.config import loader, runtime


def online(args: argparse.Namespace, loaded: loader.Loaded) -> int:
    rt = runtime.resolve(loaded)
    timeout = max(loaded.config.health.timeout, loaded.config.health.storage_timeout)
    checks = asyncio.run(preflight.run(rt, timeout=timeout))
    failed = [c for c in checks if not c.ok]
    if args.json:
        output.emit_json({"valid": True, "file": str(loaded.path), "online": not failed,
                          "warnings": list(loaded.warnings), "checks": [c.as_dict() for c in checks]})
    else:
        for warning in loaded.warnings:
            print(f"warning: {warning}")
        for check in checks:
            print(check.line())
        print(f"{len(checks) - len(failed)} of {len(checks)} checks passed" +
              (f"; {len(failed)} failed" if failed else ""))
    return 1 if failed else 0
