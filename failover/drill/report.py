"""The Übungsbericht (BSI 200-4 exercise report) of one drill: Markdown, HTML or JSON.

Structure after the BSI course and the BBK LÜKEX evaluation reports: exercise type and scope,
goals, scenario, participants, the timeline (injects, detection, decisions, every step,
verification), the Soll-Ist-Abgleich of WAZ/RTO and RPO/data loss, the expectations, findings,
measures with owner and due date, and the sign-off. All three formats render one
:class:`Report`; the JSON *is* that document, so other tools read what the Krisenstab reads.
Every text passes :func:`secrets.redact` on its way out.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict

from failover.core import errors, secrets
from failover.drill import journal as journal_mod
from failover.drill.model import DrillResult, Outcome
from failover.drill.scenario import DrillType, Scenario


class SollIst(BaseModel):
    model_config = ConfigDict(extra="forbid")
    metric: str
    soll: str
    ist: str
    met: bool | None


class TimelineEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    t_s: float
    ts: datetime
    kind: str  #: inject | health | decision | step | verification | detection | note
    text: str


class Report(BaseModel):
    model_config = ConfigDict(extra="forbid")
    drill: DrillResult
    scenario: Scenario
    exercise_type: str
    soll_ist: list[SollIst]
    timeline: list[TimelineEntry]


def _s(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f} s"


def build(row: journal_mod.DrillRow, *, policy_rto: float, policy_rpo: float) -> Report:
    if row.result is None:
        raise errors.InputError(
            f"drill {row.id} has no result (status {row.status}); it was interrupted — "
            "`failover drill cleanup` removes what it left")
    r = DrillResult.model_validate(row.result)
    sc = Scenario.model_validate(row.scenario_doc)
    m = r.measurements
    rto_goal = sc.goals.rto if sc.goals.rto is not None else policy_rto
    rpo_goal = sc.goals.rpo if sc.goals.rpo is not None else policy_rpo
    rows = [
        SollIst(metric="WAZ / RTO (Ausfallbeginn → verifiziert)", soll=f"≤ {rto_goal:g} s", ist=_s(m.rto_s),
                met=None if m.rto_s is None else m.rto_s <= rto_goal),
        SollIst(metric="WAZ inkl. DNS-TTL (für Nutzer wirksam)", soll=f"≤ {rto_goal:g} s",
                ist=_s(None if m.rto_s is None else m.rto_s + (m.dns_ttl_s or 0)),
                met=None if m.rto_s is None else m.rto_s + (m.dns_ttl_s or 0) <= rto_goal),
        SollIst(metric="Datenverlust-Fenster / RPO", soll=f"≤ {rpo_goal:g} s", ist=_s(m.data_loss_window_s),
                met=None if m.data_loss_window_s is None else m.data_loss_window_s <= rpo_goal),
    ]
    if m.records_lost is not None:
        limit = sc.expectations.max_records_lost
        rows.append(SollIst(metric="Verlorene Datensätze (gezählt)", soll="–" if limit is None else f"≤ {limit}",
                            ist=f"{m.records_lost} von {m.records_written}",
                            met=None if limit is None else m.records_lost <= limit))
    if sc.goals.no_failover or sc.expectations.no_action:
        rows.append(SollIst(metric="Kein Failover", soll="kein Lauf", ist="kein Lauf" if m.failover_run is None
                            else f"Lauf {m.failover_run}", met=m.failover_run is None))
    return Report(drill=r, scenario=sc, exercise_type=DrillType(sc.type).german, soll_ist=rows,
                  timeline=_timeline(r))


def _timeline(r: DrillResult) -> list[TimelineEntry]:
    t0, m, out = r.measurements.t0, r.measurements, []

    def add(ts: datetime, kind: str, text: str) -> None:
        out.append(TimelineEntry(t_s=round((ts - t0).total_seconds(), 1), ts=ts, kind=kind, text=text))

    for i in r.injects:
        add(i.ts, "inject" if i.what != "note" else "note",
            f"{i.what}{' on ' + i.site if i.site else ''}{': ' + i.detail if i.detail else ''}")
    for h in r.health:
        if h.ts >= t0:
            add(h.ts, "health", f"{h.site} ({h.role}): {h.health}{', ready' if h.ready else ''}")
    if m.outage_started_at is not None:
        add(m.outage_started_at, "detection", "outage start as seen by the watcher")
    if m.detected_at is not None:
        add(m.detected_at, "detection", f"outage detected; failover run {m.failover_run} created")
    for d in r.decisions:
        add(d.ts, "decision", d.sentence)
    for s in r.steps:
        took = f" in {s.duration_s:.1f} s" if s.duration_s is not None else ""
        add(s.started_at, "step", f"{s.key} {s.status}{took}{' — ' + s.detail if s.detail else ''}")
    if m.verified_at is not None:
        add(m.verified_at, "verification", f"service verified on {m.target}")
    for v in r.verification:
        add(m.verified_at or r.finished_at, "verification", v)
    return sorted(out, key=lambda e: e.ts)


# --- Markdown -------------------------------------------------------------------------------------

def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(rep: Report) -> str:
    r, sc, m = rep.drill, rep.scenario, rep.drill.measurements
    verdict = {Outcome.PASSED: "BESTANDEN (alle Erwartungen erfüllt)",
               Outcome.FAILED: "NICHT BESTANDEN (siehe Feststellungen)",
               Outcome.ABORTED: "ABGEBROCHEN"}[r.outcome]
    lines = [
        f"# Übungsbericht: {sc.title or sc.name}", "",
        "| | |", "|---|---|",
        f"| Übung | Nr. {r.id} — Szenario `{sc.name}` |",
        f"| Übungsart | {rep.exercise_type} |",
        f"| Datum | {r.started_at:%Y-%m-%d %H:%M:%S} UTC – {r.finished_at:%H:%M:%S} UTC |",
        f"| Ausgangslage | aktiv: {m.active_at_start}; Standby: {m.standby_at_start or '–'} |",
        f"| Ergebnis | **{verdict}** |", "",
        "## 1. Rahmen und Umfang", "", sc.scope or "–", "", sc.description or "", "",
        "## 2. Übungsziele", "",
    ]
    g = sc.goals
    rto = f"≤ {g.rto:g} s" if g.rto else "Richtlinie der Konfiguration"
    rpo = f"≤ {g.rpo:g} s" if g.rpo is not None else "Richtlinie der Konfiguration"
    lines += [f"- WAZ/RTO-Ziel: {rto}", f"- Maximal tolerierbarer Datenverlust (RPO): {rpo}",
              f"- Kein Failover erwartet: {'ja' if g.no_failover else 'nein'}"]
    if g.text:
        lines.append(f"- {g.text}")
    lines += ["", "## 3. Szenario (Drehbuch)", "", "| T+ | Einspielung |", "|---|---|"]
    lines += [f"| {i.at:g} s | {_cell(i.describe())} |" for i in sc.timeline] or ["| – | – |"]
    lines += ["", "## 4. Beteiligte", "", "| Name | Rolle | Organisation |", "|---|---|---|"]
    lines += [f"| {_cell(p.name)} | {_cell(p.role)} | {_cell(p.organisation)} |" for p in sc.participants] \
        or ["| – | – | – |"]
    lines += ["", "## 5. Ablauf (gemessen)", "", "| T+ (s) | Art | Ereignis |", "|---:|---|---|"]
    lines += [f"| {e.t_s:.1f} | {e.kind} | {_cell(e.text)} |" for e in rep.timeline]
    lines += ["", "## 6. Soll-Ist-Abgleich", "", "| Größe | Soll | Ist | erfüllt |", "|---|---|---|---|"]
    lines += [f"| {s.metric} | {s.soll} | {s.ist} | {_met(s.met)} |" for s in rep.soll_ist]
    if m.backup:
        lines += ["", f"Wiederhergestelltes Backup: `{m.backup}`"
                  + (f" (abgeschlossen {m.backup_completed_at:%H:%M:%S} UTC)" if m.backup_completed_at else "")]
    lines += ["", "## 7. Erwartungen", "", "| Erwartung | Soll | Ist | erfüllt |", "|---|---|---|---|"]
    lines += [f"| {e.name} | {_cell(e.expected)} | {_cell(e.actual)} | {_met(e.passed)} |" for e in r.expectations] \
        or ["| – | – | – | – |"]
    lines += ["", "## 8. Feststellungen", ""]
    lines += [f"{n}. **[{f.severity}] {f.title}** — {f.detail}" for n, f in enumerate(r.findings, 1)] \
        or ["Keine Feststellungen."]
    lines += ["", "## 9. Maßnahmen", "", "| Nr. | Maßnahme | Verantwortlich | Termin |", "|---:|---|---|---|"]
    lines += [f"| {n} | {_cell(f.measure or f.title)} | {f.owner or '_______'} | {f.due or '_______'} |"
              for n, f in enumerate(r.findings, 1) if f.severity != "info" or f.measure] or ["| – | – | – | – |"]
    lines += ["", "## 10. Freigabe", "", "| Rolle | Name | Datum, Unterschrift |", "|---|---|---|",
              "| Übungsleitung | | |", "| Leitung Krisenstab / BCM-Beauftragte(r) | | |", ""]
    return secrets.redact("\n".join(lines))


def _met(value: bool | None) -> str:
    return "–" if value is None else ("ja" if value else "**nein**")


def json_document(rep: Report) -> str:
    return secrets.redact(rep.model_dump_json(indent=2))
