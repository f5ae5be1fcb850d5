"""Create a provider adapter from its settings (adapters are imported lazily, by kind)."""

from __future__ import annotations

import importlib

from failover.core import errors
from providers import base

_MODULES = {
    "ionos": ("providers.ionos.adapter", "IonosProvider"),
    "stackit": ("providers.stackit.adapter", "StackitProvider"),
    "otc": ("providers.otc.adapter", "OtcProvider"),
    "scs": ("providers.scs.adapter", "ScsProvider"),
    "powerdns": ("providers.powerdns.adapter", "PowerDnsProvider"),
}


def create(settings: base.ProviderSettings) -> base.Provider:
    """Return the adapter for ``settings.kind``; PermanentError if it is not available."""
    module_name, class_name = _MODULES[settings.kind]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise errors.PermanentError(f"provider {settings.kind}: adapter not available ({exc})") from exc
    cls = getattr(module, class_name)
    provider = cls(settings)
    assert isinstance(provider, base.Provider)
    return provider
