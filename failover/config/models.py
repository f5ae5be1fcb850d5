"""The configuration's typed models (pydantic v2).

One file describes the whole deployment: the providers and how to reach them, the sites (one
provider region with a Kubernetes cluster each), the workplace (openDesk, as a profile of
components), DNS, storage and the failover policy. Secrets are never written inline: every
secret is a :class:`~providers.base.Credential` (an environment variable or a file).

Where a value is resolved at run time (the lab's ephemeral ports), the field is optional here and
filled by :mod:`failover.config.runtime` from the lab's state.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from failover.config import bounds
from failover.config.surface import ApiConfig, NotificationsConfig
from providers.base import ClusterRef, Credential, ProviderKind, ProviderSettings


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Role(StrEnum):
    ACTIVE = "active"  #: serves the workplace now
    STANDBY = "standby"  #: could take over; receives replicated backups
    FENCED = "fenced"  #: lost the role; must never serve or write again without a failback


class Strategy(StrEnum):
    RESTORE = "restore"  #: restored from the Velero backup on failover
    SCALE = "scale"  #: pre-deployed at zero replicas on the standby, scaled up on failover


class PolicyMode(StrEnum):
    AUTOMATIC = "automatic"  #: the daemon starts the failover run itself
    APPROVAL = "approval"  #: the daemon creates a run that waits for `failover approve`
    MANUAL = "manual"  #: the daemon only reports; runs are started by an operator


# --- workplace profile --------------------------------------------------------------------------

class Workload(_Model):
    kind: Literal["Deployment", "StatefulSet"]
    name: str
    replicas: int = Field(default=1, ge=0, le=bounds.COUNT)


class Probe(_Model):
    """A component's user-facing check through the ingress, by Host header."""

    type: Literal["http", "tcp"] = "http"
    hostname: str | None = None  #: short name under the zone, e.g. ``files``
    path: str = "/"
    expect_status: int = Field(default=200, ge=100, le=599)
    expect_body: str | None = None  #: substring the body must contain
    port: int | None = Field(default=None, ge=1, le=65535)  #: for tcp probes


class S3BucketData(_Model):
    """An application bucket (Nextcloud, OpenProject, OX files) replicated to every standby."""

    kind: Literal["s3-bucket"]
    bucket: str = Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", description="the logical bucket name")
    delete_after: float = Field(default=3600.0, ge=0, description="seconds a key must be gone from the "
                                "active site's bucket before it is deleted on a standby")
    max_lag: float | None = Field(default=None, gt=0, description="a standby is ready only if its copy is "
                                  "at most this many seconds behind")
    env_bucket: str = Field(default="S3_BUCKET", description="env var naming the bucket on restored workloads")
    env_endpoint: str = Field(default="S3_ENDPOINT", description="env var naming the S3 endpoint")


class PostgresData(_Model):
    """A PostgreSQL cluster whose WAL is archived continuously to every standby's bucket (pgBackRest).

    The active site's ``archive_command`` pushes each WAL segment to one pgBackRest repository per
    standby (``repo_path`` in the standby's bucket); a failover recovers the target's database from
    its own repository to the newest archived point (:mod:`failover.pgwal`).
    """

    kind: Literal["postgresql"]
    stanza: str = Field(default="opendesk", pattern=r"^[a-z][a-z0-9_-]{0,62}$", description="pgBackRest stanza")
    bucket: str = Field(default="pgwal", pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", description=(
        "the bucket on each standby's object storage that holds the repository (not Velero's: Velero "
        "refuses a bucket with foreign top-level directories); per site renamed by storage.app_buckets"))
    repo_path: str = Field(default="/pgwal", pattern=r"^/[A-Za-z0-9/_.-]*$",
                           description="the repository's path in each standby's bucket")
    recovery_timeout: float = Field(default=600.0, gt=0, le=bounds.MONTH,
                                    description="seconds a point-in-time recovery may take")


class Component(_Model):
    name: str = Field(pattern=r"^[a-z][a-z0-9-]*$", max_length=bounds.NAME)
    title: str = Field(max_length=bounds.TEXT)
    group: int = Field(ge=0, le=9, description="restore group: lower groups are restored first")
    strategy: Strategy = Strategy.RESTORE
    critical: bool = True
    namespace: str = "opendesk"
    selector: dict[str, str] = Field(
        default_factory=dict, description="labels that select the component's objects (Velero labelSelector)")
    workloads: tuple[Workload, ...] = ()
    hostnames: tuple[str, ...] = ()
    probes: tuple[Probe, ...] = ()
    #: what data it holds; s3-bucket entries are replicated, postgresql entries archive their WAL
    data: tuple[str | S3BucketData | PostgresData, ...] = ()
    stateful: bool = False  #: keeps application records (lab: counted for data loss)


class WorkplaceProfile(_Model):
    name: str
    description: str = ""
    group_names: dict[int, str] = Field(default_factory=dict)
    components: tuple[Component, ...]

    @model_validator(mode="after")
    def _unique(self) -> WorkplaceProfile:
        seen: set[str] = set()
        hosts: set[str] = set()
        for c in self.components:
            if c.name in seen:
                raise ValueError(f"component {c.name!r} is defined twice")
            seen.add(c.name)
            for h in c.hostnames:
                if h in hosts:
                    raise ValueError(f"hostname {h!r} is used by two components")
                hosts.add(h)
        return self

    def buckets(self) -> list[tuple[Component, S3BucketData]]:
        """Every replicated application bucket with the component that uses it."""
        return [(c, d) for c in self.components for d in c.data if isinstance(d, S3BucketData)]

    def databases(self) -> list[tuple[Component, PostgresData]]:
        """Every PostgreSQL cluster with WAL archiving, with the component that holds it."""
        return [(c, d) for c in self.components for d in c.data if isinstance(d, PostgresData)]

    def groups(self) -> list[int]:
        return sorted({c.group for c in self.components})

    def component(self, name: str) -> Component:
        for c in self.components:
            if c.name == name:
                return c
        raise KeyError(name)


class WorkplaceConfig(_Model):
    name: str = Field(default="opendesk", max_length=bounds.NAME)
    profile: Path = Path("workplaces/opendesk.yaml")  #: relative to the config file
    zone: str = Field(pattern=r"^([a-z0-9-]+\.)+$", max_length=253, description="DNS zone with trailing dot")


# --- sites --------------------------------------------------------------------------------------

class KubeAccess(_Model):
    """How the daemon reaches a site's Kubernetes API (a provider kubeconfig is the fallback)."""

    api: str | None = None
    token: Credential | None = None
    verify_tls: bool = True
    #: a kubeconfig (``{file: PATH}`` or ``{env: VAR}``): CA data, client certificates, tokens, exec plugins
    kubeconfig: Credential | None = None
    context: str | None = None  #: the kubeconfig context to use (default: its current-context)
    refresh_before: float = Field(default=300.0, ge=0, description="renew credentials this many s before expiry")


class Ingress(_Model):
    address: str | None = None  #: the IP every hostname points at while the site is active
    port: int | None = Field(default=None, ge=1, le=65535)
    scheme: Literal["http", "https"] = "https"


class Storage(_Model):
    """The site's S3 bucket holding Velero backups (Velero's layout)."""

    endpoint: str | None = None
    bucket: str = "velero"
    region: str = "us-east-1"
    prefix: str = ""
    access_key: Credential | None = None
    secret_key: Credential | None = None
    app_buckets: dict[str, str] = Field(default_factory=dict, description="logical application bucket -> "
                                        "this site's bucket name (default: the logical name)")


class DatabaseHost(_Model):
    """Where a site's PostgreSQL runs for the daemon: pgBackRest and ``pg_ctl`` run on the daemon's
    host as ``os_user`` (a database on a VM beside the cluster; the lab's). The repository is the
    site's bucket (``storage``) as pgBackRest reaches it: ``repo_endpoint`` over TLS, verified."""

    data_dir: Path | None = None  #: lab: taken from the running lab
    port: int | None = Field(default=None, ge=1, le=65535)
    socket_dir: Path | None = None
    bin_dir: Path = Path("/usr/lib/postgresql/15/bin")
    os_user: str = Field(default="postgres", pattern=r"^[a-z_][a-z0-9_-]*$")
    repo_endpoint: str | None = Field(default=None, pattern=r"^[A-Za-z0-9.-]+(:[0-9]{1,5})?$",
                                      description="host[:port] of the bucket's S3 endpoint (https) for pgBackRest")
    repo_verify_tls: bool = True
    repo_ca_file: Path | None = None  #: the CA that signed the endpoint's certificate (default: system CAs)


class Support(_Model):
    """Whom to call: a provider's support desk or a contact (printed in the Notfallhandbuch)."""

    name: str | None = None
    phone: str | None = None
    email: str | None = None
    url: str | None = None
    contract: str | None = None  #: contract or customer number to quote
    hours: str | None = None  #: e.g. "24/7"


class Operator(_Model):
    """A person who may act through the runbook; proves it with a secret (env/file, or its hash)."""

    name: str = Field(pattern=r"^[a-z][a-z0-9._-]*$")
    full_name: str | None = None
    roles: tuple[str, ...] = ()
    secret: Credential | None = None  #: where the operator's secret is (compared in constant time)
    secret_hash: str | None = Field(default=None, pattern=r"^pbkdf2-sha256\$\d+\$[0-9a-f]+\$[0-9a-f]{64}$",
                                    description="pbkdf2-sha256$ITER$SALT$HASH (`failover runbook hash-secret`)")
    phone: str | None = None
    email: str | None = None

    @model_validator(mode="after")
    def _one_secret(self) -> Operator:
        if (self.secret is None) == (self.secret_hash is None):
            raise ValueError(f"operator {self.name}: give exactly one of secret ({{env|file}}) or secret_hash")
        return self


class Site(_Model):
    name: str = Field(pattern=r"^[a-z][a-z0-9-]*$", max_length=bounds.NAME)
    provider: str = Field(max_length=bounds.NAME)
    region: str = Field(max_length=bounds.NAME)
    role: Role = Role.STANDBY
    jurisdiction: str = "DE"
    attestations: tuple[str, ...] = ()
    cluster: ClusterRef | None = None  #: provider-side ids (defaults: the site name)
    kube: KubeAccess = KubeAccess()
    ingress: Ingress = Ingress()
    storage: Storage = Storage()
    velero_namespace: str = "velero"
    bsl: str = "default"
    support: Support | None = None  #: the provider's support desk for this site
    database: DatabaseHost | None = None  #: the site's PostgreSQL (WAL archiving, point-in-time recovery)

    def cluster_ref(self) -> ClusterRef:
        return self.cluster or ClusterRef(region=self.region, cluster=self.name)


# --- DNS, health, policy ------------------------------------------------------------------------

class DnsConfig(_Model):
    provider: str = Field(default="powerdns", description="a key of `providers` that carries the zone")
    ttl: int = Field(default=30, ge=1, le=86400)
    resolver: str | None = None  #: nameserver used to verify a switch (default: system)
    resolver_port: int = Field(default=53, ge=1, le=65535)


class HealthConfig(_Model):
    interval: float = Field(default=5.0, ge=0.05, le=bounds.HOUR,
                            description="seconds between probe rounds")
    timeout: float = Field(default=3.0, ge=0.05, le=bounds.PROBE_TIMEOUT,
                           description="timeout of one HTTP/Kubernetes/DNS probe")
    storage_timeout: float = Field(default=10.0, ge=0.05, le=bounds.PROBE_TIMEOUT,
                                   description="timeout of one bucket/backup probe")
    fail_after: int = Field(default=3, ge=1, le=bounds.COUNT,
                            description="consecutive failures before a check is failing")
    recover_after: int = Field(default=2, ge=1, le=bounds.COUNT,
                               description="consecutive successes before it is passing")
    concurrency: int = Field(default=16, ge=1, le=bounds.COUNT, description="probes in flight at once, per site")
    suspect_interval: float | None = Field(
        default=None, ge=0.01, le=bounds.HOUR,
        description="seconds between re-probes of a check that has just failed (suspicion mode); "
                    "default: interval / 4, at least 0.1 s")
    fail_window: float | None = Field(
        default=None, ge=0, le=bounds.HOUR,
        description="a check fails only when its consecutive failures span at least this many seconds; "
                    "default: (fail_after - 1) x interval, the tolerance of one probe per interval")
    critical_majority: float = Field(
        default=0.5, gt=0, le=1,
        description="site is down when more than this share of critical components fail")
    verify_tls: bool = True
    stale_after: float | None = Field(
        default=None, gt=0,
        description="seconds after which a check's last sample is stale (unknown); "
                    "default: 3 intervals plus the longest probe timeout")


class Constraints(_Model):
    jurisdictions: tuple[str, ...] = ()  #: allowed jurisdictions of a target (empty: any)
    attestations: tuple[str, ...] = ()  #: attestations every target must have


class Policy(_Model):
    mode: PolicyMode = PolicyMode.AUTOMATIC
    preference: tuple[str, ...] = ()  #: standby order; default: config order
    constraints: Constraints = Constraints()
    rpo: float = Field(default=900.0, gt=0, le=bounds.MONTH, description="maximum tolerable data loss, seconds")
    rto: float = Field(default=900.0, gt=0, le=bounds.MONTH, description="target recovery time (WAZ), seconds")
    cooldown: float = Field(default=600.0, ge=0, le=bounds.MONTH, description="seconds between two automatic failovers")
    allow_partially_failed: bool = True
    playbook: str = Field(default="failover", max_length=bounds.NAME)
    failed_run_backoff: float = Field(default=30.0, ge=0, le=bounds.HOUR, description=(
        "seconds to wait after a failed automatic run before the next; doubles with each failure"))
    max_failed_runs: int = Field(default=3, ge=1, le=100, description=(
        "failed automatic runs in a row after which the daemon stops and asks for a human"))

    max_wal_age: float | None = Field(default=None, gt=0, le=bounds.MONTH, description=(
        "a standby is ready only if each database's newest WAL segment archived there is at most this "
        "many seconds old (profile: `data: [{kind: postgresql}]`)"))

    approvers: int = Field(default=1, ge=1, le=9,
                           description="different operators who must `approve` a run that waits for approval")
    approver_role: str = Field(default="approver", description="the role an approver needs (with operators)")
    break_glass_role: str = Field(default="break-glass", description="the role that may override a safety rule")

    @field_validator("preference")
    @classmethod
    def _no_duplicates(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"each site at most once; repeated: {', '.join(dupes)}")
        return names


class CoordinationBackend(StrEnum):
    LOCAL = "local"  #: SQLite in the state directory: one daemon on one host (the lab demo)
    ETCD = "etcd"  #: etcd v3: several daemons, one leader lease, a quorum of observers


class Coordination(_Model):
    """Where the lease, the fencing epoch, roles and the run journal live (see README, HA)."""

    backend: CoordinationBackend = CoordinationBackend.LOCAL
    endpoints: tuple[str, ...] = Field(
        default=(), description="etcd client URLs (lab: empty, taken from the lab's etcd cluster)")
    prefix: str = Field(default="/failover", pattern=r"^/[A-Za-z0-9/_.-]*$")
    lease_ttl: float = Field(default=10.0, ge=2, description="seconds a leader's lease outlives its last renewal")
    request_timeout: float = Field(default=1.0, gt=0, description="timeout of one etcd request")
    min_observers: int = Field(default=2, ge=1, description="down votes needed (and a majority of live observers)")


class LabConfig(_Model):
    """Settings of the simulated world (used by `failover lab …`)."""

    ready_delay: float = Field(default=0.5, ge=0, le=60)
    restore_item_delay: float = Field(default=0.01, ge=0, le=10)
    backup_interval: str = Field(default="@every 10s", max_length=100)
    sync_period: float = Field(default=1.0, gt=0, le=bounds.HOUR)
    slow_latency: float = Field(default=5.0, gt=0, le=600)
    ingress_port: int = Field(default=0, ge=0, le=65535, description="0: pick a free port")
    etcd_members: int = Field(default=3, ge=0, le=5, description="etcd members the lab runs (0: none)")
    observers: tuple[str, ...] = Field(
        default=(), description="daemon names that get their own proxied view of every site (partitions)")
    postgres: bool = Field(default=False, description="run a PostgreSQL per site with WAL archiving to the "
                           "standbys (needs postgresql-15, pgbackrest, stunnel4)")
    archive_timeout: int = Field(default=2, ge=1, le=3600, description="the lab databases' archive_timeout, s")

    @field_validator("backup_interval")
    @classmethod
    def _schedule(cls, value: str) -> str:
        return bounds.check_schedule(value)


class Config(_Model):
    version: Literal[1] = 1
    state_dir: Path | None = None  #: default: $FAILOVER_STATE_DIR or ./.failover-state
    workplace: WorkplaceConfig
    providers: dict[str, ProviderSettings] = Field(default_factory=dict)
    sites: tuple[Site, ...]
    dns: DnsConfig = DnsConfig()
    health: HealthConfig = HealthConfig()
    policy: Policy = Policy()
    notify: tuple[str, ...] = ()  #: webhook URLs
    coordination: Coordination = Coordination()
    operators: tuple[Operator, ...] = ()  #: who may act through the runbook (`--as NAME`)
    roles: dict[str, str] = Field(default_factory=dict, description="role name -> what it is responsible for")
    lab: LabConfig | None = None  #: present: this config describes the lab
    api: ApiConfig | None = None  #: the daemon's HTTP API, metrics and status page
    notifications: NotificationsConfig | None = None  #: Matrix, e-mail, webhook channels

    @field_validator("sites")
    @classmethod
    def _sites(cls, sites: tuple[Site, ...]) -> tuple[Site, ...]:
        names = [s.name for s in sites]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"site names must be unique; repeated: {', '.join(dupes)}")
        if sum(1 for s in sites if s.role is Role.ACTIVE) != 1:
            raise ValueError("exactly one site must have role: active")
        return sites

    @model_validator(mode="after")
    def _notification_sites(self) -> Config:
        unknown = sorted(set(self.notifications.sites) - {s.name for s in self.sites}) if self.notifications else []
        if unknown:
            raise ValueError(f"notifications.sites: unknown site(s) {', '.join(unknown)}")
        return self

    @field_validator("operators")
    @classmethod
    def _operators(cls, operators: tuple[Operator, ...]) -> tuple[Operator, ...]:
        names = [o.name for o in operators]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"operator names must be unique; repeated: {', '.join(dupes)}")
        return operators

    def site(self, name: str) -> Site:
        for s in self.sites:
            if s.name == name:
                return s
        raise KeyError(name)

    def active_site(self) -> Site:
        return next(s for s in self.sites if s.role is Role.ACTIVE)

    def standby_order(self) -> list[Site]:
        """Standbys in preference order (configured preference first, then config order)."""
        standbys = [s for s in self.sites if s.role is Role.STANDBY]
        rank = {name: i for i, name in enumerate(self.policy.preference)}
        return sorted(standbys, key=lambda s: rank.get(s.name, len(rank) + standbys.index(s)))


__all__ = [
    "Component", "Config", "Constraints", "Coordination", "CoordinationBackend", "DatabaseHost", "DnsConfig",
    "HealthConfig", "Ingress", "KubeAccess",
    "LabConfig", "Operator", "Policy", "PolicyMode", "PostgresData", "Probe", "ProviderKind", "Role", "S3BucketData",
    "Site", "Storage",
    "Strategy", "Support", "Workload", "WorkplaceConfig", "WorkplaceProfile",
]
