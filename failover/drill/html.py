"""The Übungsbericht as one self-contained HTML file with an SVG timeline plot.

No scripts, no external fonts or images: the file opens offline, prints well (``@media print``:
A4 landscape-friendly widths, no page break inside a table row or the plot) and can be filed as is.
The plot shows, on one time axis from T0: site health per observer (one lane per site, coloured
by health), the injects, the daemon's decisions, every step as a bar, the outage start and the
switch (service verified on the target).
"""

from __future__ import annotations

from datetime import datetime
from html import escape

from failover.core import secrets
from failover.drill.model import DrillResult
from failover.drill.report import Report, markdown

COLOURS = {"healthy": "#2e7d32", "degraded": "#f9a825", "down": "#c62828", "unknown": "#9e9e9e"}
STEP_COLOURS = {"succeeded": "#1565c0", "failed": "#c62828", "retrying": "#ef6c00", "running": "#90caf9"}
WIDTH, LEFT, RIGHT, LANE = 1100, 170, 20, 22

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem;color:#212121;max-width:1150px}
h1{font-size:1.6rem;margin-bottom:.3rem}h2{font-size:1.15rem;border-bottom:1px solid #bbb;margin-top:1.6rem}
table{border-collapse:collapse;width:100%;margin:.5rem 0;font-size:.9rem}
th,td{border:1px solid #ccc;padding:.25rem .45rem;text-align:left;vertical-align:top}
th{background:#f3f3f3}.ok{color:#2e7d32;font-weight:600}.bad{color:#c62828;font-weight:700}
.critical{color:#c62828}.warning{color:#b26a00}.info{color:#455a64}
.verdict{font-size:1.1rem;font-weight:700}svg text{font-family:inherit}
figure{margin:0}figcaption{font-size:.8rem;color:#555}
@media print{body{margin:0;max-width:none;font-size:10pt}h2{break-after:avoid}
tr,figure,svg{break-inside:avoid}a{color:inherit;text-decoration:none}@page{size:A4 landscape;margin:12mm}}
"""


def _x(ts: datetime, t0: datetime, span: float) -> float:
    return LEFT + max(0.0, (ts - t0).total_seconds()) / span * (WIDTH - LEFT - RIGHT)


def timeline_svg(r: DrillResult) -> str:
    """The drill's timeline as an SVG element (lanes: sites, injects, decisions, steps)."""
    m = r.measurements
    t0 = m.t0  # samples from before T0 (the steady state) start at the left edge
    end = max([r.finished_at, *(s.finished_at or s.started_at for s in r.steps)])
    span = max(1.0, (end - t0).total_seconds())
    sites = list(dict.fromkeys(h.site for h in r.health))
    steps = r.steps
    height = 52 + LANE * (len(sites) + 2 + len(steps)) + 40
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" id="timeline" role="img" viewBox="0 0 {WIDTH} {height}" '
           f'width="100%" aria-label="drill timeline">',
           '<title>Zeitachse der Übung</title>']
    y = 42
    for tick in range(0, int(span) + 1, max(1, int(span // 10) or 1)):
        x = LEFT + tick / span * (WIDTH - LEFT - RIGHT)
        out.append(f'<line x1="{x:.1f}" y1="20" x2="{x:.1f}" y2="{height - 30}" stroke="#eee"/>'
                   f'<text x="{x:.1f}" y="{height - 14}" font-size="10" text-anchor="middle">{tick}s</text>')
    for site in sites:
        samples = [h for h in r.health if h.site == site]
        out.append(f'<text x="4" y="{y + 14}" font-size="11">{escape(site)}</text>')
        for i, h in enumerate(samples):
            until = samples[i + 1].ts if i + 1 < len(samples) else end
            x1, x2 = _x(h.ts, t0, span), _x(until, t0, span)
            out.append(f'<rect class="health {h.health}" x="{x1:.1f}" y="{y + 3}" width="{max(1.0, x2 - x1):.1f}" '
                       f'height="{LANE - 6}" fill="{COLOURS.get(h.health, "#9e9e9e")}" '
                       f'opacity="{1 if h.role != "fenced" else .45}"><title>{escape(site)} {h.role} {h.health}'
                       f'{" ready" if h.ready else ""} from T+{(h.ts - t0).total_seconds():.1f}s</title></rect>')
        y += LANE
    out.append(f'<text x="4" y="{y + 14}" font-size="11">Einspielungen</text>')
    for inj in r.injects:
        x = _x(inj.ts, t0, span)
        out.append(f'<path class="inject" d="M{x:.1f},{y + 3} l6,8 l-6,8 l-6,-8z" fill="#6a1b9a">'
                   f'<title>T+{inj.at_s:.1f}s {escape(inj.what)} {escape(inj.site or "")}</title></path>')
    y += LANE
    out.append(f'<text x="4" y="{y + 14}" font-size="11">Entscheidungen</text>')
    for d in r.decisions:
        x = _x(d.ts, t0, span)
        out.append(f'<circle class="decision" cx="{x:.1f}" cy="{y + 11}" r="5" fill="#00838f">'
                   f'<title>{escape(d.sentence)}</title></circle>')
    y += LANE
    for s in steps:
        x1 = _x(s.started_at, t0, span)
        x2 = _x(s.finished_at or end, t0, span)
        out.append(f'<text x="4" y="{y + 14}" font-size="11">{escape(s.key)}</text>'
                   f'<rect class="step" data-step="{escape(s.key)}" x="{x1:.1f}" y="{y + 4}" '
                   f'width="{max(2.0, x2 - x1):.1f}" height="{LANE - 8}" '
                   f'fill="{STEP_COLOURS.get(s.status, "#1565c0")}">'
                   f'<title>{escape(s.key)} {s.status} {s.duration_s or 0:.1f}s</title></rect>')
        y += LANE
    marks = [(m.outage_started_at, "#c62828", "Ausfall"), (m.verified_at, "#2e7d32", "Umschaltung verifiziert")]
    first = next((i.ts for i in r.injects if i.what not in ("note", "heal")), None)
    if first is not None:
        marks.insert(0, (first, "#6a1b9a", "erste Störung"))
    for n, (ts, colour, label) in enumerate(marks):
        if ts is None:
            continue
        x = _x(ts, t0, span)
        right = x > WIDTH - 160  # labels near the right edge end at their line
        out.append(f'<line class="marker" x1="{x:.1f}" y1="{12 + 12 * n}" x2="{x:.1f}" y2="{height - 30}" '
                   f'stroke="{colour}" stroke-width="2" stroke-dasharray="5,3"/>'
                   f'<text x="{x + (-3 if right else 3):.1f}" '
                   f'y="{10 + 12 * n}" font-size="10" text-anchor="{"end" if right else "start"}" '
                   f'fill="{colour}">{escape(label)}</text>')
    out.append("</svg>")
    return "".join(out)


def _md_table_to_html(block: list[str]) -> str:
    rows = [[c.strip().replace("\\|", "|") for c in line.strip().strip("|").split(" | ")] for line in block]
    head, body = rows[0], rows[2:]
    html = ["<table><thead><tr>", *(f"<th>{_inline(c)}</th>" for c in head), "</tr></thead><tbody>"]
    for row in body:
        html.append("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in row) + "</tr>")
    html.append("</tbody></table>")
    return "".join(html)


def _inline(text: str) -> str:
    out = escape(text)
    while out.count("**") >= 2:
        out = out.replace("**", '<strong class="bad">' if "nein" in out or "NICHT" in out else "<strong>", 1)
        out = out.replace("**", "</strong>", 1)
    while out.count("`") >= 2:
        out = out.replace("`", "<code>", 1).replace("`", "</code>", 1)
    return out


def render(rep: Report) -> str:
    """The whole report as one HTML document (Markdown sections + the SVG timeline after section 5)."""
    md = markdown(rep).splitlines()
    body: list[str] = []
    i = 0
    while i < len(md):
        line = md[i]
        if line.startswith("|"):
            block = []
            while i < len(md) and md[i].startswith("|"):
                block.append(md[i])
                i += 1
            body.append(_md_table_to_html(block))
            continue
        if line.startswith("# "):
            body.append(f"<h1>{_inline(line[2:])}</h1>")
        elif line.startswith("## "):
            if line.startswith("## 6."):
                body.append(f"<figure>{timeline_svg(rep.drill)}<figcaption>Zeitachse: Gesundheit je Standort "
                            "(grün gesund, gelb eingeschränkt, rot ausgefallen, blass = abgeschottet), "
                            "Einspielungen, Entscheidungen, Schritte; Linien: Störung, Ausfall, "
                            "Umschaltung.</figcaption></figure>")
            body.append(f"<h2>{_inline(line[3:])}</h2>")
        elif line.startswith("- "):
            body.append(f"<ul><li>{_inline(line[2:])}</li></ul>")
        elif line[:1].isdigit() and ". " in line[:4]:
            severity = line.split("[", 1)[1].split("]", 1)[0] if "[" in line else ""
            body.append(f'<p class="{escape(severity)}">{_inline(line)}</p>')
        elif line.strip():
            body.append(f"<p>{_inline(line)}</p>")
        i += 1
    title = escape(rep.scenario.title or rep.scenario.name)
    doc = (f'<!DOCTYPE html><html lang="de"><head><meta charset="utf-8"><title>Übungsbericht: {title}</title>'
           f"<style>{CSS}</style></head><body>{''.join(body)}</body></html>")
    return secrets.redact(doc)
