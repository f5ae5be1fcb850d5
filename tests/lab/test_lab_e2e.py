"""The lab end to end, through the CLI: up, DNS to the active ingress, every fault mode, down.

Each fault mode must produce exactly the failure it promises, observed on real sockets: refused,
a timeout, added latency, the kube API gone while the ingress serves, S3 refused, one app 503.
``lab down`` must leave no recorded process behind.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dns.resolver
import httpx
import pytest
import yaml

from failover import cli
from failover.lab import control
from failover.lab import runtime as lab_runtime
from failover.lab.generator import WorkloadGenerator
from tests.lab import kubeauth

REPO = Path(__file__).resolve().parents[2]
SLOW = 0.6


@dataclass
class Lab:
    config: Path
    paths: lab_runtime.LabPaths
    up_seconds: float

    def cli(self, *words: str) -> int:
        return cli.main(["--config", str(self.config), *words])

    @property
    def status(self) -> dict[str, Any]:
        doc = lab_runtime.read_runtime(self.paths)
        assert doc is not None
        return doc

    def site(self, name: str) -> dict[str, Any]:
        return dict(self.status["sites"][name])


def _write_config(tmp: Path) -> Path:
    data = yaml.safe_load((REPO / "config" / "lab.yaml").read_text(encoding="utf-8"))
    data["workplace"]["profile"] = str(REPO / "config" / "workplaces" / "opendesk.yaml")
    data["state_dir"] = str(tmp / "state")
    data["lab"].update(slow_latency=SLOW, ready_delay=0.2, backup_interval="@every 3s")
    path = tmp / "lab.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    tmp = tmp_path_factory.mktemp("lab")
    config = _write_config(tmp)
    paths = lab_runtime.LabPaths(tmp / "state")
    started = time.monotonic()
    code = cli.main(["--config", str(config), "lab", "up", "--json"])
    elapsed = time.monotonic() - started
    assert code == 0, paths.supervisor_log.read_text() if paths.supervisor_log.exists() else ""
    print(f"\nlab up took {elapsed:.2f}s")
    try:
        yield Lab(config=config, paths=paths, up_seconds=elapsed)
    finally:
        cli.main(["--config", str(config), "lab", "down"])


def _resolve(lab: Lab, name: str) -> str:
    dns_info = lab.status["dns"]
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [dns_info["server"]]
    resolver.port = int(dns_info["port"])
    return str(resolver.resolve(name, "A", lifetime=2.0)[0].to_text())


def _app(lab: Lab, site: str, host: str, path: str, *, timeout: float = 2.0) -> httpx.Response:
    info = lab.site(site)
    return httpx.get(f"http://{info['ingress']}:{info['ingress_port']}{path}", headers={"Host": host}, timeout=timeout)


def _kube(lab: Lab, site: str, *, timeout: float = 2.0, authenticated: bool = True) -> httpx.Response:
    info = lab.site(site)
    options = kubeauth.httpx_options(Path(info["kubeconfig"]), credentials=authenticated)
    return httpx.get(f"{info['kube_api']}/api/v1/namespaces", timeout=timeout, **options)  # type: ignore[arg-type]


def _refused(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return False
    except ConnectionRefusedError:
        return True


ACTIVE = "ionos-de-fra"


def test_up_resolves_to_active_ingress_and_serves_nextcloud(lab: Lab) -> None:
    assert lab.up_seconds < 30
    assert _resolve(lab, "files.ckki.lab.") == lab.site(ACTIVE)["ingress"] == "127.0.1.1"
    response = _app(lab, ACTIVE, "files.ckki.lab", "/status.php")
    assert response.status_code == 200
    assert response.json()["installed"] is True
    assert response.headers["X-Lab-Site"] == ACTIVE
    assert _app(lab, ACTIVE, "nope.ckki.lab", "/").status_code == 404
    # restore-strategy apps are absent on a standby until restored; scale ones sit at 0 replicas
    assert _app(lab, "stackit-eu01", "files.ckki.lab", "/status.php").status_code == 503
    assert _app(lab, "stackit-eu01", "office.ckki.lab", "/hosting/discovery").status_code == 503


def test_status_json_contract(lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    assert lab.cli("lab", "status", "--json") == 0
    doc = json.loads(capsys.readouterr().out)
    assert set(doc["sites"]) == {"ionos-de-fra", "stackit-eu01", "otc-eu-de", "scs-pco-prod1"}
    for i, site in enumerate(doc["sites"].values(), start=1):
        assert {"provider", "region", "role", "kube_api", "kubeconfig", "ingress", "ingress_port", "s3",
                "faults"} <= set(site)
        assert site["kube_api"].startswith("https://127.0.0.1:") and Path(site["kubeconfig"]).is_file()
        assert set(site["s3"]) >= {"endpoint", "bucket", "access_key", "secret_key", "region"}
        assert site["ingress"] == f"127.0.{i}.1"
    assert len({s["ingress_port"] for s in doc["sites"].values()}) == 1
    assert {"server", "port", "api", "api_key", "zone"} <= set(doc["dns"])
    assert doc["dns"]["zone"] == "ckki.lab."
    assert doc["workplace"]["hostnames"]["nextcloud"] == "files.ckki.lab"
    assert doc["control"].startswith("http://127.0.0.1:") and doc["pids"]["supervisor"] > 0
    # a second `lab up` is idempotent: same supervisor
    assert lab.cli("lab", "up") == 0
    assert lab.status["pids"]["supervisor"] == doc["pids"]["supervisor"]


def test_break_down_refuses_kube_and_ingress(lab: Lab) -> None:
    site = lab.site(ACTIVE)
    assert lab.cli("lab", "break", ACTIVE, "--mode", "down") == 0
    try:
        assert _refused(site["ingress"], site["ingress_port"])
        with pytest.raises(httpx.ConnectError):
            _kube(lab, ACTIVE)
        live = asyncio.run(control.ControlClient(lab.status["control"]).status())
        assert live["sites"][ACTIVE]["faults"] == ["down"]
    finally:
        assert lab.cli("lab", "heal", ACTIVE) == 0
    assert _app(lab, ACTIVE, "files.ckki.lab", "/status.php").status_code == 200
    assert _kube(lab, ACTIVE).status_code == 200


def test_site_apis_refuse_requests_without_credentials(lab: Lab) -> None:
    token_site, cert_site = ACTIVE, "stackit-eu01"  # IONOS hands out tokens, SKE client certificates
    for site in (token_site, cert_site):
        assert _kube(lab, site).status_code == 200
        refused = _kube(lab, site, authenticated=False)
        assert refused.status_code == 401 and refused.json()["reason"] == "Unauthorized"
    assert "Authorization" in kubeauth.httpx_options(Path(lab.site(token_site)["kubeconfig"]))["headers"]  # type: ignore[operator]
    assert not kubeauth.httpx_options(Path(lab.site(cert_site)["kubeconfig"]))["headers"]


def test_break_blackhole_times_out(lab: Lab) -> None:
    assert lab.cli("lab", "break", ACTIVE, "--mode", "blackhole") == 0
    try:
        with pytest.raises(httpx.ReadTimeout):
            _app(lab, ACTIVE, "files.ckki.lab", "/status.php", timeout=0.4)
        with pytest.raises(httpx.ConnectTimeout):  # HTTPS: the TLS handshake never completes
            _kube(lab, ACTIVE, timeout=0.4)
    finally:
        assert lab.cli("lab", "heal", ACTIVE) == 0
    assert _app(lab, ACTIVE, "files.ckki.lab", "/status.php").status_code == 200


def test_break_slow_adds_latency(lab: Lab) -> None:
    assert lab.cli("lab", "break", ACTIVE, "--mode", "slow") == 0
    try:
        started = time.monotonic()
        assert _app(lab, ACTIVE, "files.ckki.lab", "/status.php", timeout=5).status_code == 200
        assert time.monotonic() - started >= SLOW
        started = time.monotonic()
        assert _kube(lab, ACTIVE, timeout=5).status_code == 200
        assert time.monotonic() - started >= SLOW
    finally:
        assert lab.cli("lab", "heal", ACTIVE) == 0
    started = time.monotonic()
    _app(lab, ACTIVE, "files.ckki.lab", "/status.php")
    assert time.monotonic() - started < SLOW


def test_break_api_only_keeps_ingress(lab: Lab) -> None:
    assert lab.cli("lab", "break", ACTIVE, "--mode", "api-only") == 0
    try:
        with pytest.raises(httpx.ConnectError):
            _kube(lab, ACTIVE)
        assert _app(lab, ACTIVE, "files.ckki.lab", "/status.php").status_code == 200
    finally:
        assert lab.cli("lab", "heal", ACTIVE) == 0


def test_break_storage_refuses_s3(lab: Lab) -> None:
    endpoint = httpx.URL(lab.site(ACTIVE)["s3"]["endpoint"])
    assert not _refused(endpoint.host, endpoint.port or 80)
    assert lab.cli("lab", "break", ACTIVE, "--mode", "storage") == 0
    try:
        assert _refused(endpoint.host, endpoint.port or 80)
        assert _app(lab, ACTIVE, "files.ckki.lab", "/status.php").status_code == 200
    finally:
        assert lab.cli("lab", "heal", ACTIVE) == 0
    assert not _refused(endpoint.host, endpoint.port or 80)


def test_break_component_fails_one_app(lab: Lab) -> None:
    assert lab.cli("lab", "break", ACTIVE, "--mode", "component=nextcloud") == 0
    try:
        assert _app(lab, ACTIVE, "files.ckki.lab", "/status.php").status_code == 503
        assert _app(lab, ACTIVE, "office.ckki.lab", "/hosting/discovery").status_code == 200
        assert _app(lab, ACTIVE, "matrix.ckki.lab", "/health").text == "OK"
    finally:
        assert lab.cli("lab", "heal", ACTIVE) == 0
    deadline = time.monotonic() + 5
    while _app(lab, ACTIVE, "files.ckki.lab", "/status.php").status_code != 200:
        assert time.monotonic() < deadline, "nextcloud did not recover after heal"
        time.sleep(0.05)


def test_bad_break_is_input_error(lab: Lab) -> None:
    assert lab.cli("lab", "break", ACTIVE, "--mode", "meteor") == 2
    assert lab.cli("lab", "break", "nowhere", "--mode", "down") == 2
    assert lab.cli("lab", "break", ACTIVE, "--mode", "component=nosuch") == 2


def test_records_and_generator_count_loss(lab: Lab) -> None:
    dns_info = lab.status["dns"]
    gen = WorkloadGenerator(resolver_host=dns_info["server"], resolver_port=int(dns_info["port"]),
                            zone="ckki.lab.", hostnames=["files.ckki.lab", "chat.ckki.lab"], rate=50,
                            port=lab.site(ACTIVE)["ingress_port"], state_file=lab.paths.root / "gen-test.json")

    async def scenario() -> tuple[list[str], list[str]]:
        task = asyncio.ensure_future(gen.run())
        while len(gen.acked) < 5 and gen.failures == 0 and not task.done():  # noqa: ASYNC110 (a condition)
            await asyncio.sleep(0.05)
        gen.stop()
        await asyncio.wait_for(task, 5)
        client = control.ControlClient(lab.status["control"])
        return await client.records(ACTIVE), await client.records("stackit-eu01")

    active_ids, standby_ids = asyncio.run(scenario())
    assert len(gen.acked) >= 5 and gen.failures == 0
    assert gen.count_lost(active_ids) == 0
    assert gen.count_lost(standby_ids) == len(gen.acked)
    saved = json.loads((lab.paths.root / "gen-test.json").read_text())
    assert set(saved["acked"]) == set(gen.acked)


def test_provider_api_fault(lab: Lab) -> None:
    providers = lab.status.get("providers") or {}
    site = "otc-eu-de"
    kind = lab.site(site).get("provider_kind", "otc")
    if kind not in providers:
        pytest.skip("no provider API emulator for this site yet")
    url = httpx.URL(next(iter(providers[kind]["api"].values())))
    assert not _refused(url.host, url.port or 80)
    assert lab.cli("lab", "break", site, "--mode", "provider-api") == 0
    try:
        assert _refused(url.host, url.port or 80)
    finally:
        assert lab.cli("lab", "heal", site) == 0
    assert not _refused(url.host, url.port or 80)


def test_provider_reports_site_down_through_its_adapter(lab: Lab) -> None:
    from failover.config import loader
    from failover.config import runtime as config_runtime
    from providers import base, registry

    site = "otc-eu-de"
    if "otc" not in (lab.status.get("providers") or {}):
        pytest.skip("no OTC emulator in the lab yet")
    rt = config_runtime.resolve(loader.load(lab.config))

    async def state() -> base.ClusterState:
        provider = registry.create(rt.providers["otc"])
        try:
            return (await provider.cluster_status(rt.sites[site].cluster)).state
        finally:
            await provider.close()

    assert asyncio.run(state()) is base.ClusterState.READY
    assert lab.cli("lab", "break", site, "--mode", "down") == 0
    try:
        assert asyncio.run(state()) is base.ClusterState.DOWN
    finally:
        assert lab.cli("lab", "heal", site) == 0
    assert asyncio.run(state()) is base.ClusterState.READY


def test_down_leaves_no_process(lab: Lab) -> None:
    records = lab_runtime.read_pids(lab.paths)
    names = {r.name for r in records}
    assert {"supervisor", "pdns"} <= names and sum(n.startswith("moto-") for n in names) == 4
    assert lab.cli("lab", "down") == 0
    for record in records:
        assert not lab_runtime.is_alive(record), f"{record.name} (pid {record.pid}) is still running"
        assert not os.path.exists(f"/proc/{record.pid}") or _zombie(record.pid)
    assert not lab.paths.runtime_json.exists()
    assert lab.cli("lab", "down") == 0  # nothing runs: still exit 0


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] == "Z"
    except OSError:
        return True
