"""Log output: the request id every line carries, one JSON object per line for machines,
and a plain line a person can read when stderr is a terminal."""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from typing import Any, TextIO

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
"""The id of the request being served on this task or thread (``-`` outside one)."""

FIELDS = ("request_id", "method", "path", "route", "status", "duration_ms", "owner")
"""Structured extras a log call may pass (``extra={...}``)."""


class JsonFormatter(logging.Formatter):
    """One JSON object per log line, with the request id and any structured extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", REQUEST_ID.get()),
        }
        entry.update({f: getattr(record, f) for f in FIELDS if hasattr(record, f)})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


class ReadableFormatter(logging.Formatter):
    """``12:00:01 INFO  voicepocket.access  POST /v1/audio/speech 200 41.2ms  [id]``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-5s %(name)s  %(message)s", "%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        request_id = getattr(record, "request_id", REQUEST_ID.get())
        return line if request_id == "-" else f"{line}  [{request_id}]"


def configure_logging(level: int = logging.INFO, *, stream: TextIO | None = None) -> None:
    """Logs on ``stream`` (stderr): readable lines on a terminal, JSON lines otherwise."""
    stream = stream or sys.stderr
    handler = logging.StreamHandler(stream)
    readable = hasattr(stream, "isatty") and stream.isatty()
    handler.setFormatter(ReadableFormatter() if readable else JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
