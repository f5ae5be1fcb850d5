"""Detection against the peer, side by side, in one run on one lab.

The daemon's watcher (the code the daemon runs) and Prometheus + blackbox_exporter + an alert rule
probe the same component endpoints of the active site, through the same ingress, every
``--interval`` seconds. Then, ``--trials`` times, the active site is broken (``down``: connections
refused) at a random moment of the probe cycle, and the benchmark records when the watcher's view
turns the site ``down`` and when the alert fires; then heals and waits until both are green again.
Last, a noisy network without an outage (random single-probe losses and latency spikes) runs for
``--noise`` seconds through both, counting false alarms.

Equal tolerance, as set here: the daemon fails a check after ``fail_after`` (3) consecutive failed
probes spanning ``fail_window`` (default (3 - 1) x interval = 2 s); the peer's rule holds ``for:
2s`` with scrapes and evaluations every interval, and blackbox's probe timeout equals the daemon's
probe timeout (0.9 s). Both call the site down when more than half of the critical components fail.

    .venv/bin/python bench/detect.py [--trials 20] [--noise 180] [--fail-window 2.0]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import peer
from failover.config import loader, runtime
from failover.health.model import Health
from failover.health.watcher import Watcher
from failover.lab.control import ControlClient
from failover.services import Services

REPO = Path(__file__).resolve().parents[1]


def bench_config(tmp: Path, *, interval: float, timeout: float, fail_window: float | None) -> Path:
    data = yaml.safe_load((REPO / "config" / "lab.yaml").read_text())
    data["workplace"]["profile"] = str(REPO / "config" / "workplaces" / "opendesk.yaml")
    health: dict[str, Any] = {"interval": interval, "timeout": timeout, "storage_timeout": 10.0, "fail_after": 3,
                              "recover_after": 2}
    if fail_window is not None:
        health["fail_window"] = fail_window
    data["health"].update(health)
    data["policy"]["mode"] = "manual"
    path = tmp / "bench.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def cli(config: Path, env: dict[str, str], *words: str) -> str:
    return subprocess.run([sys.executable, "-m", "failover.cli", "--config", str(config), *words], env=env,
                          check=True, capture_output=True, text=True, timeout=180).stdout


def targets(rt: runtime.Runtime, site: str) -> list[peer.Target]:
    ep = rt.sites[site]
    out = []
    for comp in rt.profile.components:
        for p in comp.probes:
            if p.type == "http" and p.hostname:
                out.append(peer.Target(comp.name, f"{ep.ingress_scheme}://{ep.ingress_address}:{ep.ingress_port}"
                                       f"{p.path}", rt.fqdn(str(p.hostname)), comp.critical))
                break
    return out


class Race:
    """Both detectors, observed continuously: the moments each turned red or green."""

    def __init__(self, watcher: Watcher, site: str, prom: peer.Peer, http: httpx.AsyncClient) -> None:
        self.watcher, self.site, self.prom, self.http = watcher, site, prom, http
        self.daemon_down: list[float] = []
        self.peer_down: list[float] = []
        self._daemon_state = False
        self._peer_state = False

    def daemon_is_down(self) -> bool:
        return self.watcher.view(self.site).health is Health.DOWN

    async def follow(self) -> None:
        while True:
            now = time.monotonic()
            down = self.daemon_is_down()
            if down and not self._daemon_state:
                self.daemon_down.append(now)
            self._daemon_state = down
            try:
                firing = await self.prom.firing(self.http)
            except httpx.HTTPError:  # a loaded machine: keep the last verdict, ask again
                firing = self._peer_state
            if firing and not self._peer_state:
                self.peer_down.append(time.monotonic())
            self._peer_state = firing
            await asyncio.sleep(0.02)

    def green(self) -> bool:
        return not self._daemon_state and not self._peer_state and \
            self.watcher.view(self.site).health in (Health.HEALTHY, Health.DEGRADED)


async def until(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(0.02)


def stats(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"median_s": None, "p95_s": None}
    ordered = sorted(values)
    return {"median_s": round(statistics.median(ordered), 2),
            "p95_s": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 2)}


async def measure(args: argparse.Namespace, config: Path, state: Path) -> dict[str, Any]:
    os.environ["FAILOVER_STATE_DIR"] = str(state)
    rt = runtime.resolve(loader.load(config))
    assert rt.lab is not None
    active = next(s.name for s in rt.config.sites if s.role.value == "active")
    roles = {s.name: s.role.value for s in rt.config.sites}
    services = Services.open(rt, store=None)
    watcher = Watcher(services, roles=lambda: roles)
    control = ControlClient(str(rt.lab["control"]))
    prom = peer.Peer(state / "peer", targets(rt, active), interval=args.interval, probe_timeout=args.timeout,
                     hold=f"{int(args.hold * 1000)}ms")
    (state / "peer").mkdir()
    prom.start()
    watcher.start()
    rng = random.Random(args.seed)
    async with httpx.AsyncClient() as http:
        race = Race(watcher, active, prom, http)
        follower = asyncio.create_task(race.follow())
        try:
            await until(lambda: watcher.view(active).health in (Health.HEALTHY, Health.DEGRADED), 120,
                        "daemon green")
            while True:
                try:
                    if await prom.up(http):
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.2)
            daemon_t, peer_t = [], []
            for trial in range(args.trials):
                try:
                    await until(race.green, 120, "both green before a trial")
                except TimeoutError:
                    view = watcher.view(active)
                    raise TimeoutError(f"not green: daemon {view.health.value} {view.reasons}, "
                                       f"peer firing {race._peer_state}") from None
                await asyncio.sleep(rng.uniform(0, args.interval))
                d0, p0 = len(race.daemon_down), len(race.peer_down)
                await control.break_site(active, "down")
                t0 = time.monotonic()
                await until(lambda d0=d0, p0=p0: len(race.daemon_down) > d0 and len(race.peer_down) > p0, 60,
                            f"trial {trial}: both detect")
                daemon_t.append(race.daemon_down[d0] - t0)
                peer_t.append(race.peer_down[p0] - t0)
                await control.heal(active)
                print(f"trial {trial + 1}/{args.trials}: daemon {daemon_t[-1]:.2f} s, peer {peer_t[-1]:.2f} s",
                      file=sys.stderr)
            await until(race.green, 120, "both green before the noise")
            d0, p0 = len(race.daemon_down), len(race.peer_down)
            events = await noise(control, active, rng, seconds=args.noise)
            await asyncio.sleep(args.hold + 2 * args.interval)  # let the last spike's verdicts settle
            false_daemon, false_peer = len(race.daemon_down) - d0, len(race.peer_down) - p0
        finally:
            follower.cancel()
            await watcher.stop()
            await services.aclose()
            prom.stop()
    d, p = stats(daemon_t), stats(peer_t)
    hours = args.noise / 3600
    return {
        "trials": args.trials, "interval_s": args.interval, "probe_timeout_s": args.timeout,
        "daemon_fail_window_s": args.fail_window if args.fail_window is not None else 2 * args.interval,
        "peer_for_s": args.hold,
        "daemon_detection": d, "peer_detection": p,
        "ratio_median": round(d["median_s"] / p["median_s"], 2) if d["median_s"] and p["median_s"] else None,
        "noise_s": args.noise, "noise_events": events,
        "false_alarms": {"daemon": false_daemon, "peer": false_peer},
        "false_alarms_per_hour": {"daemon": round(false_daemon / hours, 1), "peer": round(false_peer / hours, 1)},
        "cores": os.cpu_count(),
    }


async def noise(control: ControlClient, site: str, rng: random.Random, *, seconds: float) -> dict[str, int]:
    """Random single-probe losses (refused for 0.15 s) and latency spikes (``slow`` for 0.3-1.5 s)."""
    counts = {"losses": 0, "spikes": 0}
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        await asyncio.sleep(rng.expovariate(1 / 3.0))
        if rng.random() < 0.5:
            await control.break_site(site, "down")
            await asyncio.sleep(0.15)
            counts["losses"] += 1
        else:
            await control.break_site(site, "slow")
            await asyncio.sleep(rng.uniform(0.3, 1.5))
            counts["spikes"] += 1
        await control.heal(site)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--noise", type=float, default=180.0, help="seconds of noisy network without an outage")
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--timeout", type=float, default=0.9)
    parser.add_argument("--hold", type=float, default=2.0, help="the peer's `for:` in seconds")
    parser.add_argument("--fail-window", type=float, default=None, help="the daemon's health.fail_window")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    peer.install()
    with tempfile.TemporaryDirectory(prefix="failover-detect-") as tmp:
        state = Path(tmp)
        config = bench_config(state, interval=args.interval, timeout=args.timeout, fail_window=args.fail_window)
        env = {**os.environ, "FAILOVER_STATE_DIR": str(state)}
        cli(config, env, "lab", "up")
        try:
            result = asyncio.run(measure(args, config, state))
        finally:
            cli(config, env, "lab", "down")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
