"""``failover drill run|report|list|cleanup|validate`` — crisis exercises with evidence (BSI 200-4).

``run`` exits 0 when every expectation was met, 1 when one was not (or the drill could not run to
its end), 2 for a bad scenario (every problem with file:line). A lab drill reaches the lab through
``failover.lab.drill_driver``, imported only here and only for ``type: lab``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from failover.cli import lazy


def register(sub: Any) -> None:
    p = sub.add_parser("drill", help="crisis exercises: run a scenario, the Übungsbericht, list, cleanup")
    dsub = p.add_subparsers(dest="drill_command", metavar="DRILL_COMMAND")
    dsub.required = True

    r = dsub.add_parser("run", help="run a scenario (name in drills/ or a path)")
    r.add_argument("scenario")
    r.add_argument("--json", action="store_true", help="print the drill's result document")
    r.set_defaults(func=lazy.command("failover.cli.drill_impl", "run"))

    v = dsub.add_parser("validate", help="check scenario files (every problem with file:line)")
    v.add_argument("scenarios", nargs="+")
    v.add_argument("--json", action="store_true")
    v.set_defaults(func=lazy.command("failover.cli.drill_impl", "validate"))

    rep = dsub.add_parser("report", help="the Übungsbericht of a drill")
    rep.add_argument("drill_id")
    rep.add_argument("--format", choices=["md", "html", "json"], default="md")
    rep.add_argument("--output", "-o", type=Path, default=None, help="write to this file instead of stdout")
    rep.set_defaults(func=lazy.command("failover.cli.drill_impl", "report"))

    ls = dsub.add_parser("list", help="past drills and the trend of RTO and data loss per scenario")
    ls.add_argument("--limit", type=int, default=50)
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=lazy.command("failover.cli.drill_impl", "list_drills"))

    c = dsub.add_parser("cleanup", help="remove what interrupted test failovers left on a standby")
    c.add_argument("--force", action="store_true", help="also drills whose process still seems to run")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=lazy.command("failover.cli.drill_impl", "cleanup"))

