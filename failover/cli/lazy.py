"""Commands whose implementation is imported only when they run.

The whole argument parser is built on every start and on every <Tab> of the shell completion, so a
command module registers its parser with nothing heavy imported and points each subcommand at its
implementation by name.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from typing import Any


def command(module: str, name: str) -> Callable[[argparse.Namespace], Any]:
    """A ``func`` for ``set_defaults`` that imports ``module`` and calls its ``name`` when run."""
    def call(args: argparse.Namespace) -> Any:
        return getattr(importlib.import_module(module), name)(args)

    call.__name__ = name
    return call
