"""Leadership under faults: randomized trials on a real three-member etcd cluster.

Harness (lighter than the full lab, honestly so): three daemon-like contenders from
``tests/ha/contenders.py`` drive the real etcd store and the real playbook engine through one
eight-step failover run; the "clouds" are a fake world that records every side effect with the
epoch it carried and does NOT check epochs itself (like a real cloud API). No site probing, no
kube/S3/DNS emulators. Each trial injects one fault at a random step of the run:

* ``leader-kill`` — the leader stops dead (kill -9: nothing released; its lease must expire);
* ``leader-partition`` — the leader is cut off from every etcd member; after the run, it is healed
  and a late write under its old epoch is attempted (it must be refused);
* ``observer-partition`` — a non-leader is cut off from etcd (nothing may change);
* ``member-loss`` — one etcd member is killed (SIGKILL) and restarted after the trial.

Prints: trials, double actors (writes under an epoch after a newer epoch took office; must be 0),
runs completed exactly once, late writes refused, and the median / p95 time from the fault to a
new leader taking office (leader faults only). ``python bench/partitions.py [--trials N] [--ttl S]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import signal
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from failover.core import errors
from failover.lab import etcd as lab_etcd
from tests.ha import contenders as h

SCENARIOS = ("leader-kill", "leader-partition", "observer-partition", "member-loss")


async def wait(predicate: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        await asyncio.sleep(0.02)
    return False


async def trial(cluster: lab_etcd.EtcdCluster, thread: h.ProxyThread, *, scenario: str, ttl: float,
                rng: random.Random) -> dict[str, object]:
    world, offices = h.World(), []
    prefix = f"/bench-{uuid.uuid4().hex[:8]}"
    group = [h.Contender(f"c{i}", cluster, prefix=prefix, world=world, offices=offices, proxies=thread, ttl=ttl)
             for i in range(3)]
    out: dict[str, object] = {"scenario": scenario}
    killed_member = None
    try:
        for c in group:
            await c.start()
        await wait(lambda: any(c.leading for c in group), 20)
        leader = next(c for c in group if c.leading)
        at_step = rng.randrange(0, len(h.STEPS))
        await wait(lambda: sum(w.first for w in world.writes) >= at_step, 20)
        old_epoch = leader.store.fence if leader.store else 0
        t_fault = time.monotonic()
        if scenario == "leader-kill":
            await leader.kill()
        elif scenario == "leader-partition":
            await leader.partition()
        elif scenario == "observer-partition":
            await rng.choice([c for c in group if c is not leader]).partition()
        else:
            killed_member = rng.choice(cluster.members).name
            cluster.kill_member(killed_member)
        out["at_step"] = at_step
        checker = next(c for c in group if c is not leader) if scenario.startswith("leader") else leader
        done = await wait(lambda: checker.store is not None and _safe(lambda: h.run_succeeded_once(checker.store)),
                          90)
        if scenario.startswith("leader"):
            newer = [o for o in offices if (old_epoch or 0) < o.epoch and o.at >= t_fault]
            out["recovery_s"] = round(newer[0].at - t_fault, 3) if newer else None
        out["exactly_once"] = done and all(n == 1 for n in _first(world).values()) and len(_first(world)) == len(
            h.STEPS)
        out["double_actors"] = len(h.double_actors(world, offices))
        if not out["exactly_once"]:
            out["why"] = _why(checker, world)
        if scenario == "leader-partition":
            out["late_write_refused"] = await late_write_refused(leader)
    finally:
        for c in group:
            await c.close()
        if killed_member is not None:
            await cluster.start_member(killed_member)
    return out


def _why(c: h.Contender, world: h.World) -> str:
    """What the run looks like when it did not complete exactly once (for the trial's line)."""
    try:
        runs = c.store.list_runs(limit=5) if c.store else []
    except errors.FailoverError as exc:
        return f"store: {exc}"
    first = _first(world)
    repeated = sorted(k for k, n in first.items() if n > 1)
    return "; ".join([f"runs {[(r.id, r.phase.value, r.error) for r in runs]}",
                      f"effects {len(first)}/{len(h.STEPS)}", f"repeated {repeated}"])


def _safe(fn: object) -> bool:
    try:
        return bool(fn())  # type: ignore[operator]
    except errors.FailoverError:
        return False


async def late_write_refused(old: h.Contender) -> bool:
    await old.kill()
    await old.partition(cut=False)
    assert old.store is not None
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            old.store.append_decision("late write of a deposed leader")
        except errors.StaleEpochError:
            return True
        except errors.TemporaryError:
            await asyncio.sleep(0.1)
            continue
        return False
    return False


def _first(world: h.World) -> dict[str, int]:
    out: dict[str, int] = {}
    for w in world.writes:
        if w.first:
            out[w.key] = out.get(w.key, 0) + 1
    return out


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))], 3)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--ttl", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--only", choices=SCENARIOS, default=None, help="run one scenario only")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    logging.basicConfig(level=logging.ERROR)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # kill PID: stop the etcd members too
    with tempfile.TemporaryDirectory(prefix="failover-bench-etcd-") as tmp:
        cluster = await lab_etcd.start_cluster(Path(tmp), token=f"bench-{uuid.uuid4().hex[:6]}")
        thread = h.ProxyThread()
        results = []
        t0 = time.monotonic()
        try:
            for i in range(args.trials):
                scenario = args.only or (SCENARIOS[i] if i < len(SCENARIOS) else rng.choice(SCENARIOS))
                results.append(await trial(cluster, thread, scenario=scenario, ttl=args.ttl, rng=rng))
                print(json.dumps({"trial": i + 1, **results[-1]}), file=sys.stderr, flush=True)
        finally:
            thread.close()
            await cluster.close()
    recoveries = [float(r["recovery_s"]) for r in results if isinstance(r.get("recovery_s"), float)]
    partitions = [r for r in results if r["scenario"] == "leader-partition"]
    summary = {
        "trials": len(results),
        "by_scenario": {s: sum(1 for r in results if r["scenario"] == s) for s in SCENARIOS},
        "double_actors": sum(int(r["double_actors"]) for r in results),  # type: ignore[call-overload]
        "runs_completed_exactly_once": sum(1 for r in results if r["exactly_once"]),
        "late_writes_refused": f"{sum(1 for r in partitions if r.get('late_write_refused'))}/{len(partitions)}",
        "leadership_recovery_s": {"median": round(statistics.median(recoveries), 3) if recoveries else None,
                                  "p95": pct(recoveries, 0.95), "n": len(recoveries)},
        "lease_ttl_s": args.ttl, "wall_s": round(time.monotonic() - t0, 1),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    asyncio.run(main())
