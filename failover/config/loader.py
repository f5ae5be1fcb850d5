"""Loading and validating the configuration: every problem, with file and line, before anything runs.

Validation runs in two passes and collects everything (Velero ``ValidationErrors`` style):
schema errors from pydantic, mapped back to YAML lines, then cross-references (a site names an
unknown provider, the preference names an unknown site, the DNS provider is missing, …). The
workplace profile is a second file, validated the same way. Warnings (valid, but risky) are
returned beside the config, e.g. OTC public DNS depending on the eu-de control plane.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydantic

from failover.config import models, yamlpos
from failover.core import errors, resources

ENV_CONFIG = "FAILOVER_CONFIG"
ENV_STATE = "FAILOVER_STATE_DIR"


@dataclass(frozen=True)
class Loaded:
    """A validated configuration with its workplace profile and where it came from."""

    config: models.Config
    profile: models.WorkplaceProfile
    path: Path
    warnings: tuple[str, ...] = field(default=())

    @property
    def state_dir(self) -> Path:
        if self.config.state_dir is not None:
            base = self.config.state_dir.expanduser()
            return base if base.is_absolute() else (self.path.parent / base).resolve()
        env = os.environ.get(ENV_STATE)
        if env:
            return Path(env).expanduser().resolve()
        return (Path.cwd() / ".failover-state").resolve()


def default_config_path() -> Path:
    """The embedded default: the lab config (the repository's ``config/``, packaged with the product)."""
    env = os.environ.get(ENV_CONFIG)
    if env:
        return Path(env)
    return resources.config_file()


def _pydantic_issues(located: yamlpos.Located, exc: pydantic.ValidationError) -> list[errors.Issue]:
    issues = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if isinstance(p, (str, int)))
        where = ".".join(str(p) for p in loc) or "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown field (check the spelling; `failover config schema` lists every field)"
        elif err["type"] == "missing":
            msg = "required field is missing"
        issues.append(located.issue(loc, f"{where}: {msg}"))
    return issues


def _parse(located: yamlpos.Located, model: type[pydantic.BaseModel]) -> Any:
    if not isinstance(located.data, dict):
        raise errors.ConfigError([located.issue((), "the file must contain a mapping at the top level")])
    try:
        return model.model_validate(located.data)
    except pydantic.ValidationError as exc:
        raise errors.ConfigError(_pydantic_issues(located, exc)) from None


def _cross_check(located: yamlpos.Located, cfg: models.Config) -> list[errors.Issue]:
    issues: list[errors.Issue] = []
    names = {s.name for s in cfg.sites}
    for i, site in enumerate(cfg.sites):
        if site.provider not in cfg.providers:
            issues.append(located.issue(("sites", i, "provider"),
                f"sites[{i}].provider: unknown provider {site.provider!r}; define it under `providers:` "
                f"(known: {', '.join(sorted(cfg.providers)) or 'none'})"))
    for i, name in enumerate(cfg.policy.preference):
        if name not in names:
            issues.append(located.issue(("policy", "preference", i),
                f"policy.preference: unknown site {name!r} (sites: {', '.join(sorted(names))})"))
        elif cfg.site(name).role is models.Role.ACTIVE:
            issues.append(located.issue(("policy", "preference", i),
                f"policy.preference: {name!r} is the active site; list standbys only"))
    if cfg.dns.provider not in cfg.providers:
        issues.append(located.issue(("dns", "provider"),
            f"dns.provider: unknown provider {cfg.dns.provider!r}; define it under `providers:`"))
    elif cfg.providers[cfg.dns.provider].kind == "stackit" and cfg.dns.ttl < 60:
        issues.append(located.issue(("dns", "ttl"),
            f"dns.ttl: STACKIT DNS accepts a TTL of 60 s or more, not {cfg.dns.ttl}; set `ttl: 60`"))
    return issues


def _warnings(cfg: models.Config) -> list[str]:
    out: list[str] = []
    dns = cfg.providers.get(cfg.dns.provider)
    if dns is not None and dns.kind == "otc":
        from providers.otc import adapter as otc  # imported only when the workplace's DNS is on OTC

        warning = otc.dns_region_warning(dns, site_regions=[s.region for s in cfg.sites])
        if warning:
            out.append(f"dns.provider: {warning}")
    standbys = [s for s in cfg.sites if s.role is models.Role.STANDBY]
    active = cfg.active_site()
    if not standbys:
        out.append("sites: no standby site: nothing can take over when the active site fails")
    if standbys and all(s.provider == active.provider for s in standbys):
        out.append("every standby is on the active site's provider: a provider outage takes all of them")
    return out


def load(path: Path | None = None) -> Loaded:
    """Load and validate ``path`` (default: :func:`default_config_path`) and its profile.

    Raises :class:`~failover.core.errors.ConfigError` listing every problem with file:line.
    """
    path = (path or default_config_path()).resolve()
    located = yamlpos.load_file(path)
    issues: list[errors.Issue] = []
    cfg: models.Config | None = None
    try:
        cfg = _parse(located, models.Config)
    except errors.ConfigError as exc:
        issues.extend(exc.issues)
    if cfg is not None:
        issues.extend(_cross_check(located, cfg))
    profile: models.WorkplaceProfile | None = None
    if isinstance(located.data, dict):
        wp = located.data.get("workplace") if isinstance(located.data.get("workplace"), dict) else {}
        profile_rel = Path(str((wp or {}).get("profile", "workplaces/opendesk.yaml")))
        profile_path = profile_rel if profile_rel.is_absolute() else path.parent / profile_rel
        try:
            profile = load_profile(profile_path)
        except errors.ConfigError as exc:
            issues.extend(_profile_issues(located, profile_path, exc))
    if cfg is not None:
        issues.extend(_state_dir_issues(located, cfg, path))
    if issues or cfg is None or profile is None:
        raise errors.ConfigError(issues)
    return Loaded(config=cfg, profile=profile, path=path, warnings=tuple(_warnings(cfg)))


def _profile_issues(located: yamlpos.Located, profile_path: Path, exc: errors.ConfigError) -> list[errors.Issue]:
    """A profile that cannot be read at all is the config's mistake: name the config's line."""
    if any(i.file == str(profile_path) and i.message.startswith("cannot read") for i in exc.issues):
        return [located.issue(("workplace", "profile"),
                              f"workplace.profile: cannot read {profile_path}: "
                              f"{'; '.join(i.message for i in exc.issues)}; give the path of the workplace "
                              "profile (relative to this file)")]
    return list(exc.issues)


def _state_dir_issues(located: yamlpos.Located, cfg: models.Config, path: Path) -> list[errors.Issue]:
    state = Loaded(config=cfg, profile=_EMPTY_PROFILE, path=path).state_dir
    if state.exists() and not state.is_dir():
        where = ("state_dir",) if cfg.state_dir is not None else ()
        origin = "state_dir" if cfg.state_dir is not None else \
            (f"${ENV_STATE}" if os.environ.get(ENV_STATE) else "the default state directory")
        return [located.issue(where, f"{origin}: {state} is a file, not a directory; point it at a directory")]
    return []


_EMPTY_PROFILE = models.WorkplaceProfile(name="-", components=())


_profiles: dict[tuple[str, int, int], models.WorkplaceProfile] = {}


def load_profile(path: Path) -> models.WorkplaceProfile:
    """The validated profile at ``path``; an unchanged file (same mtime and size) is parsed once."""
    try:
        stat = path.stat()
        key: tuple[str, int, int] | None = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    except (OSError, ValueError):
        key = None  # yamlpos reports why it cannot be read
    if key is not None and key in _profiles:
        return _profiles[key]
    located = yamlpos.load_file(path)
    profile: models.WorkplaceProfile = _parse(located, models.WorkplaceProfile)
    if key is not None:
        _profiles[key] = profile
    return profile


def json_schema() -> dict[str, Any]:
    """JSON Schema of the config file (for editors and CI linting)."""
    schema = models.Config.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "failover configuration"
    return schema
