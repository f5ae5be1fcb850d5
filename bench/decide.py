"""Latency of the controller's pure decision on a four-site snapshot."""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime

from failover import controller as c
from failover.config import models
from failover.health.model import Health, SiteView


def main() -> None:
    argparse.ArgumentParser(description=__doc__).parse_args()
    now = datetime.now(UTC)
    sites = {"ionos": SiteView("ionos", "active", Health.DOWN, ("kube: refused",), down_checks=3,
                               outage_started_at=now, jurisdiction="DE", attestations=("C5",)),
             **{n: SiteView(n, "standby", Health.HEALTHY, ready=n != "stackit", jurisdiction="DE",
                            attestations=("C5",), ready_reasons=("backup too old",) if n == "stackit" else ())
                for n in ("stackit", "otc", "scs")}}
    snap = c.Snapshot(now=now, active="ionos", sites=sites)
    policy = c.PolicyView(mode=models.PolicyMode.AUTOMATIC, standby_order=("stackit", "otc", "scs"),
                          attestations=("C5",))
    n = 100_000
    t0 = time.perf_counter()
    for _ in range(n):
        decision = c.decide(snap, policy)
    elapsed = time.perf_counter() - t0
    print(json.dumps({"decisions": n, "us_per_decision": round(elapsed / n * 1e6, 2), "verdict": decision.verdict}))


if __name__ == "__main__":
    main()
