"""``failover lab up|status|break|heal|down|demo``: run the simulated world in the background.

``lab up`` spawns the supervisor (:mod:`failover.lab.supervisor`) in its own session and returns
once it wrote ``runtime.json`` (the world is ready), or fails with the log tail. ``lab down``
stops it by PID, and every recorded child too, even after a supervisor crash. ``status``,
``break`` and ``heal`` go through the supervisor's control API.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from failover.cli import output
from failover.core import errors
from failover.lab import extra
from failover.lab import runtime as lab_runtime

if TYPE_CHECKING:
    from failover.config import loader
    from failover.lab import control

UP_TIMEOUT = 120.0  # a loaded 2-core machine (and a lab with databases) can need more than a minute
SUPERVISOR = "failover.lab.supervisor"


def register(sub: Any) -> None:
    lab = sub.add_parser("lab", help="the simulated four-provider world on loopback")
    lab_sub = lab.add_subparsers(dest="lab_command", metavar="ACTION", parser_class=type(lab))
    lab_sub.required = True
    up = lab_sub.add_parser("up", help="start the lab in the background (idempotent)")
    up.add_argument("--json", action="store_true")
    up.set_defaults(func=cmd_up)
    status = lab_sub.add_parser("status", help="endpoints, credentials (lab-only) and faults")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_status)
    brk = lab_sub.add_parser("break", help="inject a fault into a site")
    brk.add_argument("site")
    brk.add_argument("--mode", default="down",
                     help="down|blackhole|slow|api-only|storage|provider-api|component=NAME (default: down)")
    brk.add_argument("--json", action="store_true")
    brk.set_defaults(func=cmd_break)
    heal = lab_sub.add_parser("heal", help="remove every fault of a site")
    heal.add_argument("site")
    heal.add_argument("--json", action="store_true")
    heal.set_defaults(func=cmd_heal)
    down = lab_sub.add_parser("down", help="stop the lab and every process it started")
    down.set_defaults(func=cmd_down)
    demo = lab_sub.add_parser("demo", help="the whole story: outage, automatic failover, data-loss count")
    demo.add_argument("--json", action="store_true")
    output.add_verbose_flag(demo)
    demo.set_defaults(func=cmd_demo)


def _paths(args: argparse.Namespace) -> tuple[loader.Loaded, lab_runtime.LabPaths]:
    from failover.config import loader  # pydantic: not at start-up

    loaded = loader.load(args.config)
    return loaded, lab_runtime.LabPaths(loaded.state_dir)


def _supervisor_alive(paths: lab_runtime.LabPaths) -> lab_runtime.PidRecord | None:
    for record in lab_runtime.read_pids(paths):
        if record.name == "supervisor" and lab_runtime.is_alive(record):
            return record
    return None


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def cmd_up(args: argparse.Namespace) -> int:
    loaded, paths = _paths(args)
    if loaded.config.lab is None:
        raise errors.InputError(f"{loaded.path}: not a lab config (it has no `lab:` section)")
    extra.require()
    running = _supervisor_alive(paths)
    if running is not None and lab_runtime.read_runtime(paths) is not None:
        print(f"the lab is already running (supervisor pid {running.pid}); `failover lab down` stops it",
              file=sys.stderr)
        return _print_status(lab_runtime.read_runtime(paths) or {}, as_json=args.json)
    if running is not None or lab_runtime.read_pids(paths):
        lab_runtime.stop_all(paths)  # leftovers of a lab that never became ready or crashed
    paths.ensure()
    started = time.monotonic()
    process = _spawn(loaded, paths)
    doc = _wait_ready(paths, process)
    elapsed = time.monotonic() - started
    if not args.json:
        print(f"lab up in {elapsed:.1f}s (state: {paths.root})")
    return _print_status(doc, as_json=args.json)


def _spawn(loaded: loader.Loaded, paths: lab_runtime.LabPaths) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", SUPERVISOR, "--config", str(loaded.path), "--state-dir", str(paths.state_dir)]
    with open(paths.supervisor_log, "ab") as log:
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                   start_new_session=True, cwd=os.getcwd())
    lab_runtime.record_pid(paths, name="supervisor", pid=process.pid, command=SUPERVISOR)
    return process


def _wait_ready(paths: lab_runtime.LabPaths, process: subprocess.Popen[bytes]) -> dict[str, Any]:
    deadline = time.monotonic() + UP_TIMEOUT
    while time.monotonic() < deadline:
        doc = lab_runtime.read_runtime(paths)
        if doc is not None and doc.get("pids", {}).get("supervisor") == process.pid:
            return doc
        if process.poll() is not None:
            lab_runtime.stop_all(paths)
            raise errors.PermanentError(
                f"the lab supervisor exited with {process.returncode} before it was ready; "
                f"{paths.supervisor_log} ends with:\n{_tail(paths.supervisor_log)}")
        time.sleep(0.05)
    lab_runtime.stop_all(paths)
    raise errors.PermanentError(
        f"the lab was not ready within {UP_TIMEOUT:.0f}s; {paths.supervisor_log} ends with:\n"
        f"{_tail(paths.supervisor_log)}")


def _control(paths: lab_runtime.LabPaths) -> control.ControlClient:
    from failover.lab import control  # aiohttp and httpx: only for the commands that talk to the lab

    doc = lab_runtime.read_runtime(paths)
    if doc is None or not doc.get("control") or _supervisor_alive(paths) is None:
        raise errors.PermanentError("the lab is not running; start it with `failover lab up`")
    return control.ControlClient(str(doc["control"]))


def _print_status(doc: dict[str, Any], *, as_json: bool) -> int:
    if as_json:
        output.emit_json(doc)
        return 0
    row = "{:<16} {:<8} {:<16} {:<24} {:<18} {:<24} {}"
    print(row.format("SITE", "ROLE", "PROVIDER", "KUBE API", "INGRESS", "S3", "FAULTS"))
    for name, site in doc.get("sites", {}).items():
        print(row.format(name, site["role"], f"{site['provider']} {site['region']}", site["kube_api"],
                         f"{site['ingress']}:{site['ingress_port']}", site["s3"]["endpoint"],
                         ", ".join(site.get("faults", [])) or "-"))
    dns = doc.get("dns", {})
    print(f"DNS: zone {dns.get('zone')} on {dns.get('server')}:{dns.get('port')} (API {dns.get('api')})")
    for kind, api in (doc.get("providers") or {}).items():
        print(f"provider API {kind}: {', '.join(f'{k}={v}' for k, v in api.get('api', {}).items())}")
    print("credentials (lab-only): `failover lab status --json`")
    return 0


async def cmd_status(args: argparse.Namespace) -> int:
    _, paths = _paths(args)
    doc = await _control(paths).status()
    return _print_status(doc, as_json=args.json)


async def cmd_break(args: argparse.Namespace) -> int:
    _, paths = _paths(args)
    faults = await _control(paths).break_site(args.site, args.mode)
    return _print_faults(args, faults)


async def cmd_heal(args: argparse.Namespace) -> int:
    _, paths = _paths(args)
    faults = await _control(paths).heal(args.site)
    return _print_faults(args, faults)


def _print_faults(args: argparse.Namespace, faults: list[str]) -> int:
    if args.json:
        output.emit_json({"site": args.site, "faults": faults})
    else:
        print(f"{args.site}: faults {', '.join(faults) if faults else 'none'}")
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    _, paths = _paths(args)
    stopped = lab_runtime.stop_all(paths)
    print("lab stopped" if stopped else "the lab was not running")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    extra.require()
    try:
        from failover.lab import demo
    except ModuleNotFoundError as exc:
        if exc.name != "failover.lab.demo":
            raise
        print("lab demo: not yet available", file=sys.stderr)
        return 1
    result: int = demo.main(args)
    return result
