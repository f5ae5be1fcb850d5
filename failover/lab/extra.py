"""The lab's server-side parts come with the optional extra ``failover[lab]`` (moto's S3 server).

``failover lab up`` and ``lab demo`` check for them first and say how to install them, instead of
failing half-way with an import error; the product itself never needs them.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

from failover.core import errors

#: importable module -> what provides it
REQUIRED = {"moto": "moto[server]", "flask": "moto[server]", "flask_cors": "moto[server]"}


def missing() -> list[str]:
    """The lab's optional requirements that are not installed (empty when the extra is)."""
    absent = {extra for module, extra in REQUIRED.items() if importlib.util.find_spec(module) is None}
    beside = Path(sys.executable).parent / "moto_server"
    if not beside.exists() and shutil.which("moto_server") is None:
        absent.add("moto[server] (the moto_server command)")
    return sorted(absent)


def require() -> None:
    """Raise a clear error naming the fix when the lab extra is not installed."""
    absent = missing()
    if absent:
        raise errors.PermanentError(
            f"the lab needs the optional extra `lab` ({', '.join(absent)} missing): "
            f"install it with `pip install 'failover[lab]'` (from a checkout: `pip install '.[lab]'`)")
