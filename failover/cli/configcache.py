"""What the fast read commands need to know about a config that has already been validated.

Validating a config means importing pydantic and building every model: about two thirds of what
``failover status`` would otherwise cost. The files rarely change between two ``status`` calls,
so after a full validation the few facts the read commands use (the health interval, the sites
in order, the ``config validate`` summary) are kept in the state directory, keyed by a digest of
the config file, its workplace profile and the validating code. Any change to either file (or to
``failover/config``) misses the cache and runs the full validation again, so bad input is still
reported with file:line and exit code 2. The cache is only written into an existing state
directory (``config validate`` in CI creates nothing); one that cannot be written is not kept.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from failover import __version__
from failover.config import paths

if TYPE_CHECKING:
    from failover.config import loader

CACHE_DIR = "cache"
_CODE = (Path(__file__).resolve().parents[1] / "config", Path(__file__).resolve().parents[2] / "providers" / "base.py")


@dataclass(frozen=True)
class Facts:
    """The validated config as the read commands see it."""

    path: Path
    state_dir: Path
    interval: float
    sites: tuple[str, ...]
    summary: dict[str, Any]  #: the ``config validate --json`` document
    backend: str = "local"  #: where the store is: ``local`` (SQLite in the state dir) or ``etcd``


def _parse(data: bytes) -> dict[str, Any]:
    import yaml

    loader_cls: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    parsed = yaml.load(data, Loader=loader_cls)
    return parsed if isinstance(parsed, dict) else {}


_MAX_BYTES = 1024 * 1024  #: as failover.config.yamlpos.MAX_BYTES: `--config /dev/zero` must not fill memory


def _read(path: Path) -> bytes:
    """At most 1 MiB of ``path``; larger is an error (the full validation then says so, with file:line)."""
    with open(path, "rb") as fh:
        data = fh.read(_MAX_BYTES + 1)
    if len(data) > _MAX_BYTES:
        raise ValueError(f"{path}: larger than 1 MiB")
    return data


def raw_config(path: Path) -> dict[str, Any]:
    """The config file as plain YAML data, unvalidated ({} when unreadable): for completion."""
    try:
        return _parse(_read(path))
    except Exception:
        return {}


def _code_stamp() -> str:
    stamps = [__version__]
    for item in _CODE:
        files = sorted(item.glob("*.py")) if item.is_dir() else [item]
        stamps += [f"{f.name}:{f.stat().st_mtime_ns}" for f in files if f.exists()]
    return ";".join(stamps)


def _locate(config: Path | None) -> tuple[Path, Path, str] | None:
    """(config path, state dir, digest) from the raw files, or None when they cannot be read."""
    path = (config or paths.default_config_path()).resolve()
    try:
        data = _read(path)
        raw = _parse(data)
        workplace = raw.get("workplace") if isinstance(raw.get("workplace"), dict) else {}
        profile = _read(paths.profile_path((workplace or {}).get("profile"), path))
        state = paths.state_dir(raw.get("state_dir"), path)
    except Exception:  # unreadable or not YAML: the full validation says what is wrong, with file:line
        return None
    digest = hashlib.sha256(b"\0".join([data, profile, _code_stamp().encode()])).hexdigest()
    return path, state, digest


def _cache_file(state: Path, path: Path) -> Path:
    return state / CACHE_DIR / f"config-{hashlib.sha256(str(path).encode()).hexdigest()[:16]}.json"


def summary(loaded: loader.Loaded) -> dict[str, Any]:
    cfg = loaded.config
    return {
        "valid": True,
        "file": str(loaded.path),
        "sites": {s.name: {"provider": s.provider, "region": s.region, "role": s.role.value} for s in cfg.sites},
        "components": len(loaded.profile.components),
        "restore_groups": loaded.profile.groups(),
        "warnings": list(loaded.warnings),
    }


def facts(config: Path | None) -> Facts:
    """The facts of ``config`` (default: the embedded one), validating it only when it changed.

    Raises :class:`~failover.core.errors.ConfigError` (exit code 2) like :func:`loader.load`."""
    located = _locate(config)
    if located is not None:
        path, state, digest = located
        try:
            doc = json.loads(_cache_file(state, path).read_text(encoding="utf-8"))
            if doc.get("digest") == digest:
                return Facts(path=path, state_dir=state, interval=float(doc["interval"]),
                             sites=tuple(doc["sites"]), summary=dict(doc["summary"]), backend=str(doc["backend"]))
        except (OSError, ValueError, KeyError, TypeError):
            pass
    from failover.config import loader

    loaded = loader.load(config)
    result = Facts(path=loaded.path, state_dir=loaded.state_dir, interval=loaded.config.health.interval,
                   sites=tuple(s.name for s in loaded.config.sites), summary=summary(loaded),
                   backend=loaded.config.coordination.backend.value)
    if located is not None:
        _store(result, located[2])
    return result


def _store(result: Facts, digest: str) -> None:
    if not result.state_dir.is_dir():  # validating a config never creates its state directory
        return
    target = _cache_file(result.state_dir, result.path)
    doc = {"digest": digest, "interval": result.interval, "sites": list(result.sites), "summary": result.summary,
           "backend": result.backend}
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(doc), encoding="utf-8")
        tmp.replace(target)
    except OSError:
        pass  # a read-only state directory: validate every time
