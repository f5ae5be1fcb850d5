"""Wall time of `failover lab up` (until the world is ready) and `lab down`, three runs."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time


def run(*words: str, env: dict[str, str]) -> float:
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-m", "failover.cli", *words], check=True, env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
    return time.monotonic() - t0


def main() -> None:
    argparse.ArgumentParser(description=__doc__).parse_args()
    ups, downs = [], []
    for _ in range(3):
        with tempfile.TemporaryDirectory() as state:
            env = {**os.environ, "FAILOVER_STATE_DIR": state}
            ups.append(run("lab", "up", env=env))
            downs.append(run("lab", "down", env=env))
    print(json.dumps({"lab_up_s": [round(x, 2) for x in ups], "lab_up_median_s": round(statistics.median(ups), 2),
                      "lab_down_median_s": round(statistics.median(downs), 2), "cores": os.cpu_count()}))


if __name__ == "__main__":
    main()
