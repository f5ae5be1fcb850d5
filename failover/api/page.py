"""The live status page: server-rendered HTML that refreshes itself, for the crisis team's screen.

No framework: the page is rendered here, and six lines of JavaScript fetch ``/fragment`` every
few seconds and swap it in (with JavaScript off it reloads itself through ``<noscript>``
refresh). Everything shown comes from the status document, the journal and the decisions —
all escaped, and the whole page passes the secret redaction.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

from failover.core import secrets

CSS = """
body{font-family:system-ui,sans-serif;margin:0;background:#f4f5f7;color:#1b1f24}
header{background:#16324f;color:#fff;padding:.8rem 1rem}h1{font-size:1.2rem;margin:0}
main{padding:.6rem;max-width:1100px;margin:auto}section{background:#fff;border-radius:8px;margin:.6rem 0;
padding:.6rem .8rem;box-shadow:0 1px 2px #0002}h2{font-size:1rem;margin:.2rem 0 .5rem}
.sites{display:grid;grid-template-columns:repeat(auto-fit,minmax(240px,1fr));gap:.5rem}
.site{border:1px solid #ddd;border-radius:6px;padding:.5rem}.site h3{margin:0 0 .3rem;font-size:1rem}
.badge{display:inline-block;padding:0 .4rem;border-radius:4px;font-size:.85rem;color:#fff}
.healthy,.succeeded{background:#2e7d32}.degraded,.waiting_approval,.retrying{background:#b26a00}
.down,.failed,.interrupted{background:#c62828}.unknown,.pending,.skipped,.cancelled{background:#757575}
.running{background:#1565c0}.active{outline:3px solid #2e7d32}.fenced{opacity:.7}
table{border-collapse:collapse;width:100%;font-size:.9rem}td,th{text-align:left;padding:.2rem .3rem;
border-bottom:1px solid #eee;vertical-align:top}small,.muted{color:#5f6b76}ul{margin:.2rem 0;padding-left:1.1rem}
@media (max-width:600px){table{font-size:.8rem}header{padding:.6rem}}
"""

SCRIPT = """
let n=0;setInterval(async()=>{try{const r=await fetch('/fragment',{cache:'no-store'});
if(r.ok){document.getElementById('live').innerHTML=await r.text();document.body.dataset.refreshes=++n;}}
catch(e){document.body.dataset.offline='1';}},REFRESH);
"""


@dataclass(frozen=True)
class Parts:
    status: dict[str, Any]
    runs: list[dict[str, Any]] = field(default_factory=list)
    decisions: list[tuple[str, str]] = field(default_factory=list)


def e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _secs(value: Any) -> str:
    return "–" if value is None else f"{float(value):.1f} s"


def _site(name: str, s: dict[str, Any], active: str | None) -> str:
    reasons = s.get("reasons") or (s.get("ready_reasons") if s.get("role") == "standby" else [])
    why = "".join(f"<li>{e(r)}</li>" for r in (reasons or [])[:6])
    ready = "ready" if s.get("ready") else ("–" if s.get("role") != "standby" else "not ready")
    cls = "site active" if name == active else f"site {e(s.get('role'))}"
    return (f'<div class="{cls}" id="site-{e(name)}" data-role="{e(s.get("role"))}" data-health="{e(s.get("health"))}">'
            f'<h3>{e(name)} <span class="badge {e(s.get("health"))}">{e(s.get("health"))}</span></h3>'
            f'<small>{e(s.get("provider"))} {e(s.get("region"))} · <b>{e(s.get("role"))}</b> · {ready}</small><br>'
            f'<small>backup: {e(s.get("newest_backup") or "none")} (age {_secs(s.get("backup_age_s"))}) · '
            f'lag {_secs(s.get("replication_lag_s"))}</small>'
            f'{f"<ul>{why}</ul>" if why else ""}</div>')


def _steps(run: dict[str, Any]) -> str:
    rows = "".join(
        f'<tr data-step="{e(s["key"])}" data-status="{e(s["status"])}"><td>{e(s["key"])}</td>'
        f'<td><span class="badge {e(s["status"])}">{e(s["status"])}</span></td><td>{e(s.get("attempt"))}</td>'
        f'<td>{_secs(s.get("duration_s"))}</td><td><small>{e((s.get("error") or "")[:120])}</small></td></tr>'
        for s in run.get("steps", []))
    return f"<table><tr><th>step</th><th>status</th><th>try</th><th>took</th><th></th></tr>{rows}</table>"


def _current(status: dict[str, Any], runs: list[dict[str, Any]]) -> str:
    cur = status.get("run")
    if not cur:
        return '<section id="run" data-phase="none"><h2>Run in progress</h2><p class="muted">none</p></section>'
    doc: dict[str, Any] = next((r for r in runs if r["id"] == cur["id"]), {"steps": []})
    return (f'<section id="run" data-run="{e(cur["id"])}" data-phase="{e(cur["phase"])}">'
            f'<h2>Run {e(cur["id"])}: {e(cur["playbook"])} {e(doc.get("from"))} → {e(doc.get("to"))} '
            f'<span class="badge {e(cur["phase"])}">{e(cur["phase"])}</span></h2>'
            f'<p>current step: <b id="run-step">{e(cur.get("step") or "–")}</b></p>{_steps(doc)}</section>')


def _history(runs: list[dict[str, Any]]) -> str:
    rows = "".join(
        f'<tr data-run="{e(r["id"])}"><td><a href="/runs/{e(r["id"])}">{e(r["id"])}</a></td><td>{e(r["playbook"])}</td>'
        f'<td>{e(r.get("from"))} → {e(r.get("to"))}</td><td><span class="badge {e(r["phase"])}">{e(r["phase"])}</span>'
        f'</td><td class="rto">{_secs(r.get("rto_s"))}</td><td>{_secs(r.get("data_loss_window_s"))}</td></tr>'
        for r in runs)
    return ('<section id="history"><h2>History</h2><table><tr><th>run</th><th>playbook</th><th>move</th>'
            f'<th>phase</th><th>RTO</th><th>data loss</th></tr>{rows}</table></section>')


def _extras(status: dict[str, Any]) -> str:
    out = ""
    alerts = status.get("alerts") or []
    if alerts:
        items = "".join(f"<li><b>{e(a['site'])}</b>: {e(a['name'])} {e(a.get('summary'))}</li>" for a in alerts)
        out += f'<section id="alerts"><h2>Firing alerts</h2><ul>{items}</ul></section>'
    notes = status.get("notifications") or {}
    bad = [*notes.get("pending", []), *notes.get("failed", [])]
    if bad:
        items = "".join(f"<li>{e(n['channel'])}: {e(n['notice'])} — {n['attempts']} attempts; "
                        f"{e(n.get('last_error') or 'queued')}</li>" for n in bad[:10])
        out += f'<section id="notifications"><h2>Notifications not delivered yet</h2><ul>{items}</ul></section>'
    return out


def fragment(parts: Parts) -> str:
    st = parts.status
    active = st.get("active")
    ordered = sorted((st.get("sites") or {}).items(), key=lambda kv: (kv[0] != active, kv[1].get("role") == "fenced"))
    sites = "".join(_site(n, s, active) for n, s in ordered)
    decisions = "".join(f"<li><small>{e(at[11:19])}</small> {e(text)}</li>" for at, text in parts.decisions)
    body = (f'<section id="summary"><h2>Active site: <span id="active-site">{e(active)}</span></h2>'
            f'<small>epoch {e(st.get("epoch"))} · automation {"PAUSED" if st.get("paused") else "on"} · '
            f'updated {e(str(st.get("updated_at") or "")[11:19])} UTC</small>'
            f'<p id="decision">{e(st.get("decision") or "")}</p></section>'
            f'<section><h2>Sites</h2><div class="sites">{sites}</div></section>'
            f'{_current(st, parts.runs)}{_extras(st)}'
            f'<section id="decisions"><h2>Recent decisions</h2><ul>{decisions}</ul></section>{_history(parts.runs)}')
    return secrets.redact(body)


def _doc(title: str, body: str, *, script: str = "", refresh_s: float | None = None) -> str:
    noscript = f'<noscript><meta http-equiv="refresh" content="{refresh_s:g}"></noscript>' if refresh_s else ""
    return ('<!doctype html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>{e(title)}</title><style>{CSS}</style>{noscript}</head>"
            f'<body><header><h1>{e(title)}</h1></header><main id="live">{body}</main>{script}</body></html>')


def full(parts: Parts, *, refresh_s: float) -> str:
    script = "<script>" + SCRIPT.replace("REFRESH", str(int(refresh_s * 1000))) + "</script>"
    return _doc("failover — emergency workplace status", fragment(parts), script=script, refresh_s=refresh_s)


def run_page(run: dict[str, Any]) -> str:
    body = (f'<section id="run" data-run="{e(run["id"])}" data-phase="{e(run["phase"])}"><h2>Run {e(run["id"])}: '
            f'{e(run["playbook"])} {e(run.get("from"))} → {e(run.get("to"))} <span class="badge {e(run["phase"])}">'
            f'{e(run["phase"])}</span></h2><p>RTO {_secs(run.get("rto_s"))} (from detection '
            f'{_secs(run.get("rto_from_detection_s"))}) · data-loss window {_secs(run.get("data_loss_window_s"))} · '
            f'backup {e(run.get("backup"))}</p>{_steps(run)}<p><a href="/">← status</a></p></section>')
    return secrets.redact(_doc(f"failover run {run['id']}", body))


def not_found(run_id: str) -> str:
    return _doc("failover", f"<section><p>no run {e(run_id)}</p><p><a href='/'>← status</a></p></section>")
