"""The implementation of ``failover drill`` (see :mod:`failover.cli.drill_cmd` for the commands)."""

from __future__ import annotations

import argparse
import importlib
from typing import Any

from failover.cli import output
from failover.config import loader, runtime
from failover.core import errors
from failover.drill import journal as journal_mod
from failover.drill import report as report_mod
from failover.drill import runner, scenario, testfailover
from failover.drill.model import DrillResult, Outcome


def _say(args: argparse.Namespace) -> runner.Say:
    if getattr(args, "json", False):
        return lambda text: None
    return lambda text: output.console.print(f"[dim]drill[/dim] {output_escape(text)}")


def output_escape(text: str) -> str:
    return text.replace("[", "\\[")


def _load(args: argparse.Namespace, name: str) -> tuple[loader.Loaded, scenario.Scenario]:
    loaded = loader.load(args.config)
    path = scenario.find(name, loaded.path)
    return loaded, scenario.load(path, loaded.config, loaded.profile)


def _lab_driver(rt: runtime.Runtime) -> runner.WorldDriver:
    """The lab's driver of injects, loaded by name: the product never imports the lab (it is the
    optional extra ``failover[lab]``), and only a ``type: lab`` drill needs it."""
    try:
        driver = importlib.import_module("failover.lab.drill_driver")
    except ModuleNotFoundError as exc:
        raise errors.InputError("a `type: lab` drill needs the lab: `pip install 'failover[lab]'`") from exc
    world: runner.WorldDriver = driver.LabDriver(rt, rate=driver.rate_from_env())
    return world


async def run(args: argparse.Namespace) -> int:
    loaded, sc = _load(args, args.scenario)
    if sc.type is scenario.DrillType.TABLETOP:  # nothing is reached: no endpoints to resolve
        rt = runtime.Runtime(loaded=loaded, sites={}, providers={}, resolver=None,
                             zone=loaded.config.workplace.zone, hostnames={})
    else:
        rt = runtime.resolve(loaded)
    world: runner.WorldDriver | None = None
    if sc.type is scenario.DrillType.LAB:
        if loaded.config.lab is None or rt.lab is None:
            raise errors.InputError(f"{args.scenario}: a `type: lab` drill needs a lab config and a running lab "
                                    "(`failover lab up`); for real clouds use `type: test-failover`")
        world = _lab_driver(rt)
    if sc.type is scenario.DrillType.TEST_FAILOVER:
        await _cleanup_leftovers(rt, _say(args))
    result = await runner.Drill(rt, sc, say=_say(args), world=world).run()
    if args.json:
        output.emit_json(result.model_dump(mode="json"))
    else:
        _print_result(result)
    return 0 if result.outcome is Outcome.PASSED else 1


async def _cleanup_leftovers(rt: runtime.Runtime, say: runner.Say) -> None:
    journal = journal_mod.DrillJournal.open(rt.state_dir)
    try:
        await testfailover.cleanup_open(rt, journal, say=say)
    finally:
        journal.close()


def _print_result(r: DrillResult) -> None:
    c = output.console
    colour = {"passed": "green", "failed": "red", "aborted": "red"}[r.outcome.value]
    c.print(f"\n[bold]drill {r.id} {r.scenario}: [{colour}]{r.outcome.value.upper()}[/{colour}][/bold]")
    m = r.measurements
    c.print(f"  RTO {_s(m.rto_s)} (from the first fault {_s(m.rto_from_inject_s)}, detection {_s(m.detection_s)}); "
            f"data-loss window {_s(m.data_loss_window_s)}; records lost "
            f"{'n/a' if m.records_lost is None else f'{m.records_lost} of {m.records_written}'}")
    for e in r.expectations:
        mark = "[green]ok[/green]" if e.passed else "[red]FAILED[/red]"
        c.print(f"  {mark} {e.name}: expected {output_escape(e.expected)}; got {output_escape(e.actual)}")
    for f in r.findings:
        c.print(f"  finding \\[{f.severity}] {output_escape(f.title)}: {output_escape(f.detail)}")
    c.print(f"  the Übungsbericht: `failover drill report {r.id} --format md|html|json`")


def _s(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}s"


def validate(args: argparse.Namespace) -> int:
    loaded = loader.load(args.config)
    issues: list[errors.Issue] = []
    ok: list[str] = []
    for name in args.scenarios:
        try:
            sc = scenario.load(scenario.find(name, loaded.path), loaded.config, loaded.profile)
            ok.append(sc.name)
        except errors.InputError as exc:
            issues.extend(exc.issues)
    if issues:
        raise scenario.ScenarioError(issues)
    if args.json:
        output.emit_json({"valid": ok})
    else:
        output.console.print(f"{len(ok)} scenario(s) valid: {', '.join(ok)}")
    return 0


def report(args: argparse.Namespace) -> int:
    loaded = loader.load(args.config)
    journal = journal_mod.DrillJournal.open(loaded.state_dir)
    try:
        row = journal.get(args.drill_id)
    finally:
        journal.close()
    rep = report_mod.build(row, policy_rto=loaded.config.policy.rto, policy_rpo=loaded.config.policy.rpo)
    if args.format == "md":
        text = report_mod.markdown(rep)
    elif args.format == "json":
        text = report_mod.json_document(rep)
    else:
        from failover.drill import html

        text = html.render(rep)
    if args.output is not None:
        args.output.write_text(text, encoding="utf-8")
        output.err_console.print(f"wrote {args.output}")
    else:
        print(text)
    return 0


def _trend(rows: list[journal_mod.DrillRow]) -> dict[str, list[dict[str, Any]]]:
    trend: dict[str, list[dict[str, Any]]] = {}
    for row in sorted(rows, key=lambda r: r.seq):
        m = (row.result or {}).get("measurements") or {}
        trend.setdefault(row.scenario, []).append({
            "drill": row.id, "at": row.started_at.isoformat(), "outcome": row.status,
            "rto_s": m.get("rto_s"), "data_loss_window_s": m.get("data_loss_window_s"),
            "records_lost": m.get("records_lost")})
    return trend


def list_drills(args: argparse.Namespace) -> int:
    loaded = loader.load(args.config)
    journal = journal_mod.DrillJournal.open(loaded.state_dir)
    try:
        rows = journal.rows(limit=args.limit)
    finally:
        journal.close()
    trend = _trend(rows)
    if args.json:
        output.emit_json({"drills": [{"id": r.id, "scenario": r.scenario, "type": r.type, "status": r.status,
                                      "started_at": r.started_at.isoformat(),
                                      "finished_at": r.finished_at.isoformat() if r.finished_at else None,
                                      "measurements": (r.result or {}).get("measurements")} for r in rows],
                          "trend": trend})
        return 0
    c = output.console
    c.print(f"{'id':>4}  {'scenario':<28} {'type':<14} {'outcome':<11} {'started (UTC)':<20} {'RTO':>8} "
            f"{'data loss':>9} {'lost':>5}")
    for r in rows:
        m = (r.result or {}).get("measurements") or {}
        c.print(f"{r.id:>4}  {r.scenario:<28} {r.type:<14} {r.status:<11} {r.started_at:%Y-%m-%d %H:%M:%S} "
                f"{_s(m.get('rto_s')):>8} {_s(m.get('data_loss_window_s')):>9} "
                f"{m.get('records_lost') if m.get('records_lost') is not None else '-':>5}")
    c.print("\n[bold]trend[/bold] (RTO / data-loss window per drill, oldest first)")
    for name, points in trend.items():
        series = ", ".join(f"#{p['drill']} {_s(p['rto_s'])}/{_s(p['data_loss_window_s'])}" for p in points)
        c.print(f"  {name}: {series}{_direction(points)}")
    return 0


def _direction(points: list[dict[str, Any]]) -> str:
    values = [p["rto_s"] for p in points if isinstance(p.get("rto_s"), (int, float))]
    if len(values) < 2:
        return ""
    return "  (RTO improving)" if values[-1] < values[0] else "  (RTO not improving)"


async def cleanup(args: argparse.Namespace) -> int:
    loaded = loader.load(args.config)
    rt = runtime.resolve(loaded)
    journal = journal_mod.DrillJournal.open(rt.state_dir)
    try:
        done = await testfailover.cleanup_open(rt, journal, say=_say(args), force=args.force)
    finally:
        journal.close()
    left = {drill: items for drill, items in done if items}
    if args.json:
        output.emit_json({"cleaned": [d for d, _ in done], "left": left})
    else:
        output.console.print(f"cleaned up {len(done)} drill(s)" + (f"; LEFT: {left}" if left else "; nothing left"))
    return 1 if left else 0
