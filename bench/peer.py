"""The peer an operations team would otherwise run: Prometheus + blackbox_exporter + one alert rule.

Both run as this benchmark's own processes (Debian ``prometheus`` and
``prometheus-blackbox-exporter``), with their own config, on free loopback ports, probing the same
component endpoints through the same site ingress (with the same Host headers) as the daemon.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import yaml

PROMETHEUS = "/usr/bin/prometheus"
BLACKBOX = "/usr/bin/prometheus-blackbox-exporter"


@dataclass(frozen=True)
class Target:
    name: str
    url: str  #: the component's probe URL at the site's ingress
    host: str  #: the Host header (the component's FQDN)
    critical: bool


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def installed() -> bool:
    return shutil.which(PROMETHEUS) is not None and shutil.which(BLACKBOX) is not None


def install() -> None:
    """Install the Debian packages when missing (root or sudo)."""
    if installed():
        return
    sudo = [] if shutil.which("id") and subprocess.run(["id", "-u"], capture_output=True, text=True).stdout.strip() \
        == "0" else ["sudo"]
    subprocess.run([*sudo, "apt-get", "update", "-qq"], check=True)
    subprocess.run([*sudo, "apt-get", "install", "-y", "-qq", "--no-install-recommends", "prometheus",
                    "prometheus-blackbox-exporter"], check=True, env={"DEBIAN_FRONTEND": "noninteractive",
                                                                      "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})


class Peer:
    """Prometheus scraping blackbox probes every ``interval``; alert ``SiteDown`` when more than
    half of the critical components fail for ``hold``."""

    def __init__(self, workdir: Path, targets: list[Target], *, interval: float, probe_timeout: float,
                 hold: str) -> None:
        self.dir = workdir
        self.targets = targets
        self.interval = interval
        self.probe_timeout = probe_timeout
        self.hold = hold
        self.procs: list[subprocess.Popen[bytes]] = []
        self.prom_url = ""

    def _write(self, bb_port: int) -> tuple[Path, Path]:
        modules = {f"m{i}": {"prober": "http", "timeout": f"{self.probe_timeout}s",
                             "http": {"valid_status_codes": [200], "headers": {"Host": t.host},
                                      "preferred_ip_protocol": "ip4"}}
                   for i, t in enumerate(self.targets)}
        bb = self.dir / "blackbox.yml"
        bb.write_text(yaml.safe_dump({"modules": modules}))
        iv = f"{int(self.interval * 1000)}ms"
        jobs = [{"job_name": f"probe-{i}", "metrics_path": "/probe", "params": {"module": [f"m{i}"]},
                 "scrape_interval": iv, "scrape_timeout": f"{int(self.probe_timeout * 1000) + 50}ms",
                 "static_configs": [{"targets": [t.url], "labels": {"component": t.name,
                                                                    "critical": str(t.critical).lower()}}],
                 "relabel_configs": [{"source_labels": ["__address__"], "target_label": "__param_target"},
                                     {"source_labels": ["__param_target"], "target_label": "instance"},
                                     {"target_label": "__address__", "replacement": f"127.0.0.1:{bb_port}"}]}
                for i, t in enumerate(self.targets)]
        rules = self.dir / "rules.yml"
        rules.write_text(yaml.safe_dump({"groups": [{"name": "site", "interval": iv, "rules": [{
            "alert": "SiteDown",
            "expr": 'count(probe_success{critical="true"} == 0) / count(probe_success{critical="true"}) > 0.5',
            "for": self.hold}]}]}))
        prom = self.dir / "prometheus.yml"
        prom.write_text(yaml.safe_dump({"global": {"scrape_interval": iv, "evaluation_interval": iv},
                                        "rule_files": [str(rules)], "scrape_configs": jobs}))
        return bb, prom

    def start(self) -> None:
        bb_port, prom_port = free_port(), free_port()
        bb, prom = self._write(bb_port)
        log = (self.dir / "peer.log").open("ab")
        self.procs.append(subprocess.Popen([BLACKBOX, f"--config.file={bb}",
                                            f"--web.listen-address=127.0.0.1:{bb_port}"], stdout=log, stderr=log))
        self.procs.append(subprocess.Popen([PROMETHEUS, f"--config.file={prom}",
                                            f"--storage.tsdb.path={self.dir / 'tsdb'}",
                                            f"--web.listen-address=127.0.0.1:{prom_port}"], stdout=log, stderr=log))
        self.prom_url = f"http://127.0.0.1:{prom_port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.prom_url}/-/ready", timeout=1).status_code == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"prometheus did not become ready; see {self.dir / 'peer.log'}")

    async def firing(self, client: httpx.AsyncClient) -> bool:
        body = (await client.get(f"{self.prom_url}/api/v1/alerts", timeout=10)).json()
        return any(a.get("state") == "firing" and a["labels"].get("alertname") == "SiteDown"
                   for a in body["data"]["alerts"])

    async def up(self, client: httpx.AsyncClient) -> bool:
        """Every target scraped at least once and succeeding (the peer is warmed up)."""
        body = (await client.get(f"{self.prom_url}/api/v1/query", params={"query": "min(probe_success)"},
                                 timeout=10)).json()
        result = body["data"]["result"]
        return bool(result) and float(result[0]["value"][1]) == 1.0

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.procs.clear()
