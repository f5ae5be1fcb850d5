"""Sane bounds of the config's numbers and names, and the backup schedule syntax.

A value outside these bounds is a typo or a hostile input, never a deliberate choice: a probe
interval of 1e300 s disables watching, ``rpo: .inf`` disables the data-loss guard, a
100,000-character site name ends up in every log line and DNS label. The bounds are generous for
real deployments and documented in one place; the models refer to them by name.
"""

from __future__ import annotations

import re

NAME = 63  #: a DNS label: site, component, provider and region names
TEXT = 200  #: a title or a short description
HOUR = 3600.0
PROBE_TIMEOUT = 300.0  #: one probe of one endpoint
MONTH = 30 * 24 * 3600.0  #: RPO, RTO, cool-down
COUNT = 1000  #: fail_after, recover_after, concurrency
MIN_EVERY_S = 1.0  #: the shortest backup interval that is not a typo
MAX_EVERY_S = 7 * 24 * 3600.0

_EVERY = re.compile(r"^@every\s+((?:\d+(?:\.\d+)?(?:ms|s|m|h))+)$")
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def every_seconds(schedule: str) -> float | None:
    """``"@every 1m30s"`` → 90.0; None when ``schedule`` is not an ``@every`` schedule."""
    match = _EVERY.match(schedule.strip())
    if match is None:
        return None
    return sum(float(n) * _UNITS[u] for n, u in _PART.findall(match.group(1)))


def check_schedule(schedule: str) -> str:
    """The schedule if it is ``@every <duration>`` within bounds, else ValueError saying why."""
    seconds = every_seconds(schedule)
    if seconds is None:
        raise ValueError(f"{schedule!r} is not a schedule; write '@every <duration>', e.g. '@every 10m'")
    if not MIN_EVERY_S <= seconds <= MAX_EVERY_S:
        raise ValueError(f"{schedule!r}: the interval must be from {MIN_EVERY_S:g}s to "
                         f"{MAX_EVERY_S / 86400:g} days")
    return schedule
