"""Who is acting: ``--as NAME`` proven with the operator's secret.

The secret comes from ``$FAILOVER_OPERATOR_SECRET``, a file (``--secret-file``) or a prompt when a
terminal is attached; it is compared in constant time with the configured one (a credential read
from env/file) or with its PBKDF2 hash (``secret_hash``, so nothing readable is stored at rest).
A wrong or missing secret is refused with one sentence that never repeats the secret.

Without ``operators:`` in the config the runbook still works for a single team: the name is taken
as given (or the login name), unauthenticated, with every role — and break glass is refused,
because overriding a safety rule needs someone the config names.
"""

from __future__ import annotations

import getpass
import hashlib
import hmac
import os
import secrets as pysecrets
import sys
from dataclasses import dataclass
from pathlib import Path

from failover.config import models
from failover.core import errors, secrets

SECRET_ENV = "FAILOVER_OPERATOR_SECRET"
PBKDF2_ITERATIONS = 200_000


@dataclass(frozen=True)
class Actor:
    name: str
    roles: frozenset[str]
    authenticated: bool  #: False: no operators are configured; the name is only a label

    def has(self, role: str) -> bool:
        return not self.authenticated or role in self.roles


def hash_secret(secret: str, *, salt: str | None = None, iterations: int = PBKDF2_ITERATIONS) -> str:
    """``pbkdf2-sha256$ITER$SALT$HASH`` for the config's ``secret_hash``."""
    salt = salt or pysecrets.token_hex(16)
    digest = hashlib.pbkdf2_hmac("sha256", secret.encode("utf-8"), bytes.fromhex(salt), iterations).hex()
    return f"pbkdf2-sha256${iterations}${salt}${digest}"


def _matches(op: models.Operator, given: str) -> bool:
    if op.secret is not None:
        expected = op.secret.read(f"operator {op.name} secret")
        return hmac.compare_digest(hashlib.sha256(expected.encode()).digest(), hashlib.sha256(given.encode()).digest())
    assert op.secret_hash is not None
    _, iterations, salt, digest = op.secret_hash.split("$")
    computed = hashlib.pbkdf2_hmac("sha256", given.encode("utf-8"), bytes.fromhex(salt), int(iterations)).hex()
    return hmac.compare_digest(computed, digest)


def read_secret(secret_file: Path | None) -> str | None:
    if secret_file is not None:
        try:
            return secret_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise errors.InputError(f"--secret-file {secret_file}: cannot read: {exc.strerror}") from exc
    value = os.environ.get(SECRET_ENV)
    if value is None and sys.stdin.isatty():
        value = getpass.getpass("operator secret: ")
    return value


def identify(cfg: models.Config, name: str | None, *, secret_file: Path | None = None) -> Actor:
    """The acting operator, authenticated when the config names operators (InputError if refused)."""
    if not cfg.operators:
        return Actor(name=name or getpass.getuser(), roles=frozenset(), authenticated=False)
    known = {o.name: o for o in cfg.operators}
    if not name:
        raise errors.InputError(f"say who you are: --as NAME (operators: {', '.join(known)})")
    op = known.get(name)
    if op is None:
        raise errors.InputError(f"--as {name}: no such operator (operators: {', '.join(known)})")
    given = read_secret(secret_file)
    if not given:
        raise errors.InputError(f"--as {name}: no secret given; set ${SECRET_ENV}, pass --secret-file, "
                                "or run in a terminal to be asked")
    secrets.register(given)
    if not _matches(op, given):
        raise errors.InputError(f"--as {name}: wrong secret; refused (nothing was changed)")
    return Actor(name=op.name, roles=frozenset(op.roles), authenticated=True)


def require_role(actor: Actor, role: str, what: str) -> None:
    if not actor.has(role):
        raise errors.InputError(f"{actor.name} lacks role {role!r} needed to {what} "
                                f"(has: {', '.join(sorted(actor.roles)) or 'none'})")
