"""The lab supervisor: one background process that owns the whole simulated world.

``failover lab up`` starts ``python -m failover.lab.supervisor --config … --state-dir …`` in its
own session. The supervisor starts every part on loopback (one ``moto_server`` per provider,
PowerDNS, per site a Kubernetes emulator with the workload and Velero controllers, the seeded
openDesk objects, an ingress, and the provider API emulators), puts a fault proxy in front of
everything a client can reach, serves the control API, writes ``runtime.json`` once the world is
ready, and on SIGTERM stops everything it started. Child PIDs are recorded as they start, so
``lab down`` cleans up even after a crash of this process.

Faults are *derived*: each site keeps a set of fault modes, and every proxy's mode and the
provider's cluster view are recomputed from all of them after each break/heal, so overlapping
faults heal cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import logging
import secrets as pysecrets
import signal
import sys
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from failover import s3
from failover.config import loader, models
from failover.core import errors, secrets, tasks
from failover.lab import control, observers, pdns, seed, volumes
from failover.lab import ingress as ingress_mod
from failover.lab import postgres as lab_postgres
from failover.lab import runtime as lab_runtime
from failover.lab.access import LabAccess
from failover.lab.kube import types as kt
from failover.lab.kube.cluster import Cluster
from failover.lab.motoserver import MotoServer, start_moto_server
from failover.lab.proxy import FaultProxy, ProxyMode
from failover.lab.velero_controller import VeleroController
from providers import base
from providers.emulator import EmulatorBase
from providers.powerdns.backend import PowerDnsBackend, dotted

logger = logging.getLogger("failover.lab.supervisor")

SUPERVISOR_COMMAND = "failover.lab.supervisor"
S3_REGION = "us-east-1"
_PRECEDENCE = (ProxyMode.DOWN, ProxyMode.BLACKHOLE, ProxyMode.SLOW)


@dataclass
class ProviderStorage:
    """One provider's object storage: a ``moto_server`` behind a fault proxy."""

    kind: str
    moto: MotoServer
    proxy: FaultProxy
    access_key: str
    secret_key: str = field(repr=False)

    def location(self, bucket: str) -> s3.S3Location:
        return s3.S3Location(endpoint=self.proxy.url, bucket=bucket, region=S3_REGION,
                             access_key=SecretStr(self.access_key), secret_key=SecretStr(self.secret_key))


@dataclass
class ProviderApi:
    """One provider's API emulator behind a fault proxy."""

    kind: str
    emulator: EmulatorBase
    proxy: FaultProxy
    dns: PowerDnsBackend
    extra: list[FaultProxy] = field(default_factory=list)  #: e.g. SCS's management cluster API
    options: dict[str, str] = field(default_factory=dict)  #: lab-only settings, e.g. the lab CA file

    async def set_available(self, available: bool) -> None:
        for proxy in (self.proxy, *self.extra):
            await proxy.set_mode(ProxyMode.PASS if available else ProxyMode.DOWN)

    def describe(self) -> dict[str, Any]:
        settings = self.emulator.settings()  # type: ignore[attr-defined]
        api = {k: str(v).replace(self.emulator.url, self.proxy.url) for k, v in settings.endpoints.items()}
        creds: dict[str, str] = self.emulator.lab_credentials()  # type: ignore[attr-defined]
        return {"api": api, "credentials": creds, "options": {**settings.options, **self.options}}

    async def close(self) -> None:
        for proxy in (self.proxy, *self.extra):
            await proxy.close()
        await self.emulator.close()
        await self.dns.close()


@dataclass
class SiteParts:
    """One site's running parts and its current faults."""

    site: models.Site
    index: int
    provider_kind: str
    cluster: Cluster
    kube_proxy: FaultProxy
    ingress: ingress_mod.Ingress
    velero: VeleroController
    bucket: str
    cluster_id: str
    project: str | None
    ingress_proxy: FaultProxy | None = None
    faults: set[str] = field(default_factory=set)
    kubeconfig: Path | None = None  #: the site's admin kubeconfig file (lab CA, token or certificate)

    @property
    def kube_api(self) -> str:
        return f"https://{self.kube_proxy.address}"

    @property
    def address(self) -> str:
        return f"127.0.{self.index}.1"

    def describe(self, storage: ProviderStorage) -> dict[str, Any]:
        loc = storage.location(self.bucket)
        return {
            "provider": self.site.provider, "provider_kind": self.provider_kind, "region": self.site.region,
            "role": self.site.role.value, "kube_api": self.kube_api,
            "kubeconfig": str(self.kubeconfig) if self.kubeconfig else None, "ingress": self.address,
            "ingress_port": self.ingress_proxy.port if self.ingress_proxy else self.ingress.port,
            "s3": {"endpoint": loc.endpoint, "bucket": loc.bucket, "access_key": storage.access_key,
                   "secret_key": storage.secret_key, "region": loc.region},
            "faults": sorted(self.faults), "cluster": self.cluster_id, "project": self.project,
        }

    async def close(self) -> None:
        for step in (self.velero.stop(), self.kube_proxy.close(), self.ingress.close(),
                     self.ingress_proxy.close() if self.ingress_proxy else asyncio.sleep(0), self.cluster.close()):
            try:
                await asyncio.wait_for(step, timeout=5.0)
            except Exception as exc:
                logger.warning("stopping a part of %s failed: %s", self.site.name, secrets.redact(str(exc)))


def _mode(faults: set[str], *modes: tuple[str, ProxyMode]) -> ProxyMode:
    """The strongest proxy mode implied by ``faults`` (down > blackhole > slow > pass)."""
    implied = {mode for fault, mode in modes if fault in faults}
    return next((m for m in _PRECEDENCE if m in implied), ProxyMode.PASS)


def _host_port(url: str) -> tuple[str, int]:
    parsed = urllib.parse.urlsplit(url)
    return parsed.hostname or "127.0.0.1", int(parsed.port or 80)


def _velero_objects(site: models.Site, *, bucket: str, active: bool, lab: models.LabConfig,
                    namespaces: list[str]) -> list[tuple[kt.ResourceType, kt.KubeObject]]:
    ns = site.velero_namespace
    bsl = {"apiVersion": "velero.io/v1", "kind": "BackupStorageLocation",
           "metadata": {"name": site.bsl, "namespace": ns},
           "spec": {"provider": "aws", "default": True, "accessMode": "ReadWrite" if active else "ReadOnly",
                    "objectStorage": {"bucket": bucket},
                    "config": {"region": S3_REGION, "s3ForcePathStyle": "true"}}}
    objects: list[tuple[kt.ResourceType, kt.KubeObject]] = [
        (kt.NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}), (kt.VELERO_BSLS, bsl)]
    if active:
        objects.append((kt.VELERO_SCHEDULES, {
            "apiVersion": "velero.io/v1", "kind": "Schedule", "metadata": {"name": "opendesk", "namespace": ns},
            "spec": {"schedule": lab.backup_interval, "template": {
                "includedNamespaces": namespaces, "storageLocation": site.bsl, "ttl": "720h0m0s"}}}))
    return objects


class World:
    """Every running part of the lab; implements :class:`failover.lab.control.LabWorld`."""

    def __init__(self, loaded: loader.Loaded, paths: lab_runtime.LabPaths) -> None:
        if loaded.config.lab is None:
            raise errors.InputError(f"{loaded.path}: not a lab config (it has no `lab:` section)")
        self.loaded = loaded
        self.config = loaded.config
        self.lab: models.LabConfig = loaded.config.lab
        self.profile = loaded.profile
        self.paths = paths
        self.zone = dotted(self.config.workplace.zone)
        self.dns: pdns.PowerDnsProcess | None = None
        self.dns_backend: PowerDnsBackend | None = None
        self.motos: dict[str, MotoServer] = {}
        self.storage: dict[str, ProviderStorage] = {}
        self.sites: dict[str, SiteParts] = {}
        self.emulators: dict[str, ProviderApi] = {}
        self.control: control.ControlServer | None = None
        self.dns_api_proxy: FaultProxy | None = None  #: the DNS provider's API as clients reach it
        self._management: Cluster | None = None
        self.access = LabAccess(paths.root)
        self.coordination: observers.Coordination | None = None  #: etcd cluster + observers' paths
        self.started_at = time.time()
        self.databases: lab_postgres.LabDatabases | None = None  #: ``lab: {postgres: true}``

    # --- lifecycle ------------------------------------------------------------------------------
    async def start(self) -> None:
        t0 = time.monotonic()
        await self._start_processes()
        logger.info("processes up in %.2fs", time.monotonic() - t0)
        ingress_port = self.lab.ingress_port
        databases = asyncio.ensure_future(self._start_databases()) if self.lab.postgres else None
        try:
            built = await asyncio.gather(*(
                self._start_site(site, index=i) for i, site in enumerate(self.config.sites, start=1)))
        except BaseException:
            if databases is not None:
                await tasks.cancel_and_wait(databases)
            raise
        self.sites = {s.site.name: s for s in built}
        logger.info("sites up in %.2fs", time.monotonic() - t0)
        await self._start_ingress_proxies(ingress_port)
        if databases is not None:
            await databases
            for name, parts in self.sites.items():  # the apps commit their records to the site's database
                parts.ingress.database = lab_postgres.RecordsDb(self.databases.sites[name].port)  # type: ignore[union-attr]
            logger.info("databases up in %.2fs", time.monotonic() - t0)
        await self._start_observer_paths()
        await self._bootstrap_dns()
        await self._start_provider_apis()
        logger.info("DNS and provider APIs up in %.2fs", time.monotonic() - t0)
        self.control = control.ControlServer(self)
        await self.control.start()
        await self._wait_active_ready(timeout=max(10.0, self.lab.ready_delay * 10))
        lab_runtime.write_runtime(self.paths, self.status())
        logger.info("lab ready in %.2fs", time.monotonic() - t0)

    async def _start_processes(self) -> None:
        self.paths.ensure()

        def record(name: str, command: str) -> Any:
            return lambda pid: lab_runtime.record_pid(self.paths, name=name, pid=pid, command=command)

        async def moto(kind: str) -> None:  # recorded when spawned, before it serves (a kill meanwhile leaks nothing)
            server = await start_moto_server(host="127.0.0.1", log_path=self.paths.logs / f"moto-{kind}.log",
                                             on_spawn=record(f"moto-{kind}", "moto_server"))
            self.motos[kind] = server

        def record_pdns(pid: int, directory: Path) -> None:
            lab_runtime.record_pid(self.paths, name="pdns", pid=pid, command="pdns_server", directory=str(directory))

        async def dns() -> None:
            self.dns = await pdns.start_powerdns(log_path=self.paths.logs / "pdns.log", on_spawn=record_pdns)

        async def coordination() -> None:
            self.coordination = await observers.Coordination.start(
                self.paths.root / "etcd", members=self.lab.etcd_members,
                on_spawn=lambda m: lab_runtime.record_pid(self.paths, name=m.name, pid=m.pid, command="etcd"))

        kinds = sorted({self.config.providers[s.provider].kind for s in self.config.sites})
        await asyncio.gather(dns(), coordination(), *(moto(k) for k in kinds))
        assert self.dns is not None
        self.dns_api_proxy = FaultProxy(target_host=self.dns.host, target_port=self.dns.api_port,
                                        slow_latency=self.lab.slow_latency, name="DNS provider API")
        await self.dns_api_proxy.start()
        for kind in kinds:
            proxy = FaultProxy(target_host=self.motos[kind].host, target_port=self.motos[kind].port,
                               slow_latency=self.lab.slow_latency, name=f"{kind} s3")
            await proxy.start()
            self.storage[kind] = ProviderStorage(kind=kind, moto=self.motos[kind], proxy=proxy,
                                                 access_key=f"lab-{kind}-access", secret_key=pysecrets.token_hex(16))

    def _kind(self, site: models.Site) -> str:
        return str(self.config.providers[site.provider].kind)

    async def _start_site(self, site: models.Site, *, index: int) -> SiteParts:
        kind = self._kind(site)
        storage = self.storage[kind]
        bucket = f"velero-{site.name}"
        await s3.ensure_bucket(storage.location(bucket))
        for _, data in self.profile.buckets():  # the apps' object storage on the site's provider
            await s3.ensure_bucket(storage.location(site.storage.app_buckets.get(data.bucket, data.bucket)))
        cluster = await Cluster.start(name=site.name, host="127.0.0.1", port=0, ready_delay=self.lab.ready_delay,
                                      tls=self.access.tls, auth=self.access.authenticator(site.name, kind))
        api_host, api_port = _host_port(cluster.api.url)
        kube_proxy = FaultProxy(target_host=api_host, target_port=api_port, slow_latency=self.lab.slow_latency,
                                name=f"{site.name} kube API")
        await kube_proxy.start()
        active = site.role is models.Role.ACTIVE
        seed.seed(cluster.store, self.profile, active=active)
        namespaces = sorted({c.namespace for c in self.profile.components})
        for rt, obj in _velero_objects(site, bucket=bucket, active=active, lab=self.lab, namespaces=namespaces):
            with contextlib.suppress(kt.AlreadyExists):
                cluster.store.create(rt, obj)
        site_volumes = volumes.VolumeStore(volumes.site_root(self.paths.root, site.name)).reset()
        velero = VeleroController(cluster.store, locations={site.bsl: storage.location(bucket)},
                                  namespace=site.velero_namespace, sync_period=self.lab.sync_period,
                                  item_delay=self.lab.restore_item_delay, volumes=site_volumes)
        await velero.start()
        site_ingress = ingress_mod.Ingress(site=site.name, store=cluster.store, profile=self.profile, zone=self.zone,
                                           volumes=site_volumes)
        await site_ingress.start(host=f"127.0.{index}.1")
        ref = site.cluster_ref()
        # provider-side ids as each vendor shapes them: UUIDs (IONOS, OTC), an SKE name of at most
        # 11 characters (STACKIT), the Cluster API object's name (SCS)
        generated = {"ionos": str(uuid.uuid4()), "otc": str(uuid.uuid4()), "stackit": f"opendesk-{index}"}
        cluster_id = ref.cluster if site.cluster else generated.get(kind, site.name)
        project = ref.project or {"stackit": str(uuid.uuid4()), "scs": "failover-lab"}.get(kind)
        parts = SiteParts(site=site, index=index, provider_kind=kind, cluster=cluster, kube_proxy=kube_proxy,
                          ingress=site_ingress, velero=velero, bucket=bucket, cluster_id=cluster_id, project=project)
        _, parts.kubeconfig = self.access.kubeconfig(site.name, parts.kube_api)
        return parts

    async def _start_databases(self) -> None:
        """Per site a database place; the active site's cluster archives its WAL to every standby."""
        found = self.profile.databases()
        if not found:
            raise errors.InputError(f"{self.loaded.path}: lab.postgres needs a component with "
                                    "`data: [{kind: postgresql}]` in the workplace profile")
        data = found[0][1]
        root = lab_postgres.LabDatabases.make_root()
        self.databases = lab_postgres.LabDatabases(root=root, stanza=data.stanza, repo_path=data.repo_path,
                                                   archive_timeout=self.lab.archive_timeout, region=S3_REGION)
        storages = {k: lab_postgres.Storage(kind=k, proxy_port=st.proxy.port, access_key=st.access_key,
                                            secret_key=st.secret_key, location=st.location)
                    for k, st in self.storage.items()}
        plans = [lab_postgres.SitePlan(name=site.name, kind=self._kind(site),
                                       bucket=site.storage.app_buckets.get(data.bucket, data.bucket),
                                       active=site.role is models.Role.ACTIVE,
                                       standby=site.role is models.Role.STANDBY) for site in self.config.sites]

        def record(name: str, pid: int, command: str) -> None:  # stunnel's record carries the directory
            lab_runtime.record_pid(self.paths, name=name, pid=pid, command=command,
                                   directory=str(root) if name == "stunnel" else "")

        await self.databases.start(plans=plans, storages=storages, ca_file=self.access.ca.ca_file,
                                   cert=self.access.ca.server_cert_file, key=self.access.ca.server_key_file,
                                   logs=self.paths.logs, on_spawn=record)

    async def _start_ingress_proxies(self, wanted: int) -> None:
        """One proxy per site on ``127.0.N.1:port``, the same port everywhere (a free one if 0)."""
        parts = list(self.sites.values())
        for _ in range(20):
            port = wanted or pdns.free_port(parts[0].address)
            proxies: list[FaultProxy] = []
            try:
                for p in parts:
                    proxy = FaultProxy(target_host=p.ingress.host, target_port=p.ingress.port,
                                       listen_host=p.address, listen_port=port,
                                       slow_latency=self.lab.slow_latency, name=f"{p.site.name} ingress")
                    await proxy.start()
                    proxies.append(proxy)
            except OSError as exc:
                for proxy in proxies:
                    await proxy.close()
                if wanted:
                    raise errors.PermanentError(f"lab.ingress_port {wanted} is in use: {exc}") from exc
                continue
            for p, proxy in zip(parts, proxies, strict=True):
                p.ingress_proxy = proxy
            return
        raise errors.TemporaryError("no port was free on every site's ingress address")

    async def _start_observer_paths(self) -> None:
        """Each observer's own proxies in front of every site's kube API and ingress proxies."""
        if self.coordination is None or not self.lab.observers:
            return
        targets = [observers.SiteTargets(
            name=p.site.name, address=p.address, kube=(p.kube_proxy.host, p.kube_proxy.port),
            ingress=(p.address, p.ingress_proxy.port if p.ingress_proxy else p.ingress.port))
            for p in self.sites.values()]
        await self.coordination.add_observers(self.lab.observers, targets)

    async def _start_provider_apis(self) -> None:
        """Phase 2: serve each provider's API emulator (where one exists) behind a fault proxy."""
        assert self.dns is not None
        for kind in sorted(self.storage):
            try:
                module = importlib.import_module(f"providers.{kind}.emulator")
            except ModuleNotFoundError:
                continue
            classes = [v for v in vars(module).values() if isinstance(v, type) and issubclass(v, EmulatorBase)
                       and v is not EmulatorBase and v.__module__ == module.__name__]
            if not classes:
                continue
            backend = PowerDnsBackend(api_url=self.dns.api_url, api_key=self.dns.api_key)
            kwargs: dict[str, Any] = {"dns": backend}
            extra: list[FaultProxy] = []
            if kind == "scs":
                management_auth = self.access.management_authenticator()
                self._management = await Cluster.start(name="scs-management", host="127.0.0.1", port=0,
                                                       ready_delay=self.lab.ready_delay, tls=self.access.tls,
                                                       auth=management_auth)
                m_host, m_port = _host_port(self._management.api.url)
                m_proxy = FaultProxy(target_host=m_host, target_port=m_port, slow_latency=self.lab.slow_latency,
                                     name="scs management API")
                await m_proxy.start()
                extra.append(m_proxy)
                kwargs.update(management=self._management.store, management_url=f"https://{m_proxy.address}")
            emu = classes[0](**kwargs)
            await emu.start()
            if kind == "scs":  # the management cluster admits the provider's management token
                management_auth.tokens[emu.management_token] = "scs-management-reader"  # type: ignore[attr-defined]
            emu.add_zone(self.zone)  # type: ignore[attr-defined]
            for parts in self.sites.values():
                if parts.provider_kind == kind:
                    ref = base.ClusterRef(region=parts.site.region, cluster=parts.cluster_id, project=parts.project)
                    emu.add_cluster(ref=ref, name=parts.site.name,  # type: ignore[attr-defined]
                                    kubeconfig=self.access.kubeconfig(parts.site.name, parts.kube_api)[0])
            proxy = FaultProxy(target_host="127.0.0.1", target_port=emu.port, slow_latency=self.lab.slow_latency,
                               name=f"{kind} API")
            await proxy.start()
            options = {"management_ca_file": str(self.access.ca.ca_file)} if kind == "scs" else {}
            self.emulators[kind] = ProviderApi(kind=kind, emulator=emu, proxy=proxy, dns=backend, extra=extra,
                                               options=options)

    async def _wait_active_ready(self, *, timeout: float) -> None:
        active = self.sites[self.config.active_site().name]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(ingress_mod.component_ready(active.cluster.store, c) for c in self.profile.components):
                return
            await asyncio.sleep(0.05)
        raise errors.TemporaryError(f"the active site's workloads were not ready within {timeout:.0f}s")

    async def _apply_faults(self, parts: SiteParts) -> None:
        """Derive every proxy's mode and the provider's cluster view from the site's faults."""
        f = parts.faults
        await parts.kube_proxy.set_mode(_mode(f, ("down", ProxyMode.DOWN), ("api-only", ProxyMode.DOWN),
                                              ("blackhole", ProxyMode.BLACKHOLE), ("slow", ProxyMode.SLOW)))
        if parts.ingress_proxy is not None:
            await parts.ingress_proxy.set_mode(_mode(f, ("down", ProxyMode.DOWN), ("blackhole", ProxyMode.BLACKHOLE),
                                                     ("slow", ProxyMode.SLOW)))
        same_provider = [p for p in self.sites.values() if p.provider_kind == parts.provider_kind]
        storage_down = any("storage" in p.faults for p in same_provider)
        await self.storage[parts.provider_kind].proxy.set_mode(ProxyMode.DOWN if storage_down else ProxyMode.PASS)
        api = self.emulators.get(parts.provider_kind)
        if api is not None:
            api_down = any("provider-api" in p.faults for p in same_provider)
            await api.set_available(not api_down)
            health = base.ClusterState.DOWN if f & {"down", "blackhole"} else base.ClusterState.READY
            api.emulator.set_cluster_health(parts.cluster_id, health)
        failed = {m.split("=", 1)[1] for m in f if m.startswith("component=")}
        for component in self.profile.components:
            for workload in component.workloads:
                if component.name in failed:
                    parts.cluster.workloads.fail(component.namespace, workload.name)
                else:
                    parts.cluster.workloads.recover(component.namespace, workload.name)

    async def _bootstrap_dns(self) -> None:
        assert self.dns is not None
        self.dns_backend = PowerDnsBackend(api_url=self.dns.api_url, api_key=self.dns.api_key)
        await self.dns_backend.api.ensure_zone(self.zone)
        active = self.sites[self.config.active_site().name]
        address = active.ingress_proxy.host if active.ingress_proxy else active.ingress.host
        await asyncio.gather(*(
            self.dns_backend.api.replace(self.zone, f"{h}.{self.zone}", "A", (address,), self.config.dns.ttl)
            for c in self.profile.components for h in c.hostnames))

    async def close(self) -> None:
        """Stop everything, in reverse order; every step is bounded and failures are logged."""
        steps: list[tuple[str, Any]] = []
        if self.control is not None:
            steps.append(("control API", self.control.close()))
        for kind, api in self.emulators.items():
            steps.append((f"{kind} API", api.close()))
        for parts in self.sites.values():
            steps.append((f"site {parts.site.name}", parts.close()))
        for kind, store in self.storage.items():
            steps.append((f"{kind} storage proxy", store.proxy.close()))
        if self.dns_api_proxy is not None:
            steps.append(("DNS API proxy", self.dns_api_proxy.close()))
        if self._management is not None:
            steps.append(("SCS management cluster", self._management.close()))
        if self.dns_backend is not None:
            steps.append(("DNS client", self.dns_backend.close()))
        if self.coordination is not None:
            steps.append(("etcd and observer paths", self.coordination.close()))
        if self.databases is not None:
            steps.append(("databases", self.databases.close()))
        for name, coro in steps:
            try:
                await asyncio.wait_for(coro, timeout=10.0)
            except Exception as exc:
                logger.warning("stopping %s failed: %s", name, secrets.redact(str(exc)))
        stops = [m.stop() for m in self.motos.values()]
        if self.dns is not None:
            stops.append(self.dns.stop())
        await asyncio.gather(*stops, return_exceptions=True)

    # --- the control API's view -------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        assert self.dns is not None
        zone_plain = self.zone.rstrip(".")
        hostnames = {c.name: f"{c.hostnames[0]}.{zone_plain}" for c in self.profile.components if c.hostnames}
        doc: dict[str, Any] = {
            "sites": {name: {**parts.describe(self.storage[parts.provider_kind]),
                         **({"postgres": self.databases.describe(name)} if self.databases else {})}
                  for name, parts in self.sites.items()},
            "dns": {"server": self.dns.host, "port": self.dns.dns_port,
                    "api": self.dns_api_proxy.url if self.dns_api_proxy else self.dns.api_url,
                    "api_key": self.dns.api_key, "zone": self.zone,
                    "api_down": bool(self.dns_api_proxy and self.dns_api_proxy.mode is ProxyMode.DOWN)},
            "workplace": {"hostnames": hostnames,
                          "fqdns": {h: f"{h}.{zone_plain}" for c in self.profile.components for h in c.hostnames}},
            "providers": {kind: api.describe() for kind, api in self.emulators.items()},
            "lab": self.lab.model_dump(mode="json"),
            "config": str(self.loaded.path),
            "started_at": self.started_at,
            "pids": {r.name: r.pid for r in lab_runtime.read_pids(self.paths)},
            "kube_access": self.access.used(),  #: what each kube API was asked for (RBAC terms)
        }
        if self.control is not None:
            doc["control"] = self.control.url
        if self.coordination is not None:
            doc.update(self.coordination.describe())
        return doc

    async def break_site(self, site: str, mode: str) -> list[str]:
        if self.coordination is not None and self.coordination.handles(site, mode):
            if not site.startswith("etcd") and site not in self.sites:
                raise KeyError(site)
            return await self.coordination.break_(site, mode)
        parts = self.sites[site]
        fault = control.parse_fault(mode, components={c.name: bool(c.workloads) for c in self.profile.components},
                                    provider_api=parts.provider_kind in self.emulators)
        parts.faults.add(fault)
        await self._apply_faults(parts)
        if self.databases is not None:  # a lost provider's database sends nothing more
            self.databases.freeze(site, bool(parts.faults & {"down", "blackhole"}))
        logger.info("break %s: %s", site, fault)
        return sorted(parts.faults)

    async def heal_site(self, site: str) -> list[str]:
        if self.coordination is not None:
            await self.coordination.heal(site)
            if site.startswith("etcd"):
                return []
        parts = self.sites[site]
        parts.faults.clear()
        await self._apply_faults(parts)
        if self.databases is not None:
            self.databases.freeze(site, False)
        logger.info("healed %s", site)
        return []

    async def break_dns(self) -> bool:
        if self.dns_api_proxy is not None:
            await self.dns_api_proxy.set_mode(ProxyMode.DOWN)
            logger.info("break: the DNS provider's API is down")
        return True

    async def heal_dns(self) -> bool:
        if self.dns_api_proxy is not None:
            await self.dns_api_proxy.set_mode(ProxyMode.PASS)
        return False

    def records(self, site: str, component: str | None) -> list[str]:
        parts = self.sites[site]
        chosen = [self.profile.component(component)] if component else \
            [c for c in self.profile.components if c.stateful]
        return sorted({i for c in chosen for i in ingress_mod.list_records(parts.cluster.store, c)})


async def serve(loaded: loader.Loaded, paths: lab_runtime.LabPaths) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    world = World(loaded, paths)
    async with s3.shared_clients():  # one S3 client per endpoint for the lab's whole life
        try:
            await world.start()
            print("lab ready", flush=True)
            await stop.wait()
            logger.info("stopping the lab")
            return 0
        finally:
            paths.runtime_json.unlink(missing_ok=True)
            await world.close()
            logger.info("lab stopped")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m failover.lab.supervisor")
    parser.add_argument("--config", type=Path, default=None)
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--debug", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    for noisy in ("aiohttp.access", "botocore", "aiobotocore", "urllib3", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    secrets.install_log_filter()
    paths = lab_runtime.LabPaths(args.state_dir.resolve()).ensure()
    try:
        loaded = loader.load(args.config)
        return asyncio.run(serve(loaded, paths))
    except errors.FailoverError as exc:
        logger.error("lab failed: %s", secrets.redact(str(exc)))
        return 1
    except Exception:
        logger.exception("lab crashed")
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
