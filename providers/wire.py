"""Small helpers for reading vendors' JSON answers strictly: a wrong shape is a ProtocolError."""

from __future__ import annotations

from typing import Any

from failover.core import errors
from providers import base


def fqdn(name: str) -> str:
    return name if name.endswith(".") else name + "."


def obj(value: Any, what: str, *, service: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise errors.ProtocolError(f"{service}: {what} is not a JSON object")
    return value


def array(value: Any, what: str, *, service: str) -> list[Any]:
    if not isinstance(value, list):
        raise errors.ProtocolError(f"{service}: {what} is not a JSON array")
    return value


def designate_recordset(zone: str, item: dict[str, Any], *, service: str) -> base.DnsRecordSet:
    """A Designate-style record set (OTC DNS and OpenStack Designate share this shape)."""
    try:
        return base.DnsRecordSet(zone=fqdn(zone), name=fqdn(str(item["name"])), type=str(item["type"]),
                                 values=tuple(str(r) for r in item["records"]), ttl=int(item["ttl"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise errors.ProtocolError(f"{service}: DNS record set lacks a field ({exc})") from None
