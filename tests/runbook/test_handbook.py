"""The Notfallhandbuch: the checked-in Markdown of the lab config is what the renderer makes now
(stale: regenerate with the command in the failure), and the PDF from Chromium has pages that
render to PNG and hold the procedures' text."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from failover import cli

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "Notfallhandbuch.md"


def test_the_checked_in_handbook_is_current(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("FAILOVER_STATE_DIR", str(tmp_path))  # no runs measured: a stable document
    fresh = tmp_path / "Notfallhandbuch.md"
    assert cli.main(["--config", str(REPO / "config" / "lab.yaml"), "runbook", "render", "-o", str(fresh)]) == 0
    assert fresh.read_text() == DOC.read_text(), (
        "docs/Notfallhandbuch.md is stale: FAILOVER_STATE_DIR=$(mktemp -d) failover runbook render "
        "-o docs/Notfallhandbuch.md")
    text = fresh.read_text()
    for needle in ("## 1. Kontakte und Rollen", "STACKIT Service Desk", "**Down rule**", "### 4.2 failover-ckki",
                   "- [ ] service desks informed", "velero --kubecontext <TO> restore create", "## 6. Protokoll"):
        assert needle in text, needle


def test_the_pdf_pages_render(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAILOVER_STATE_DIR", str(tmp_path))
    pdf = tmp_path / "nf.pdf"
    proc = subprocess.run([sys.executable, "-m", "failover.cli", "--config", str(REPO / "config" / "lab.yaml"),
                           "runbook", "render", "--format", "pdf", "-o", str(pdf)], capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-1000:]
    assert pdf.read_bytes().startswith(b"%PDF")
    subprocess.run(["pdftoppm", "-png", "-r", "40", str(pdf), str(tmp_path / "page")], check=True, timeout=120)
    pages = sorted(tmp_path.glob("page-*.png"))
    assert len(pages) >= 6, pages  # contacts, sites, rules, procedures, groups, log page
    assert all(p.read_bytes().startswith(b"\x89PNG") and p.stat().st_size > 2000 for p in pages)
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    assert "Notfallhandbuch" in text and "krisenstab-decision" in text and "Protokoll" in text
