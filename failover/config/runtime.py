"""Resolving the configuration into concrete endpoints for this run.

In production every endpoint is in the config file. In the lab the ports are ephemeral: ``failover
lab up`` writes them to ``<state>/lab/runtime.json`` (the ``lab status --json`` contract), and this
module overlays them, so the daemon, the CLI and the tests run the *same* code against the lab as
against real clouds. Lab credentials are written to files under the lab's state directory, so
that they travel as :class:`~providers.base.Credential` references like production secrets.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from failover import s3
from failover.config import loader, models
from failover.core import errors, secrets
from providers.base import ClusterRef, Credential, ProviderSettings


@dataclass(frozen=True)
class DatabaseEndpoint:
    """A site's PostgreSQL as the daemon drives it (pgBackRest, ``pg_ctl``, ``psql`` as ``os_user``)."""

    data_dir: Path
    port: int
    socket_dir: Path
    bin_dir: Path
    os_user: str
    repo_host: str  #: the site's bucket as pgBackRest reaches it (https)
    repo_port: int
    verify_tls: bool = True
    ca_file: Path | None = None


def _database(db: models.DatabaseHost | None) -> DatabaseEndpoint | None:
    if db is None or db.data_dir is None or db.port is None or db.repo_endpoint is None:
        return None
    host, _, port = db.repo_endpoint.partition(":")
    return DatabaseEndpoint(data_dir=db.data_dir, port=db.port, socket_dir=db.socket_dir or Path("/var/run/postgresql"),
                            bin_dir=db.bin_dir, os_user=db.os_user, repo_host=host, repo_port=int(port or 443),
                            verify_tls=db.repo_verify_tls, ca_file=db.repo_ca_file)


def _lab_database(site: models.Site, entry: dict[str, Any]) -> DatabaseEndpoint | None:
    pg = entry.get("postgres")
    if not isinstance(pg, dict):
        return _database(site.database)
    return DatabaseEndpoint(data_dir=Path(pg["data_dir"]), port=int(pg["port"]), socket_dir=Path(pg["socket_dir"]),
                            bin_dir=Path(pg["bin_dir"]), os_user=str(pg["os_user"]), repo_host=str(pg["repo_host"]),
                            repo_port=int(pg["repo_port"]), verify_tls=True, ca_file=Path(pg["ca_file"]))


@dataclass(frozen=True)
class SiteEndpoints:
    """Where one site's parts are reachable now."""

    site: models.Site
    cluster: ClusterRef
    kube_api: str | None
    kube_token: str | None = field(repr=False)
    ingress_address: str | None
    ingress_port: int
    ingress_scheme: str
    storage: s3.S3Location | None
    kubeconfig: str | None = field(default=None, repr=False)  #: kubeconfig text (a secret)
    kubeconfig_dir: str = ""  #: where the kubeconfig's relative file references point
    database: DatabaseEndpoint | None = None  #: the site's PostgreSQL (WAL archiving), when configured

    @property
    def name(self) -> str:
        return self.site.name


@dataclass(frozen=True)
class Runtime:
    """The configuration with every endpoint resolved."""

    loaded: loader.Loaded
    sites: dict[str, SiteEndpoints]
    providers: dict[str, ProviderSettings]
    resolver: tuple[str, int] | None
    zone: str
    hostnames: dict[str, str]  #: short hostname -> FQDN without trailing dot
    lab: dict[str, Any] | None = None
    observer: str | None = None  #: this daemon's name: in the lab, it may see the sites through its own paths

    @property
    def config(self) -> models.Config:
        return self.loaded.config

    @property
    def profile(self) -> models.WorkplaceProfile:
        return self.loaded.profile

    @property
    def state_dir(self) -> Path:
        return self.loaded.state_dir

    def fqdn(self, hostname: str) -> str:
        return f"{hostname}.{self.zone}".rstrip(".")


def lab_runtime_path(state_dir: Path) -> Path:
    return state_dir / "lab" / "runtime.json"


def read_lab_status(state_dir: Path) -> dict[str, Any]:
    path = lab_runtime_path(state_dir)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise errors.PermanentError(
            f"the lab is not running (no {path}); start it with `failover lab up`") from None
    except (OSError, ValueError) as exc:
        raise errors.PermanentError(f"cannot read the lab state {path}: {exc}") from exc
    if not isinstance(data, dict) or "sites" not in data:
        raise errors.PermanentError(f"{path} is not a lab state file; run `failover lab down` and `lab up`")
    return data


def _lab_credential(state_dir: Path, name: str, value: str) -> Credential:
    """Write a lab-only secret to a 0600 file and return a reference to it."""
    secrets.register(value)
    directory = state_dir / "lab" / "credentials"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    if not path.exists() or path.read_text(encoding="utf-8") != value:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(value)
    return Credential(file=path)


def _static_site(site: models.Site) -> SiteEndpoints:
    storage = None
    st = site.storage
    if st.endpoint and st.access_key and st.secret_key:
        storage = s3.S3Location(
            endpoint=st.endpoint, bucket=st.bucket, region=st.region, prefix=st.prefix,
            access_key=SecretStr(st.access_key.read(f"site {site.name} storage access_key")),
            secret_key=SecretStr(st.secret_key.read(f"site {site.name} storage secret_key")),
        )
    token = site.kube.token.read(f"site {site.name} kube token") if site.kube.token else None
    kubeconfig = site.kube.kubeconfig
    return SiteEndpoints(
        site=site, cluster=site.cluster_ref(), kube_api=site.kube.api, kube_token=token,
        ingress_address=site.ingress.address, ingress_port=site.ingress.port or 443,
        ingress_scheme=site.ingress.scheme, storage=storage,
        kubeconfig=kubeconfig.read(f"site {site.name} kubeconfig") if kubeconfig else None,
        kubeconfig_dir=str(kubeconfig.file.parent) if kubeconfig and kubeconfig.file else "",
        database=_database(site.database),
    )


def _lab_site(site: models.Site, lab: dict[str, Any]) -> SiteEndpoints:
    entry = lab["sites"].get(site.name)
    if not isinstance(entry, dict):
        raise errors.PermanentError(f"the running lab has no site {site.name!r}; restart it with this config")
    st = entry["s3"]
    secrets.register(str(st["secret_key"]))
    storage = s3.S3Location(
        endpoint=str(st["endpoint"]), bucket=str(st["bucket"]), region=str(st.get("region", "us-east-1")),
        access_key=SecretStr(str(st["access_key"])), secret_key=SecretStr(str(st["secret_key"])),
    )
    ref = ClusterRef(region=site.region, cluster=str(entry.get("cluster") or site.name),
                     project=entry.get("project"))
    kubeconfig = Credential(file=Path(entry["kubeconfig"])) if entry.get("kubeconfig") else None
    return SiteEndpoints(
        site=site, cluster=ref, kube_api=str(entry["kube_api"]), kube_token=None,
        ingress_address=str(entry["ingress"]), ingress_port=int(entry["ingress_port"]),
        ingress_scheme="http", storage=storage,
        kubeconfig=kubeconfig.read(f"lab site {site.name} kubeconfig") if kubeconfig else None,
        database=_lab_database(site, entry),
    )


def _lab_providers(loaded: loader.Loaded, lab: dict[str, Any]) -> dict[str, ProviderSettings]:
    out: dict[str, ProviderSettings] = {}
    state = loaded.state_dir
    for name, settings in loaded.config.providers.items():
        if settings.kind == "powerdns":
            dns = lab["dns"]
            out[name] = ProviderSettings(
                kind="powerdns", endpoints={"api": str(dns["api"])},
                credentials={"api_key": _lab_credential(state, f"{name}-api_key", str(dns["api_key"]))},
                options={"server_id": "localhost", **settings.options}, timeout=settings.timeout)
            continue
        emu = (lab.get("providers") or {}).get(settings.kind)
        if not isinstance(emu, dict):
            out[name] = settings
            continue
        creds = {k: _lab_credential(state, f"{name}-{k}", str(v))
                 for k, v in (emu.get("credentials") or {}).items()}
        out[name] = ProviderSettings(
            kind=settings.kind, endpoints={**emu.get("api", {}), **settings.endpoints},
            credentials={**creds, **settings.credentials},
            options={**(emu.get("options") or {}), **settings.options}, timeout=settings.timeout)
    return out


def _observer_view(lab: dict[str, Any], observer: str | None) -> dict[str, Any]:
    """The lab as ``observer`` reaches it: its own proxied path to each site, when it has one."""
    own = (lab.get("observers") or {}).get(observer or "")
    if not isinstance(own, dict):
        return lab
    sites = {name: {**entry, **(own.get("sites") or {}).get(name, {})} for name, entry in lab["sites"].items()}
    return {**lab, "sites": sites}


def resolve(loaded: loader.Loaded, *, observer: str | None = None) -> Runtime:
    """Resolve every endpoint; in the lab, from the running lab's state (as ``observer`` sees it)."""
    cfg = loaded.config
    zone = cfg.workplace.zone
    hostnames = {h: f"{h}.{zone}".rstrip(".") for c in loaded.profile.components for h in c.hostnames}
    if cfg.lab is None:
        resolver = (cfg.dns.resolver, cfg.dns.resolver_port) if cfg.dns.resolver else None
        return Runtime(loaded=loaded, sites={s.name: _static_site(s) for s in cfg.sites},
                       providers=dict(cfg.providers), resolver=resolver, zone=zone, hostnames=hostnames)
    lab = _observer_view(read_lab_status(loaded.state_dir), observer)
    dns = lab["dns"]
    secrets.register(str(dns.get("api_key", "")))
    return Runtime(
        loaded=loaded, sites={s.name: _lab_site(s, lab) for s in cfg.sites},
        providers=_lab_providers(loaded, lab), resolver=(str(dns["server"]), int(dns["port"])),
        zone=zone, hostnames=hostnames, lab=lab, observer=observer,
    )
