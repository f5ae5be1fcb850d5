"""Probes that scale: one daemon's watcher against many sites x 17 component probes.

A separate process serves every probe target (each openDesk health path answers 200 for any Host,
``/readyz`` for the Kubernetes API) on loopback, so the watcher under test keeps its own core. For
each size (sites watched by one daemon, every site probed like an active site: 17 components,
their workloads via the Kubernetes API, the API itself) the watcher runs for ``--seconds``;
printed per size: probes per second, CPU seconds per probe, probes/s per core, p99 event-loop lag,
peak RSS, and how many samples were discarded as overload ("no verdict").

One daemon watches one workplace (four sites); a fleet of 100 workplaces is 100 daemons. The
largest size here shows how far one daemon's loop goes within the goal (p99 lag < 100 ms).

    .venv/bin/python bench/scale.py [--sizes 4,16,64,128] [--interval 5] [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from failover.config import loader, runtime
from failover.health.watcher import Watcher
from failover.services import Services

REPO = Path(__file__).resolve().parents[1]


async def serve(port_file: Path) -> None:
    from aiohttp import web

    async def ok(request: web.Request) -> web.Response:
        path = request.path
        if path.startswith(("/apis/", "/api/")):  # a ready workload, whatever is asked for
            return web.json_response({"metadata": {"name": path.rsplit("/", 1)[-1], "generation": 1},
                                      "spec": {"replicas": 1},
                                      "status": {"readyReplicas": 1, "observedGeneration": 1}})
        return web.Response(text="ok PASSED healthy")

    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", ok)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=4096)
    await site.start()
    port_file.write_text(str(runner.addresses[0][1]))
    await asyncio.Event().wait()


def config(tmp: Path, *, sites: int, port: int, interval: float) -> Path:
    (tmp / "workplaces").mkdir(exist_ok=True)
    profile = yaml.safe_load((REPO / "config/workplaces/opendesk.yaml").read_text())
    for comp in profile["components"]:  # the stand-in target answers 200 to every path
        for probe in comp.get("probes", []):
            probe.pop("expect_body", None)
    (tmp / "workplaces" / "opendesk.yaml").write_text(yaml.safe_dump(profile))
    doc = {"version": 1, "workplace": {"zone": "ckki.bench."}, "providers": {"dns": {"kind": "powerdns"}},
           "dns": {"provider": "dns"},
           "health": {"interval": interval, "timeout": 3.0, "fail_after": 3, "recover_after": 2,
                      "verify_tls": False},
           "sites": [{"name": f"s{i}", "provider": "dns", "region": f"r{i}", "role": "active" if i == 0 else "standby",
                      "kube": {"api": f"http://127.0.0.1:{port}"},
                      "ingress": {"address": "127.0.0.1", "port": port, "scheme": "http"}}
                     for i in range(sites)]}
    path = tmp / f"scale-{sites}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


async def measure(path: Path, *, sites: int, seconds: float) -> dict[str, float | int]:
    rt = runtime.resolve(loader.load(path))
    services = Services.open(rt, store=None)
    roles = {s.name: "active" for s in rt.config.sites}  # every site probed like the active one
    watcher = Watcher(services, roles=lambda: roles)
    watcher.start()
    try:
        await asyncio.sleep(rt.config.health.interval * 1.5)  # warm-up: connections, first rounds
        s0, c0, t0 = watcher.samples, time.process_time(), time.monotonic()
        await asyncio.sleep(seconds)
        s1, c1, t1 = watcher.samples, time.process_time(), time.monotonic()
        lag_p99 = watcher.lag.percentile(0.99)
        overloaded = watcher.overloaded
    finally:
        await watcher.stop()
        await services.aclose()
    probes = s1 - s0
    cpu = c1 - c0
    return {"sites": sites, "targets": sum(len(s.checks) for s in watcher.sites.values()),
            "probes_per_s": round(probes / (t1 - t0), 1),
            "cpu_ms_per_probe": round(1000 * cpu / probes, 3) if probes else 0.0,
            "probes_per_s_per_core": round(probes / cpu, 1) if cpu else 0.0,
            "loop_lag_p99_ms": round(1000 * lag_p99, 1), "overloaded": overloaded,
            "rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="4,16,64,128")
    parser.add_argument("--interval", type=float, default=5.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.serve))
        return
    with tempfile.TemporaryDirectory(prefix="failover-scale-") as tmp_name:
        tmp = Path(tmp_name)
        port_file = tmp / "port"
        server = subprocess.Popen([sys.executable, __file__, "--serve", str(port_file)])
        try:
            while not port_file.exists() or not port_file.read_text():
                time.sleep(0.05)
            port = int(port_file.read_text())
            results = []
            for size in (int(x) for x in args.sizes.split(",")):
                # each size in a fresh process: RSS and lag of that size alone
                out = subprocess.run([sys.executable, "-c", (
                    "import asyncio, json, sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]); "
                    "from bench import scale; print(json.dumps(asyncio.run(scale.measure("
                    "Path(sys.argv[2]), sites=int(sys.argv[3]), seconds=float(sys.argv[4])))))"),
                    str(REPO), str(config(tmp, sites=size, port=port, interval=args.interval)), str(size),
                    str(args.seconds)], capture_output=True, text=True, check=True, timeout=600,
                    env={**os.environ, "FAILOVER_STATE_DIR": str(tmp)})
                results.append(json.loads(out.stdout.strip().splitlines()[-1]))
                print(json.dumps(results[-1]), file=sys.stderr)
        finally:
            server.terminate()
            server.wait(timeout=10)
    print(json.dumps({"interval_s": args.interval, "seconds": args.seconds, "sizes": results,
                      "cores": os.cpu_count()}))


if __name__ == "__main__":
    main()
