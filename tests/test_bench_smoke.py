"""The benchmarks still start (they run on their own, not in the suite), and the RTO decomposition
computes what bench/README.md says it does."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bench import rto

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(p.name for p in (REPO / "bench").glob("*.py") if p.name not in ("__init__.py", "peer.py"))


@pytest.mark.parametrize("script", SCRIPTS)
def test_benchmark_starts(script: str) -> None:
    proc = subprocess.run([sys.executable, str(REPO / "bench" / script), "--help"], capture_output=True, text=True,
                          timeout=60, check=False, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "usage" in proc.stdout.lower()


T0 = datetime(2026, 11, 30, 4, 0, tzinfo=UTC)


def at(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat()


def step(key: str, start: float, end: float) -> dict[str, object]:
    return {"key": key, "status": "succeeded", "started_at": at(start), "finished_at": at(end)}


def test_rto_decomposition() -> None:
    run = {"id": "1", "phase": "succeeded", "outage_started_at": at(0), "detected_at": at(2), "verified_at": at(10),
           "steps": [step("fence", 2, 3), step("select-backup", 2, 2.5), step("restore[group=0]", 3, 5),
                     step("restore[group=1]", 5, 8), step("dns-switch", 8.5, 9), step("verify", 9, 10),
                     step("mark-active", 10, 10.2)]}
    d = rto.decompose(run)
    assert d["rto_s"] == 10 and d["detection_s"] == 2
    assert d["critical_path_s"] == 5  # the two restore groups, one after the other
    assert d["overhead_s"] == 3  # fence before the restores, the 0.5 s gap, DNS, verify
    assert d["gaps_s"] == 0.5
    # by the book: detection + every step up to verification in a row + 30 s per stage
    assert d["by_the_book_s"] == round(2 + (1 + 0.5 + 2 + 3 + 0.5 + 1) + 30 * 5, 1)
