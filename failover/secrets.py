"""Keeping secrets out of logs, reports and error messages.

Every secret the process learns at run time (API tokens, passwords, S3 keys) is registered here
with :func:`register`. A logging filter installed by :func:`install_log_filter` replaces every
registered value in every log record, and :func:`redact` does the same for any text that is about
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


class RedactingFilter(logging.Filter):
    """A logging filter that masks registered secrets in the final message."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _current_pattern() is None:
            return True
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg = cleaned
            record.args = None
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def install_log_filter(logger: logging.Logger | None = None) -> None:
    """Install the redacting filter on every handler of ``logger`` (default: the root logger)."""
    target = logger or logging.getLogger()
    for handler in target.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
