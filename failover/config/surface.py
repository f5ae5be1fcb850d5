"""Config of the operations surface: the daemon's HTTP API and where notifications go.

Kept beside :mod:`failover.config.models` (which adds ``api`` and ``notifications`` to the
config) so the surface's settings read as one piece. Tokens and passwords are
:class:`~providers.base.Credential` s (env or file), never inline.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from providers.base import Credential


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


#: the roles an API token may carry (the runbook's operators and roles replace this list later)
ApiRole = Literal["viewer", "operator", "approver", "alertmanager", "admin"]


class ApiToken(_Model):
    """One bearer token: who it is, what it may do, where the secret comes from."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.@-]+$", description="who uses it (shown as the approver)")
    roles: tuple[ApiRole, ...] = Field(min_length=1)
    token: Credential


class ApiTls(_Model):
    cert: Path
    key: Path


class ApiConfig(_Model):
    """The daemon's HTTP API, metrics and status page."""

    listen: str = Field(default="127.0.0.1:8480", pattern=r"^[^:\s]+:\d{1,5}$",
                        description="HOST:PORT to listen on (port 0: a free port, written to the state dir)")
    tls: ApiTls | None = None
    tokens: tuple[ApiToken, ...] = ()
    public_url: str | None = Field(default=None, description="base URL for links in notifications")
    alerts_vote: bool = Field(
        default=False, description="a firing alert counts as one failing critical component check of its site "
        "(one vote among the components); default: it only makes the site degraded")
    refresh_s: float = Field(default=2.0, gt=0, le=60, description="how often the status page refreshes")

    @property
    def host(self) -> str:
        return self.listen.rsplit(":", 1)[0]

    @property
    def port(self) -> int:
        return int(self.listen.rsplit(":", 1)[1])


class MatrixChannel(_Model):
    """A Matrix room (openDesk's Element): ``m.room.message`` sent with a bot's access token."""

    kind: Literal["matrix"]
    homeserver: str = Field(description="base URL of the homeserver's client-server API")
    room: str = Field(pattern=r"^[!#]\S+$", description="room id (!x…) or alias (#x:server)")
    access_token: Credential


class EmailChannel(_Model):
    """E-mail through an SMTP server (STARTTLS when ``starttls``)."""

    kind: Literal["email"]
    host: str
    port: int = Field(default=587, ge=1, le=65535)
    starttls: bool = True
    verify_tls: bool = True
    username: Credential | None = None
    password: Credential | None = None
    sender: str = Field(pattern=r"^[^@\s]+@[^@\s]+$")
    to: tuple[Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$")], ...] = Field(min_length=1)


class WebhookChannel(_Model):
    """A JSON POST to a URL (Idempotency-Key header: the receiver may see a notice twice)."""

    kind: Literal["webhook"]
    url: str = Field(pattern=r"^https?://")


Channel = Annotated[MatrixChannel | EmailChannel | WebhookChannel, Field(discriminator="kind")]


class NotificationsConfig(_Model):
    """Where notices go. ``sites`` lists, per site, the channels that do not depend on it: a
    failover away from that site notifies only through those (default: every channel)."""

    channels: dict[str, Channel] = Field(default_factory=dict)
    sites: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    attempts: int = Field(default=50, ge=1, description="delivery attempts before a notice is given up")
    backoff: float = Field(default=2.0, gt=0, description="first retry delay, seconds (doubles, max 300)")
    timeout: float = Field(default=10.0, gt=0, le=120, description="one delivery attempt's timeout")

    @model_validator(mode="after")
    def _known_channels(self) -> NotificationsConfig:
        bad = [n for n in self.channels if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", n)]
        if bad:
            raise ValueError(f"notifications.channels: name(s) {', '.join(map(repr, bad))} may only use letters, "
                             "digits, '.', '_' and '-'")
        for site, names in self.sites.items():
            unknown = [n for n in names if n not in self.channels]
            if unknown:
                raise ValueError(f"notifications.sites.{site}: unknown channel(s) {', '.join(unknown)} "
                                 f"(channels: {', '.join(self.channels) or 'none'})")
        return self

    def for_site(self, site: str | None) -> list[str]:
        """The channels to use for an event about ``site`` (its own list, else all)."""
        if site is not None and site in self.sites:
            return list(self.sites[site])
        return list(self.channels)
