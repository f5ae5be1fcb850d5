"""The whole demo (`failover lab demo --json`): total time and what it measured."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time


def main() -> None:
    argparse.ArgumentParser(description=__doc__).parse_args()
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "failover.cli", "lab", "demo", "--json"], capture_output=True,
                          text=True, timeout=300, check=False)
    wall = time.monotonic() - t0
    doc = json.loads(proc.stdout) if proc.stdout.strip().startswith("{") else {}
    print(json.dumps({"exit": proc.returncode, "wall_s": round(wall, 1), "phase": doc.get("phase"),
                      "from": doc.get("from"), "to": doc.get("to"), "rto_s": doc.get("rto_s"),
                      "rto_from_detection_s": doc.get("rto_from_detection_s"),
                      "data_loss_window_s": doc.get("data_loss_window_s"),
                      "records_written": doc.get("records_written"), "records_lost": doc.get("records_lost"),
                      "files_written": doc.get("files_written"), "files_lost": doc.get("files_lost")}))


if __name__ == "__main__":
    main()
