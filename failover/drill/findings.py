"""Expectations checked and findings derived — the Soll-Ist-Abgleich of a drill, automatically.

Every failed expectation becomes a critical finding that names it; the other findings come from
what was measured: a standby that was not ready (and why), a restored backup older than the RPO,
a step over its budget, the DNS TTL that users add to the measured RTO, a failed run, a test
failover that left something behind. Each finding proposes a measure; owner and due date are left
for the Krisenstab to fill in.
"""

from __future__ import annotations

from collections.abc import Iterable

from failover.drill.model import DrillResult, ExpectationResult, Finding, Measurements
from failover.drill.scenario import Scenario


def _fmt(value: float | None, unit: str = "s") -> str:
    return "n/a" if value is None else f"{value:.1f} {unit}".rstrip()


def check(sc: Scenario, r: DrillResult, *, resolve: dict[str, str], health_seen: dict[str, set[str]],
          failover_started: bool, not_ready: dict[str, dict[str, str]]) -> list[ExpectationResult]:
    ex, m, out = sc.expectations, r.measurements, []
    if ex.takes_over:
        site = resolve.get(ex.takes_over, ex.takes_over)
        got = m.target if m.run_phase == "succeeded" else None
        out.append(ExpectationResult(name="takes_over", expected=site, actual=str(got or f"no successful failover "
                                     f"(run {m.failover_run or 'none'} {m.run_phase or ''})".strip()),
                                     passed=got == site))
    if ex.no_action:
        out.append(ExpectationResult(name="no_action", expected="no failover run",
                                     actual=f"run {m.failover_run} started" if failover_started else "no run",
                                     passed=not failover_started))
    if ex.decision:
        hit = next((d.sentence for d in r.decisions if ex.decision in d.sentence), None)
        out.append(ExpectationResult(name="decision", expected=f"a decision containing {ex.decision!r}",
                                     actual=hit or f"{len(r.decisions)} decisions, none matching",
                                     passed=hit is not None))
    if ex.max_rto is not None:
        out.append(ExpectationResult(name="max_rto", expected=f"RTO <= {ex.max_rto:g} s", actual=_fmt(m.rto_s),
                                     passed=m.rto_s is not None and m.rto_s <= ex.max_rto))
    if ex.max_data_loss is not None:
        out.append(ExpectationResult(name="max_data_loss", expected=f"data-loss window <= {ex.max_data_loss:g} s",
                                     actual=_fmt(m.data_loss_window_s),
                                     passed=m.data_loss_window_s is not None
                                     and m.data_loss_window_s <= ex.max_data_loss))
    if ex.max_records_lost is not None:
        out.append(ExpectationResult(name="max_records_lost", expected=f"<= {ex.max_records_lost} records lost",
                                     actual="not counted" if m.records_lost is None else f"{m.records_lost} lost",
                                     passed=m.records_lost is not None and m.records_lost <= ex.max_records_lost))
    if ex.restored_backup:
        want = m.newest_backup_at_inject if ex.restored_backup == "newest" else m.previous_backup_at_inject
        out.append(ExpectationResult(name="restored_backup", expected=f"{ex.restored_backup} backup ({want})",
                                     actual=str(m.backup or "none restored"),
                                     passed=want is not None and m.backup == want and m.run_phase == "succeeded"))
    if ex.standby_ready is not None:
        standby = resolve.get("standby", "")
        lost = sorted(not_ready.get(standby, {}).values())
        actual = f"not ready: {'; '.join(lost)}" if lost else "ready throughout"
        out.append(ExpectationResult(name="standby_ready", expected=f"{standby} " + (
            "ready throughout" if ex.standby_ready else "not ready at some point"), actual=actual[:300],
            passed=bool(lost) != ex.standby_ready))
    for site, health in ex.site_health.items():
        name = resolve.get(site, site)
        seen = health_seen.get(name, set())
        out.append(ExpectationResult(name=f"site_health.{site}", expected=f"{name} {health} at some point",
                                     actual=f"seen: {', '.join(sorted(seen)) or 'nothing'}", passed=health in seen))
    return out


def derive(sc: Scenario, r: DrillResult, *, not_ready: dict[str, dict[str, str]], rpo: float,
           standbys: Iterable[str]) -> list[Finding]:
    m, out = r.measurements, []
    for e in r.expectations:
        if not e.passed:
            out.append(Finding(severity="critical", title=f"Erwartung nicht erfüllt: {e.name}",
                               detail=f"expected {e.expected}; measured {e.actual}",
                               measure="Ursache analysieren; Plan, Konfiguration oder Szenario anpassen"))
    if r.error:
        out.append(Finding(severity="critical", title="Übung abgebrochen", detail=r.error,
                           measure="Ursache beheben und die Übung wiederholen"))
    for site in standbys:
        reasons = sorted(not_ready.get(site, {}).values())
        if reasons:
            out.append(Finding(severity="warning", title=f"Standby {site} zeitweise nicht bereit",
                               detail="; ".join(reasons)[:800],
                               measure=f"Bereitschaft von {site} überwachen und die Ursache beheben"))
    limit = sc.goals.rpo if sc.goals.rpo is not None else rpo
    if m.data_loss_window_s is not None and m.data_loss_window_s > limit:
        out.append(Finding(severity="warning", title="Wiederhergestelltes Backup älter als das RPO",
                           detail=f"data-loss window {_fmt(m.data_loss_window_s)} > RPO {limit:g} s "
                                  f"(backup {m.backup})",
                           measure="Backup-Intervall und Replikation prüfen"))
    for step in r.steps:
        if step.budget_s is not None and step.duration_s is not None and step.duration_s > step.budget_s:
            out.append(Finding(severity="warning", title=f"Schritt {step.key} über Budget",
                               detail=f"{step.duration_s:.1f} s > budget {step.budget_s:g} s",
                               measure=f"Schritt {step.key} beschleunigen oder das Budget begründen"))
        if step.status == "failed":
            out.append(Finding(severity="warning", title=f"Schritt {step.key} fehlgeschlagen (Versuch {step.attempt})",
                               detail=step.detail or "no detail", measure="Fehlerursache im Journal prüfen"))
    if m.rto_s is not None and m.dns_ttl_s and m.failover_run is not None:
        effective = m.rto_s + m.dns_ttl_s
        goal = sc.goals.rto
        over = goal is not None and effective > goal
        out.append(Finding(severity="warning" if over else "info", title="DNS-TTL verlängert die reale WAZ",
                           detail=f"measured RTO {_fmt(m.rto_s)} + DNS TTL {m.dns_ttl_s} s = {effective:.1f} s "
                                  "until every client resolves the new site"
                                  + (f" (target {goal:g} s)" if goal is not None else ""),
                           measure="TTL senken oder im WAZ-Ziel berücksichtigen"))
    if sc.goals.rto is not None and m.rto_s is not None and m.rto_s > sc.goals.rto:
        out.append(Finding(severity="critical", title="WAZ-Ziel verfehlt",
                           detail=f"RTO {_fmt(m.rto_s)} > target {sc.goals.rto:g} s",
                           measure="Wiederanlauf beschleunigen (Restore-Gruppen, Ressourcen)"))
    if m.run_phase and m.run_phase != "succeeded":
        out.append(Finding(severity="critical", title=f"Failover-Lauf {m.failover_run} endete {m.run_phase}",
                           detail=next((s.detail for s in r.steps if s.status == "failed"), "see the journal"),
                           measure="Lauf im Journal (`failover history`) analysieren"))
    return out


def expectations_met(results: list[ExpectationResult]) -> bool:
    return all(e.passed for e in results)


def summary_line(m: Measurements) -> str:
    return (f"RTO {_fmt(m.rto_s)}, detection {_fmt(m.detection_s)}, data-loss window "
            f"{_fmt(m.data_loss_window_s)}, records lost {m.records_lost if m.records_lost is not None else 'n/a'}")
