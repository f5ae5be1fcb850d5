"""The project's error hierarchy.

Foreign exceptions (httpx, aiohttp, botocore, kubernetes-asyncio) are translated into these at
the boundary (``raise OurError(...) from exc``), so engine code only ever reasons about two
kinds of failure: *temporary* ones, which are retried with backoff, and *permanent* ones, which
fail the step and let the playbook's failure policy apply.

    FailoverError
    ├── TemporaryError(delay=...)      retry later (timeouts, 429, 5xx, connection refused)
    │   └── LeaseLostError              this actor no longer holds the mutation lease
    ├── PermanentError                 retrying is useless (400/403/404, validation)
    │   ├── AuthError                  credentials rejected after one re-authentication
    │   ├── StaleEpochError            an action carried an older fencing epoch
    │   └── ProtocolError              a peer answered something that breaks its contract
    ├── UnconfirmedError(output=...)   done as far as possible, effect not confirmed (run goes on)
    └── InputError                     bad input from a human: config, playbook, CLI (exit 2)
        ├── ConfigError                 every problem of a config file, with file:line
        └── PlaybookError               every problem of a playbook, with file:line

Messages never contain secrets: callers pass values through :func:`failover.core.secrets.redact`
before they reach an error text.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass


class FailoverError(Exception):
    """Base of every error this project raises on purpose."""


class TemporaryError(FailoverError):
    """A potentially recoverable error; the operation should be retried after ``delay`` s."""

    def __init__(self, message: str, *, delay: float | None = None) -> None:
        super().__init__(message)
        self.delay = delay


class LeaseLostError(TemporaryError):
    """The mutation lease was lost; long actions are cancelled and journaled."""


class PermanentError(FailoverError):
    """A fatal error for this operation; retrying is useless."""


class UnconfirmedError(FailoverError):
    """The action did what it could but cannot confirm its effect (a fence that could not reach
    the site). The step is journaled ``unconfirmed`` with ``output``, and the run goes on."""

    def __init__(self, message: str, *, output: Mapping[str, object]) -> None:
        super().__init__(message)
        self.output = output


class AuthError(PermanentError):
    """Credentials were rejected, even after one re-authentication."""


class StaleEpochError(PermanentError):
    """A mutating action carried a fencing epoch older than the current one."""


class ProtocolError(PermanentError):
    """A peer answered in a way that breaks its published contract (malformed body, ...)."""


@dataclass(frozen=True)
class Issue:
    """One problem found in an input file: where, and what to do about it."""

    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.message}"


class InputError(FailoverError):
    """Bad input from a human (config, playbook, CLI arguments). The CLI exits with 2."""

    def __init__(self, issues: Sequence[Issue] | str) -> None:
        if isinstance(issues, str):
            issues = [Issue(file="<input>", line=None, message=issues)]
        self.issues: tuple[Issue, ...] = tuple(issues)
        super().__init__("\n".join(str(i) for i in self.issues))


class ConfigError(InputError):
    """A configuration file is invalid; ``issues`` lists every problem, not only the first."""


class PlaybookError(InputError):
    """A playbook is invalid; ``issues`` lists every problem, not only the first."""
