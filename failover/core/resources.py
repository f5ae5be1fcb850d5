"""The product's data files (the embedded lab config, the workplace profiles, the playbooks).

They live in the repository's top-level ``config/`` and ``playbooks/`` and are packaged as
``failover._data.config`` and ``failover._data.playbooks`` (see ``setup.py``); in an editable install
they are the repository's directories. Both are directories without an
``__init__.py`` (namespace packages), so they are resolved to one real directory here: the config
loader resolves the profile relative to the config file, and the playbook loader lists a directory.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path


def data_dir(name: str) -> Path:
    """The directory holding the packaged data set ``name`` (``config`` or ``playbooks``)."""
    try:
        root = importlib.resources.files(f"failover._data.{name}")
    except ModuleNotFoundError:
        # An editable install: setuptools' editable finder cannot import a namespace package nested
        # in a regular one, so the checkout's own directory stands for it.
        checkout = Path(__file__).resolve().parents[2] / name
        if checkout.is_dir():
            return checkout
        raise
    if isinstance(root, Path):
        return root
    # a namespace package's root is a MultiplexedPath over its locations; ours has exactly one
    for child in root.iterdir():
        return Path(str(child)).parent
    raise FileNotFoundError(f"the package data failover._data.{name} is empty; reinstall failover")


def config_file() -> Path:
    """The embedded default config (the lab)."""
    return data_dir("config") / "lab.yaml"


def playbooks_dir() -> Path:
    """The playbooks shipped with the product."""
    return data_dir("playbooks")
