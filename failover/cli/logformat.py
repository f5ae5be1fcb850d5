"""``--log-format json``: one JSON object per log line, for log shippers (Loki, Elastic, journald).

Secrets are masked in the message *before* it is encoded (a secret with a quote or a backslash
would no longer match once JSON-escaped), and again in the encoded line.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from failover.core import secrets


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": secrets.redact(record.getMessage()),
        }
        if record.exc_info:
            event["exception"] = secrets.redact(self.formatException(record.exc_info))
        task = getattr(record, "taskName", None)
        if task:
            event["task"] = task
        return secrets.redact(json.dumps(event, ensure_ascii=False))
