"""How a test failover names what it creates, so that nothing collides with production.

A drill's objects live in their own namespaces (``<label>-<namespace>``, via Velero
``namespaceMapping``) and are reached through the standby's ingress with the drill's own hostnames
(``<host>.<label>.<zone>``). Every object carries the ``failover.io/drill`` label, so a cleanup
can also find what a crashed drill created before it could journal it. The lab's ingress routes
drill hostnames by these same rules.
"""

from __future__ import annotations

import re
import secrets

LABEL_KEY = "failover.io/drill"
_LABEL = re.compile(r"^drill-[0-9]+-[0-9a-f]{4}$")


def new_label(seq: int) -> str:
    return f"drill-{seq}-{secrets.token_hex(2)}"


def is_label(text: str) -> bool:
    return bool(_LABEL.match(text))


def namespace(label: str, original: str) -> str:
    """The drill namespace an original namespace is mapped to (at most 63 characters)."""
    return f"{label}-{original}"[:63].rstrip("-")


def hostname(label: str, host: str, zone: str) -> str:
    """The drill's FQDN for an app hostname (``files`` -> ``files.drill-3-ab12.ckki.lab``)."""
    return f"{host}.{label}.{zone.rstrip('.')}"


def split_hostname(fqdn: str, zone: str) -> tuple[str, str] | None:
    """(app hostname, drill label) of a drill FQDN, or None for any other name."""
    suffix = "." + zone.rstrip(".")
    if not fqdn.endswith(suffix):
        return None
    parts = fqdn[: -len(suffix)].split(".")
    if len(parts) != 2 or not is_label(parts[1]):
        return None
    return parts[0], parts[1]
