"""The Notfallhandbuch: the printable emergency manual, rendered from the very config, workplace
profile and playbooks the daemon executes — so the paper in the crisis binder says what the
software does, and a test regenerates the checked-in copy and fails when it is stale.

Markdown is the source form; HTML is Markdown through markdown-it with print CSS; PDF is that HTML
printed by headless Chromium. Nothing time-dependent goes into it (the measured durations come
from the state, when there is one), so the same inputs give the same bytes.
"""

from __future__ import annotations

import hashlib
import html
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from markdown_it import MarkdownIt

from failover.config import loader, models
from failover.core import errors
from failover.playbook.model import Playbook, Step
from failover.runbook import hand
from failover.runbook.hand import placeholder
from failover.store import StepStatus, Store

CHROMIUM = "/usr/bin/chromium"


@dataclass(frozen=True)
class Book:
    title: str
    markdown: str


def _cell(value: object) -> str:
    return str(value if value not in (None, "") else "—").replace("|", "\\|").replace("\n", " ")


def _table(head: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _contacts(cfg: models.Config) -> str:
    out = ["## 1. Kontakte und Rollen (contacts and roles)\n"]
    roles = dict(cfg.roles)
    for op in cfg.operators:
        for r in op.roles:
            roles.setdefault(r, "")
    for r in (cfg.policy.approver_role, cfg.policy.break_glass_role):
        roles.setdefault(r, "")
    out.append(_table(["role", "responsible for", "operators"],
                      [[r, roles[r], ", ".join(o.name for o in cfg.operators if r in o.roles)] for r in sorted(roles)]))
    out.append("\n" + _table(["operator", "name", "roles", "phone", "e-mail"],
                             [[o.name, o.full_name, ", ".join(o.roles), o.phone, o.email] for o in cfg.operators]))
    if not cfg.operators:
        out.append("\nNo operators are configured: add `operators:` to the config.\n")
    return "\n".join(out)


def _sites(cfg: models.Config) -> str:
    rows: list[list[object]] = []
    for s in cfg.sites:
        sup = s.support or models.Support()
        rows.append([s.name, f"{s.provider} {s.region}", s.role.value, s.jurisdiction, ", ".join(s.attestations),
                     sup.name, sup.phone, sup.email, sup.contract, sup.hours])
    return ("## 2. Standorte und Provider (sites, providers, support)\n\n"
            + _table(["site", "provider / region", "role", "jurisdiction", "attestations", "support", "phone",
                      "e-mail", "contract", "hours"], rows))


def _rules(cfg: models.Config) -> str:
    h, p = cfg.health, cfg.policy
    return f"""## 3. Entscheidungsregeln (decision rules)

- **Down rule**: a site is *down* when its Kubernetes API check fails, or when more than
  {h.critical_majority:.0%} of its critical components' checks fail. Any other failing check makes it
  *degraded*, which never triggers a failover. A check fails after {h.fail_after} consecutive failed probes
  (one probe round every {h.interval:g} s, timeout {h.timeout:g} s) and recovers after {h.recover_after} successes.
- **Readiness** of a standby: its Kubernetes API, its bucket, a replicated complete backup within the RPO
  and the DNS provider's API all check out.
- **RPO** (max. tolerable data loss): {p.rpo:g} s. **RTO** (WAZ) target: {p.rto:g} s.
  **Cool-down** between two failovers: {p.cooldown:g} s.
- **Policy**: `{p.mode.value}` — automatic: the daemon fails over; approval: {p.approvers} operator(s) with
  role `{p.approver_role}` approve (`failover approve RUN --as NAME`), never the requester; manual: people
  start the run. Standby preference: {", ".join(s.name for s in cfg.standby_order())}.
- **Break glass**: an operator with role `{p.break_glass_role}` may override exactly one blocking rule
  (`cooldown`, `standby-not-ready`, `no-quorum`, `stale-backup`) with
  `failover runbook start … --break-glass RULE --reason TEXT`. It is logged, notified and shown in `status`.
"""


def _step(number: str, step: Step, cfg: models.Config) -> str:
    if step.uses == "manual":
        w = step.with_
        lines = [f"**{number} {placeholder(w.get('title', step.id))}** — manual step `{step.id}`, role "
                 f"`{w.get('role')}`, {w.get('approvers', 1)} operator(s) confirm"
                 + (" (four eyes: not the requester)" if int(str(w.get("approvers", 1))) > 1 else "") + "\n"]
        if w.get("instructions"):
            lines.append(placeholder(w["instructions"]).strip() + "\n")
        items = w.get("checklist")
        for item in items if isinstance(items, list) else []:
            lines.append(f"- [ ] {placeholder(item)}")
        fields = w.get("evidence")
        for f in fields if isinstance(fields, list) else []:
            lines.append(f"- Evidence `{f}`: ______________________________")
        lines.append(f"\nConfirm: `failover runbook confirm {step.id} --as NAME"
                     + "".join(f" --evidence {f}=…" for f in (fields if isinstance(fields, list) else [])) + "`\n")
        return "\n".join(lines)
    args = ", ".join(f"{k}: {placeholder(v)}" for k, v in step.with_.items())
    each = f" — once per {placeholder(step.foreach)} ({step.as_})" if step.foreach is not None else ""
    return (f"**{number} {step.id}** — automated (`{step.uses}`{': ' + args if args else ''}){each}\n\n"
            f"By hand, if the daemon is unavailable:\n\n```sh\n{hand.command(step, cfg)}\n```\n")


def _procedure(index: int, pb: Playbook, cfg: models.Config) -> str:
    lines = [f"### 4.{index} {pb.name}\n", f"{pb.description}\n",
             f"Run it: `failover runbook start {pb.name} --to <TO> --as NAME` (add `--step` to release each "
             "automated step with `failover runbook next`). Without a daemon this command executes the run "
             "itself.\n"]
    for i, stage in enumerate(pb.stages, 1):
        lines.append(f"#### Stage {i}: {stage.name}\n")
        for j, step in enumerate(stage.steps, 1):
            lines.append(_step(f"{i}.{j}", step, cfg))
    return "\n".join(lines)


def measured_durations(store: Store | None) -> dict[int, tuple[str, float]]:
    """Restore group → (run, seconds) from the newest run that restored it."""
    found: dict[int, tuple[str, float]] = {}
    if store is None:
        return found
    for run in store.list_runs(limit=50):
        for rec in store.step_records(run.id):
            m = re.fullmatch(r"restore\[group=(\d+)\]", rec.key)
            if m and rec.status is StepStatus.SUCCEEDED and rec.duration is not None:
                found.setdefault(int(m.group(1)), (f"{run.playbook} run {run.id}", rec.duration))
    return found


def _groups(profile: models.WorkplaceProfile, store: Store | None) -> str:
    measured = measured_durations(store)
    rows: list[list[object]] = []
    for g in profile.groups():
        comps = [c for c in profile.components if c.group == g]
        took = measured.get(g)
        selectors = "; ".join(",".join(f"{k}={v}" for k, v in c.selector.items()) for c in comps if c.selector)
        rows.append([g, profile.group_names.get(g, ""), ", ".join(f"{c.name} ({c.strategy.value})" for c in comps),
                     f"`{selectors}`" if selectors else "", f"{took[1]:.1f} s ({took[0]})" if took else
                     "not measured yet"])
    return ("## 5. Wiederherstellungsgruppen (restore groups, in order)\n\n"
            + _table(["group", "name", "components (strategy)", "label selectors", "last measured restore"], rows))


def _log_page() -> str:
    return ("## 6. Protokoll (log)\n\nWrite down every decision and step with time and name.\n\n"
            + _table(["time", "who", "what (step, decision)", "evidence / signature"], [["", "", "", ""]] * 18))


def build(loaded: loader.Loaded, playbooks: Mapping[str, Playbook], store: Store | None) -> Book:
    cfg, profile = loaded.config, loaded.profile
    title = f"Notfallhandbuch — {cfg.workplace.name}"
    body = [_contacts(cfg), _sites(cfg), _rules(cfg), "## 4. Verfahren (procedures, step by step)\n",
            *(_procedure(i, pb, cfg) for i, pb in enumerate(playbooks.values(), 1)),
            _groups(profile, store), _log_page()]
    text = "\n".join(p.rstrip() + "\n" for p in body)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]  # of what is printed: changes with it
    head = (f"# {title}\n\nEmergency manual of the workplace **{cfg.workplace.name}** (zone `{cfg.workplace.zone}`), "
            f"generated by `failover runbook render` from the config, the workplace profile `{profile.name}` and "
            f"{len(playbooks)} playbooks (content digest `{digest}`). Regenerate it after every change.\n")
    return Book(title=title, markdown=head + "\n" + text)


def to_markdown(book: Book) -> str:
    return book.markdown


CSS = """body{font-family:'DejaVu Sans',sans-serif;font-size:10pt;margin:0 1.2cm;}
h1{font-size:20pt}h2{page-break-before:always;border-bottom:1px solid #444}h1+p+h2{page-break-before:auto}
table{border-collapse:collapse;width:100%;margin:.4em 0}td,th{border:1px solid #888;padding:3px 5px;
vertical-align:top;font-size:9pt}th{background:#eee}pre{background:#f4f4f4;padding:4px;white-space:pre-wrap}
code{font-size:9pt}@page{size:A4;margin:1.5cm 1cm}"""


def to_html(book: Book) -> str:
    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(book.markdown)
    return (f"<!DOCTYPE html>\n<html lang=\"de\"><head><meta charset=\"utf-8\"><title>{html.escape(book.title)}"
            f"</title><style>{CSS}</style></head><body>\n{body}</body></html>\n")


def write_pdf(book: Book, out: Path, *, chromium: str = CHROMIUM, timeout: float = 120) -> None:
    """Print the HTML to PDF with headless Chromium (PermanentError if it is missing or fails)."""
    if shutil.which(chromium) is None:
        raise errors.PermanentError(f"{chromium} not found: install the Debian package chromium for PDF output")
    with tempfile.TemporaryDirectory(prefix="failover-handbook-") as tmp:
        page = Path(tmp) / "Notfallhandbuch.html"
        page.write_text(to_html(book), encoding="utf-8")
        target = out.resolve()
        cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp}/profile",
               "--no-pdf-header-footer", f"--print-to-pdf={target}", page.as_uri()]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            raise errors.PermanentError(f"chromium did not print the PDF within {timeout:.0f}s") from exc
        if proc.returncode != 0 or not target.exists() or target.stat().st_size == 0:
            raise errors.PermanentError(f"chromium failed to print the PDF (exit {proc.returncode}): "
                                        f"{proc.stderr.strip()[-300:]}")
