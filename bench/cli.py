"""Start-up and answer times of the read commands: median of 10 wall-clock runs each.

Goal: `--help`, `status` (from the daemon's fresh snapshot), `history`, `config validate` and
the completion helper (`__complete run failover --to ''`: site names on <Tab>) answer in < 0.3 s.
On the lab (default): the lab comes up in a temporary state directory, `failover daemon --once`
writes a real status snapshot (and again right before the `status` runs, so it is fresh), then
every command runs as an operator would; `status --live` (a probe round of every site) is
measured three times for comparison. `--no-lab` writes a snapshot by hand instead and skips
`--live`. Prints one JSON line; the load average says how busy the machine was (the goal is for
a quiet machine); ``cpu_median_s`` (user + system time of the command) changes little with the
load.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

GOAL_S = 0.3
RUNS = 10


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cli(*words: str, env: dict[str, str]) -> tuple[float, float]:
    """(wall, CPU) seconds of one run; CPU time hardly depends on how busy the machine is."""
    t0, c0 = time.perf_counter(), _cpu()
    subprocess.run([sys.executable, "-m", "failover.cli", *words], check=True, env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
    return time.perf_counter() - t0, _cpu() - c0


def series(*words: str, env: dict[str, str], runs: int = RUNS) -> dict[str, float]:
    walls, cpus = zip(*(cli(*words, env=env) for _ in range(runs)), strict=True)
    return {"median_s": round(statistics.median(walls), 3), "min_s": round(min(walls), 3),
            "cpu_median_s": round(statistics.median(cpus), 3)}


def hand_made_snapshot(state: Path) -> None:
    from failover.store import queries

    store = queries.open_store(state)
    sites = {name: {"provider": name.split("-")[0], "region": "r", "role": "standby", "health": "healthy",
                    "reasons": [], "ready": True, "ready_reasons": [], "replication_lag_s": 1.0}
             for name in ("ionos-de-fra", "stackit-eu01", "otc-eu-de", "scs-pco-prod1")}
    sites["ionos-de-fra"]["role"] = "active"
    store.set_state("status", {"active": "ionos-de-fra", "paused": False, "epoch": 0, "run": None,
                               "updated_at": datetime.now(UTC).isoformat(), "sites": sites})
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-lab", action="store_true", help="a hand-made snapshot instead of the lab")
    lab = not parser.parse_args().no_lab
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp)
        env = {**os.environ, "FAILOVER_STATE_DIR": str(state), "COLUMNS": "80"}
        result: dict[str, object] = {"goal_s": GOAL_S, "runs": RUNS, "lab": lab}
        try:
            if lab:
                cli("lab", "up", env=env)
                cli("daemon", "--once", env=env)
            else:
                hand_made_snapshot(state)
            result["help"] = series("--help", env=env)
            result["config_validate"] = series("config", "validate", env=env)
            result["history"] = series("history", env=env)
            result["complete_site"] = series("__complete", "run", "failover", "--to", "", env=env)
            if lab:
                cli("daemon", "--once", env=env)  # a fresh snapshot for the status runs
                result["status_live"] = series("status", "--live", env=env, runs=3)
            result["status"] = series("status", env=env)
        finally:
            if lab:
                cli("lab", "down", env=env)
    timed = [v for v in result.values() if isinstance(v, dict) and v is not result.get("status_live")]
    result["meets_goal"] = all(float(v["median_s"]) < GOAL_S for v in timed)
    result["load_average_1m"] = round(os.getloadavg()[0], 2)
    result["cores"] = os.cpu_count()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
