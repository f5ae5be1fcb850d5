"""Tables that fit the terminal: the ``status`` sites table and the ``history`` runs and decisions.

Pure functions from the ``--json`` documents to lines of text, for a given width, so they are
tested at 80 and 200 columns without a terminal. The rules, for an operator at 80 columns:

* a site name (and a run id) is never cut: the identifying columns always get their full width;
* the short columns come next; when the reasons ("why") do not fit beside them in the row, they
  go on their own lines under the row, indented and wrapped at word boundaries;
* with ``wide`` everything is on one line per row, in full, whatever the width (for a pager or a
  log), plus the columns the narrow table leaves out.

Colours are ANSI codes added after the widths are computed (``color``), never counted as width.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from failover.cli.output import paint

HEALTH_STYLE = {"healthy": "green", "degraded": "yellow", "down": "red bold", "unknown": "dim"}
PHASE_STYLE = {"succeeded": "green", "failed": "red bold", "cancelled": "dim", "running": "cyan",
               "pending": "cyan", "waiting_approval": "yellow bold"}
GAP = "  "
INDENT = "    "


@dataclass(frozen=True)
class Cell:
    text: str
    style: str = ""


@dataclass(frozen=True)
class Row:
    cells: tuple[Cell, ...]
    notes: tuple[str, ...] = ()  #: free text: a column when it fits, else lines under the row
    note_style: str = ""


def _widths(header: Sequence[str], rows: Sequence[Row]) -> list[int]:
    widths = [len(h) for h in header]
    for row in rows:
        for i, cell in enumerate(row.cells):
            widths[i] = max(widths[i], len(cell.text))
    return widths


def _line(cells: Sequence[Cell], widths: Sequence[int], *, color: bool) -> str:
    parts = []
    for i, (cell, width) in enumerate(zip(cells, widths, strict=True)):
        text = cell.text if i == len(cells) - 1 else cell.text.ljust(width)
        parts.append(paint(text, cell.style, color=color) if cell.style else text)
    return GAP.join(parts).rstrip()


def _drop(header: Sequence[str], rows: Sequence[Row], index: int) -> tuple[list[str], list[Row]]:
    keep = [i for i in range(len(header)) if i != index]
    return [header[i] for i in keep], [Row(tuple(r.cells[i] for i in keep), r.notes, r.note_style) for r in rows]


def render(header: Sequence[str], rows: Sequence[Row], *, width: int, wide: bool = False, color: bool = False,
           note_header: str = "why", optional: Sequence[int] = ()) -> list[str]:
    """Lines of a table whose last column (the rows' notes) moves under the row when narrow.

    ``optional`` lists the columns that may be left out, the rightmost first, while the row is
    wider than ``width`` (never with ``wide``); list neither the name nor other identifying columns."""
    widths = _widths(header, rows)
    for index in sorted(optional, reverse=True) if not wide else ():
        if sum(widths) + len(GAP) * (len(widths) - 1) <= width:
            break
        header, rows = _drop(header, rows, index)
        widths = _widths(header, rows)
    fixed = sum(widths) + len(GAP) * len(widths)
    has_notes = any(row.notes for row in rows)
    notes_text = ["; ".join(row.notes) for row in rows]
    longest = max((len(t) for t in notes_text), default=0)
    inline = has_notes and (wide or fixed + max(longest, len(note_header)) <= width)
    out: list[str] = []
    head = [Cell(h, "bold") for h in header]
    if inline:
        out.append(_line([*head, Cell(note_header, "bold")], [*widths, 0], color=color))
    else:
        out.append(_line(head, widths, color=color))
    for row, note in zip(rows, notes_text, strict=True):
        if inline:
            out.append(_line([*row.cells, Cell(note, row.note_style)], [*widths, 0], color=color))
            continue
        out.append(_line(row.cells, widths, color=color))
        for reason in row.notes:
            for piece in textwrap.wrap(reason, width=max(20, width), initial_indent=INDENT,
                                       subsequent_indent=INDENT + "  ", break_long_words=False,
                                       break_on_hyphens=False):
                out.append(paint(piece, row.note_style, color=color) if row.note_style else piece)
    return out


# --- status ------------------------------------------------------------------------------------------

def status_lines(doc: dict[str, Any], *, width: int, wide: bool = False, color: bool = False) -> list[str]:
    """The ``status`` screen: the headline, the sites table, the current run."""
    if not doc.get("sites"):  # nothing known yet (``--watch`` before the daemon's first snapshot)
        return [str(doc.get("source") or "no status yet")]
    out = [_status_headline(doc, color=color)]
    if doc.get("source"):
        out.append(paint(str(doc["source"]), "yellow" if doc.get("stale") else "dim", color=color))
    header = ["site", "provider", "role", "health", "ready", "lag"]
    wal = any("wal_age_s" in s for s in (doc.get("sites") or {}).values())  # the databases' archived WAL age
    if wal:
        header.append("wal")
    if wide:
        header += ["newest backup", "provider state"]
    rows = []
    for name, s in (doc.get("sites") or {}).items():
        lag = s.get("replication_lag_s")
        cells = [Cell(str(name), "bold" if name == doc.get("active") else ""),
                 Cell(f"{s.get('provider', '')} {s.get('region', '')}".strip()), Cell(str(s.get("role", ""))),
                 Cell(str(s.get("health", "")), HEALTH_STYLE.get(str(s.get("health")), "")),
                 Cell("yes" if s.get("ready") else "no", "green" if s.get("ready") else ""),
                 Cell("" if lag is None else f"{lag:.0f}s")]
        if wal:
            age = s.get("wal_age_s")
            cells.append(Cell("" if age is None else f"{age:.0f}s"))
        if wide:
            cells += [Cell(str(s.get("newest_backup") or "-")), Cell(str(s.get("provider_state") or "-"))]
        reasons = list(s.get("reasons") or [])
        if not reasons and s.get("role") == "standby":
            reasons = list(s.get("ready_reasons") or [])
        rows.append(Row(tuple(cells), tuple(str(r) for r in reasons),
                        "yellow" if s.get("health") != "healthy" else "dim"))
    out += render(header, rows, width=width, wide=wide, color=color, optional=(1,))
    run = doc.get("run")
    if not run:
        out.append("no run in progress")
    else:
        step = f", step {run['step']}" if run.get("step") else ""
        phase = paint(str(run.get("phase")), PHASE_STYLE.get(str(run.get("phase")), ""), color=color)
        out.append(f"run {run['id']} ({run.get('playbook')}): {phase}{step}")
    return out + _daemon_lines(doc, width=width, wide=wide, color=color)


def _daemon_lines(doc: dict[str, Any], *, width: int, wide: bool, color: bool) -> list[str]:
    """Coordination (etcd: leader, members, the observers' votes) and restarted daemon tasks."""
    out: list[str] = []
    coord = doc.get("coordination") or {}
    if coord.get("backend") == "etcd" and coord.get("available", True):
        out.append(f"leader: {coord.get('leader')}   members: {', '.join(coord.get('members') or [])}")
        for site, votes in (coord.get("observers") or {}).items():
            text = "; ".join(f"{o} {v.get('health')} ({v.get('age_s')}s)" for o, v in votes.items())
            out += [f"  {site}: {text}"] if wide else textwrap.wrap(
                f"{site}: {text}", width=max(20, width), initial_indent="  ", subsequent_indent="    ",
                break_long_words=False, break_on_hyphens=False)
    tasks = (doc.get("daemon") or {}).get("tasks") or {}
    for name, task in tasks.items():
        if task.get("restarts"):
            out.append(paint(f"task {name} restarted {task['restarts']}x", "yellow", color=color) +
                       f" (last: {task.get('last_error')})")
    return out


def _status_headline(doc: dict[str, Any], *, color: bool) -> str:
    active = paint(str(doc.get("active")), "bold", color=color)
    paused = paint("yes", "yellow bold", color=color) if doc.get("paused") else "no"
    return f"active site: {active}   automation paused: {paused}   epoch: {doc.get('epoch')}"


# --- history -----------------------------------------------------------------------------------------

def _seconds(value: Any) -> str:
    return "-" if value is None else f"{float(value):.1f}s"


def _clock(stamp: Any) -> str:
    text = str(stamp or "")
    return text[:19].replace("T", " ") if text else "-"


def history_lines(doc: dict[str, Any], *, width: int, wide: bool = False, color: bool = False) -> list[str]:
    """The ``history`` screen: runs (newest first), then the controller's decisions."""
    out: list[str] = []
    runs = doc.get("runs") or []
    if runs:
        header = ["run", "playbook", "phase", "from → to", "RTO", "data loss", "started"]
        rows = []
        for r in runs:
            steps = r.get("steps") or []
            failed = [s for s in steps if s.get("status") == "failed"]
            notes = tuple(f"{s['key']}: {s.get('error') or 'failed'}" for s in failed)
            if r.get("error") and not notes:
                notes = (str(r["error"]),)
            rows.append(Row((Cell(str(r.get("id"))), Cell(str(r.get("playbook"))),
                             Cell(str(r.get("phase")), PHASE_STYLE.get(str(r.get("phase")), "")),
                             Cell(f"{r.get('from') or '-'} → {r.get('to') or '-'}"),
                             Cell(_seconds(r.get("rto_s"))), Cell(_seconds(r.get("data_loss_window_s"))),
                             Cell(_clock(r.get("started_at") or r.get("created_at")))), notes, "red"))
        out += render(header, rows, width=width, wide=wide, color=color, note_header="error", optional=(6, 1))
    else:
        out.append("no runs yet")
    decisions = doc.get("decisions") or []
    if decisions:
        out.append("")
        out.append(paint("decisions (newest first)", "bold", color=color))
    for d in decisions:
        stamp = _clock(d.get("at"))
        sentence = str(d.get("sentence", ""))
        if wide:
            out.append(f"{paint(stamp, 'dim', color=color)}  {sentence}")
            continue
        lines = textwrap.wrap(sentence, width=max(20, width - len(stamp) - len(GAP)), break_long_words=False,
                              break_on_hyphens=False) or [""]
        out.append(f"{paint(stamp, 'dim', color=color)}{GAP}{lines[0]}")
        out += [f"{' ' * len(stamp)}{GAP}{more}" for more in lines[1:]]
    return out
