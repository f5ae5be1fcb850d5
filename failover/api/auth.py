"""Who may do what through the API: bearer tokens mapped to operators with roles.

One small interface, :class:`Authenticator`, stands between the HTTP handlers and where
operators come from. Today :class:`TokenAuthenticator` reads the config's ``api.tokens`` (each a
credential from env or file); the runbook's operators and roles can replace it later without
touching a handler. Tokens are compared in constant time and registered as secrets, so they are
masked in every log line.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from failover.config.surface import ApiToken
from failover.core import errors

logger = logging.getLogger(__name__)


class Permission(StrEnum):
    READ = "read"  #: status, runs, decisions (GETs; open unless configured otherwise)
    APPROVE = "approve"  #: approve a run that waits for approval
    OPERATE = "operate"  #: pause / resume automatic failover
    CONFIRM = "confirm"  #: confirm a runbook step
    ALERTS = "alerts"  #: post Alertmanager webhooks


ROLE_PERMISSIONS: dict[str, frozenset[Permission]] = {
    "viewer": frozenset({Permission.READ}),
    "operator": frozenset({Permission.READ, Permission.OPERATE, Permission.CONFIRM}),
    "approver": frozenset({Permission.READ, Permission.OPERATE, Permission.CONFIRM, Permission.APPROVE}),
    "alertmanager": frozenset({Permission.ALERTS}),
    "admin": frozenset(Permission),
}


@dataclass(frozen=True)
class Operator:
    name: str
    roles: tuple[str, ...]

    def may(self, permission: Permission) -> bool:
        return any(permission in ROLE_PERMISSIONS.get(role, frozenset()) for role in self.roles)


class Authenticator(Protocol):
    def authenticate(self, token: str) -> Operator | None:
        """The operator a bearer token belongs to, or None. Never raises; constant time per token."""


class TokenAuthenticator:
    """Operators from the config's token list (secrets read once, at start)."""

    def __init__(self, tokens: Iterable[tuple[str, Operator]]) -> None:
        self._tokens = [(secret.encode(), op) for secret, op in tokens]

    @classmethod
    def from_config(cls, tokens: Iterable[ApiToken]) -> TokenAuthenticator:
        """Read every token now; one whose secret is missing is left out (logged), not fatal: the
        status page and the other operators keep working."""
        found: list[tuple[str, Operator]] = []
        for t in tokens:
            try:
                found.append((t.token.read(f"api token {t.name}"), Operator(t.name, tuple(t.roles))))
            except errors.FailoverError as exc:
                logger.warning("API token of %s left out: %s", t.name, exc)
        return cls(found)

    def authenticate(self, token: str) -> Operator | None:
        given = token.encode()
        found: Operator | None = None
        for secret, op in self._tokens:  # no early exit: timing says nothing about which token matched
            if hmac.compare_digest(secret, given):
                found = op
        return found


def bearer(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer …`` header, or None."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None
