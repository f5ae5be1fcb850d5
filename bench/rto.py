"""Where the RTO goes: N lab failovers (``failover lab demo --json``), decomposed from the journal.

For each run: detection (outage start -> the daemon's decision), every step and the gaps between
them, and the **critical path** of the restore graph: the restore groups must run one after the
other (each waits for the previous group's workloads), so the critical path is the sum of the
``restore[group=N]`` steps (restore + readiness). Orchestration overhead = RTO - detection -
critical path: fence, backup selection, DNS, verification, hand-over and every gap between them.

The by-the-book comparison is a person following the runbook with the same step durations:
every step one after the other (nothing overlapped, DNS after everything) and a 30 s pause for
each manual confirmation (one per stage of the playbook), plus the same detection.

    .venv/bin/python bench/rto.py [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from datetime import datetime
from typing import Any

HUMAN_PAUSE_S = 30.0


def parse(stamp: str | None) -> datetime | None:
    return datetime.fromisoformat(stamp) if stamp else None


def decompose(run: dict[str, Any]) -> dict[str, Any]:
    steps = [s for s in run["steps"] if s["status"] == "succeeded" and s["started_at"] and s["finished_at"]]
    outage = parse(run.get("outage_started_at"))
    detected = parse(run.get("detected_at"))
    verified = parse(run.get("verified_at"))
    if outage is None or detected is None or verified is None or not steps:
        raise ValueError(f"run {run.get('id')} lacks its measurements (phase {run.get('phase')})")
    durations: dict[str, float] = {}
    for s in steps:
        durations[s["key"]] = round((parse(s["finished_at"]) - parse(s["started_at"])).total_seconds(), 3)  # type: ignore[operator]
    restores = {k: v for k, v in durations.items() if k.startswith("restore")}
    critical = sum(restores.values())
    rto = (verified - outage).total_seconds()
    detection = (detected - outage).total_seconds()
    overhead = rto - detection - critical
    # gaps: time between one step's end and the next step's start, on the path to verification
    ordered = sorted(steps, key=lambda s: s["started_at"])
    gaps = 0.0
    horizon = detected
    for s in ordered:
        start, end = parse(s["started_at"]), parse(s["finished_at"])
        assert start is not None and end is not None
        if end > verified:
            continue
        if start > horizon:
            gaps += (start - horizon).total_seconds()
        horizon = max(horizon, end)
    before_verified = [s for s in ordered if parse(s["finished_at"]) <= verified]  # type: ignore[operator]
    stages = len({s["key"].split("[")[0] for s in before_verified})
    by_the_book = detection + sum(durations[s["key"]] for s in before_verified) + HUMAN_PAUSE_S * stages
    return {
        "run": run.get("id"), "rto_s": round(rto, 2), "detection_s": round(detection, 2),
        "critical_path_s": round(critical, 2), "overhead_s": round(overhead, 2),
        "overhead_share_of_critical_path": round(overhead / critical, 2) if critical else None,
        "gaps_s": round(gaps, 2), "steps_s": durations,
        "by_the_book_s": round(by_the_book, 1), "ratio_to_by_the_book": round(rto / by_the_book, 2),
    }


def one_failover() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="failover-rto-") as state:
        proc = subprocess.run([sys.executable, "-m", "failover.cli", "lab", "demo", "--json"], capture_output=True,
                              text=True, timeout=600, check=False, env={**os.environ, "FAILOVER_STATE_DIR": state})
    if proc.returncode != 0 or not proc.stdout.strip().startswith("{"):
        raise RuntimeError(f"lab demo failed ({proc.returncode}): {proc.stderr[-1500:]}")
    doc: dict[str, Any] = json.loads(proc.stdout)
    return decompose(doc["run"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    runs = []
    for i in range(args.runs):
        runs.append(one_failover())
        print(json.dumps(runs[-1]), file=sys.stderr)
        print(f"failover {i + 1}/{args.runs} measured", file=sys.stderr)

    def med(key: str) -> float:
        return round(statistics.median(float(r[key]) for r in runs), 2)

    print(json.dumps({"runs": len(runs), "rto_median_s": med("rto_s"), "detection_median_s": med("detection_s"),
                      "critical_path_median_s": med("critical_path_s"), "overhead_median_s": med("overhead_s"),
                      "overhead_share_median": med("overhead_share_of_critical_path"),
                      "by_the_book_median_s": med("by_the_book_s"), "ratio_to_by_the_book_median":
                      med("ratio_to_by_the_book"), "per_run": runs, "cores": os.cpu_count()}))


if __name__ == "__main__":
    main()
