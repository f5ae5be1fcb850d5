"""Where the config, its workplace profile and the state directory are: rules without pydantic.

The loader validates; these rules only locate files, so that the CLI's fast paths (``status``,
``history``, completion) can find the state directory before, or without, loading pydantic.
They are the loader's rules (``Loaded.state_dir``, ``default_config_path``, the profile beside
the config); ``tests/cli/test_fast.py`` checks that the two agree.
"""

from __future__ import annotations

import os
from pathlib import Path

from failover.core import resources

ENV_CONFIG = "FAILOVER_CONFIG"
ENV_STATE = "FAILOVER_STATE_DIR"
DEFAULT_PROFILE = "workplaces/opendesk.yaml"


def default_config_path() -> Path:
    """The embedded default: the lab config (the repository's ``config/``, packaged with the product)."""
    env = os.environ.get(ENV_CONFIG)
    if env:
        return Path(env)
    return resources.config_file()


def state_dir(configured: Path | str | None, config_path: Path) -> Path:
    """The config's ``state_dir`` (relative to the config file), else ``$FAILOVER_STATE_DIR``,
    else ``.failover-state`` in the working directory."""
    if configured is not None:
        base = Path(configured).expanduser()
        return base if base.is_absolute() else (config_path.parent / base).resolve()
    env = os.environ.get(ENV_STATE)
    if env:
        return Path(env).expanduser().resolve()
    return (Path.cwd() / ".failover-state").resolve()


def profile_path(configured: object, config_path: Path) -> Path:
    """The workplace profile named by ``workplace.profile`` (relative to the config file)."""
    rel = Path(str(configured or DEFAULT_PROFILE))
    return rel if rel.is_absolute() else config_path.parent / rel
