"""Where a run is, what comes next and who must act — as a document (``--json``) and for people."""

from __future__ import annotations

import re
from dataclasses import asdict
from typing import Any

from rich.markup import escape

from failover.config import models
from failover.playbook.model import Playbook, Step
from failover.runbook import state
from failover.store import JSON, RunRecord, StepRecord, Store

_ICONS = {"succeeded": "[green]✓[/green]", "failed": "[red]✗[/red]", "skipped": "[dim]–[/dim]",
          "running": "[cyan]▶[/cyan]", "waiting": "[yellow]⏸[/yellow]", "pending": "[dim]·[/dim]",
          "retrying": "[yellow]↻[/yellow]", "interrupted": "[yellow]![/yellow]"}


def _step_status(step: Step, latest: dict[str, StepRecord], waiting: set[str]) -> tuple[str, list[str]]:
    keys = [k for k in latest if k == step.id or k.startswith(f"{step.id}[")]
    if any(k == step.id or k.startswith(f"{step.id}[") for k in waiting):
        return "waiting", keys
    if not keys:
        return "pending", keys
    statuses = [latest[k].status.value for k in keys]
    for status in ("running", "retrying", "failed", "interrupted"):
        if status in statuses:
            return status, keys
    return ("skipped" if all(s == "skipped" for s in statuses) else "succeeded"), keys


_PARAM = re.compile(r"\{\{\s*params\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def _with_params(text: object, params: dict[str, JSON]) -> str:
    """A step's title with the run's parameters filled in (other templates stay as written)."""
    return _PARAM.sub(lambda m: str(params.get(m.group(1), m.group(0))), str(text))


def _who(cfg: models.Config, role: str, *, exclude: set[str]) -> list[str]:
    if not cfg.operators:
        return ["any operator"]
    return [o.name for o in cfg.operators if role in o.roles and o.name not in exclude]


def run_view(cfg: models.Config, store: Store, run: RunRecord) -> dict[str, Any]:
    """The live view's document: steps with status, what waits for whom, what comes next."""
    playbook = Playbook.from_json(run.definition) if isinstance(run.definition, dict) else None
    latest: dict[str, StepRecord] = {}
    for rec in store.step_records(run.id):
        latest[rec.key] = rec
    waits = store.waits(run.id) if not run.phase.terminal else []
    meta = state.meta(store, run.id)
    steps: list[dict[str, JSON]] = []
    for stage in playbook.stages if playbook else ():
        for step in stage.steps:
            status, keys = _step_status(step, latest, {w.key for w in waits})
            entry: dict[str, JSON] = {"stage": stage.name, "id": step.id, "uses": step.uses, "status": status,
                                      "keys": {k: latest[k].status.value for k in keys}}
            if step.uses == "manual":
                entry["title"] = _with_params(step.with_.get("title", ""), run.params)
                entry["role"] = str(step.with_.get("role", ""))
            steps.append(entry)
    waiting: list[dict[str, JSON]] = []
    for w in waits:
        detail = w.detail if isinstance(w.detail, dict) else {}
        if w.kind == "next":
            waiting.append({"key": w.key, "kind": "next", "since": w.since.isoformat(), "role": None,
                            "who": ["any operator"], "signed": [],
                            "command": "failover runbook next --as NAME"})
            continue
        role = str(detail.get("role", ""))
        signed = [s.operator for s in state.signed(store, run.id, w.key, "confirm")]
        fields = detail.get("evidence")
        evidence = [str(f) for f in fields] if isinstance(fields, list) else []
        exclude = set(signed) | ({meta.requester} if not detail.get("requester_may_confirm", True) else set())
        waiting.append({"key": w.key, "kind": "confirm", "since": w.since.isoformat(), "role": role,
                        "title": detail.get("title"), "approvers": detail.get("approvers", 1),
                        "evidence": list[JSON](evidence), "signed": list[JSON](signed),
                        "who": list[JSON](_who(cfg, role, exclude=exclude)),
                        "command": f"failover runbook confirm {w.key} --as NAME"
                                   + "".join(f" --evidence {f}=…" for f in evidence)})
    upcoming = [s["id"] for s in steps if s["status"] == "pending"]
    return {"id": run.id, "playbook": run.playbook, "phase": run.phase.value, "params": run.params,
            "requester": meta.requester, "step_mode": meta.step_mode,
            "break_glass": [asdict(g) for g in meta.break_glass], "error": run.error,
            "current": [s["id"] for s in steps if s["status"] in ("running", "waiting", "retrying")],
            "next": upcoming[:3], "waiting": waiting, "steps": steps}


def print_view(doc: dict[str, Any], console: Any) -> None:
    mode = ", step mode" if doc["step_mode"] else ""
    console.print(f"[bold]run {doc['id']}[/bold] ({doc['playbook']}): [bold]{doc['phase']}[/bold] — "
                  f"requested by {escape(str(doc['requester']))}{mode}")
    for g in doc["break_glass"]:
        console.print(f"[red bold]BREAK GLASS[/red bold]: {g['rule']} overridden by {escape(g['by'])} — "
                      f"{escape(g['reason'])} (rule said: {escape(g['sentence'])})")
    if doc.get("error"):
        console.print(f"[red]{escape(str(doc['error']))}[/red]")
    stage = None
    for s in doc["steps"]:
        if s["stage"] != stage:
            stage = s["stage"]
            console.print(f"  [dim]{escape(str(stage))}[/dim]")
        title = f" — {escape(str(s['title']))} (role {escape(str(s['role']))})" if s.get("title") else ""
        console.print(f"    {_ICONS.get(str(s['status']), s['status'])} {escape(str(s['id']))}{title}")
    for w in doc["waiting"]:
        if w["kind"] == "next":
            console.print(f"[yellow]waiting[/yellow]: {escape(w['key'])} runs after `failover runbook next`")
        else:
            console.print(f"[yellow]waiting[/yellow]: {escape(w['key'])} — {escape(str(w['title']))}: "
                          f"{w['approvers']} × role {escape(w['role'])} (signed: {', '.join(w['signed']) or 'nobody'};"
                          f" may sign: {', '.join(w['who']) or 'nobody'})")
            console.print(f"         {escape(w['command'])}")
    if doc["next"] and not doc["waiting"]:
        console.print(f"next: {', '.join(doc['next'])}")
