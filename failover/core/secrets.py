"""Keeping secrets out of logs, reports and error messages.

Every secret the process learns at run time (API tokens, passwords, S3 keys) is registered here
with :func:`register`. :func:`install_log_filter` wraps every handler's formatter so that every
registered value is masked in every log line, and :func:`redact` does the same for any text that is about
to leave the process (an error message, a report, a journal entry). Registering is cheap and
idempotent, so adapters register each token as they receive it.
"""

from __future__ import annotations

import logging
import re
import threading

_MIN_LEN = 6  # shorter values would redact ordinary words; real secrets are longer
_lock = threading.Lock()
_values: set[str] = set()
_pattern: re.Pattern[str] | None = None

MASK = "***"


_dirty = False


def register(value: str | None) -> None:
    """Remember ``value`` as a secret so it is masked wherever it would be printed.

    Cheap: the matching pattern is rebuilt lazily, on the next redaction after a change."""
    global _dirty
    if not value or len(value) < _MIN_LEN:
        return
    with _lock:
        if value not in _values:
            _values.add(value)
            _dirty = True


def _current_pattern() -> re.Pattern[str] | None:
    global _pattern, _dirty
    if _dirty:
        with _lock:
            ordered = sorted(_values, key=len, reverse=True)
            _pattern = re.compile("|".join(re.escape(v) for v in ordered)) if ordered else None
            _dirty = False
    return _pattern


def redact(text: str) -> str:
    """Return ``text`` with every registered secret replaced by ``***``."""
    if not text:
        return text
    pattern = _current_pattern()
    if pattern is None:
        return text
    return pattern.sub(MASK, text)


def known() -> frozenset[str]:
    """The registered secrets (for tests that grep output for leaks)."""
    with _lock:
        return frozenset(_values)


class RedactingFormatter(logging.Formatter):
    """Wraps a handler's formatter and masks registered secrets in what it produces.

    A formatter, not a filter: filters rewrite the shared log record in place, so one handler's
    redaction would change what every other handler sees; formatting is per handler."""

    def __init__(self, inner: logging.Formatter | None = None) -> None:
        super().__init__()
        self.inner = inner or logging.Formatter()

    def format(self, record: logging.LogRecord) -> str:
        return redact(self.inner.format(record))


def install_log_filter(logger: logging.Logger | None = None) -> None:
    """Make every handler of ``logger`` (default: the root logger) mask registered secrets."""
    target = logger or logging.getLogger()
    for handler in target.handlers:
        if not isinstance(handler.formatter, RedactingFormatter):
            handler.setFormatter(RedactingFormatter(handler.formatter))
