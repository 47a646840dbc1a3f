"""The daemon's log: text lines on a terminal, JSON lines otherwise, each with time, level, event, report and run id.

Plain stdlib ``logging``: ``log_event`` puts the event name and fields on the record, the formatters lay them out.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

LOGGER_NAME = "reportctl.daemon"
LogFormat = Literal["text", "json"]
_FIELDS = "reportctl_fields"


def log_event(logger: logging.Logger, level: int, event: str, message: str = "", **fields: Any) -> None:
    """Log ``event`` (a short name such as ``run.completed``) with ``message`` and fields (report, run_id, ...)."""
    logger.log(level, message or event, extra={"event": event, _FIELDS: fields})


def _parts(record: logging.LogRecord) -> tuple[str, str, dict[str, Any]]:
    at = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    event = str(getattr(record, "event", record.name))
    fields: dict[str, Any] = {"report": None, "run_id": None, **getattr(record, _FIELDS, {})}
    return at, event, fields


class JsonLineFormatter(logging.Formatter):
    """One JSON object per line: time, level, event, report, run_id, message, then any other fields."""

    def format(self, record: logging.LogRecord) -> str:
        at, event, fields = _parts(record)
        line: dict[str, Any] = {"time": at, "level": record.levelname.lower(), "event": event}
        line.update(report=fields.pop("report"), run_id=fields.pop("run_id"), message=record.getMessage())
        line.update(fields)
        if record.exc_info:
            line["traceback"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


class TextFormatter(logging.Formatter):
    """``time LEVEL event [report] [run_id] message key=value ...`` for a person at a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        at, event, fields = _parts(record)
        report, run_id = fields.pop("report"), fields.pop("run_id")
        parts = [at, f"{record.levelname:<7}", event]
        parts += [str(value) for value in (report, run_id) if value]
        message = record.getMessage()
        if message != event:
            parts.append(message)
        parts += [f"{key}={value}" for key, value in fields.items() if value is not None]
        text = " ".join(parts)
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def configure_logging(log_format: LogFormat | None = None, stream: TextIO | None = None) -> logging.Logger:
    """The daemon's logger writing to ``stream`` (stderr): text on a terminal, JSON lines otherwise, unless told."""
    stream = stream or sys.stderr
    chosen = log_format or ("text" if stream.isatty() else "json")
    handler = logging.StreamHandler(stream)
    handler.setFormatter(TextFormatter() if chosen == "text" else JsonLineFormatter())
    # APScheduler's own warnings (a job that raised, a lost fire) go to the same stream in the same format
    for name, level in ((LOGGER_NAME, logging.INFO), ("apscheduler", logging.WARNING)):
        logger = logging.getLogger(name)
        for old in list(logger.handlers):
            logger.removeHandler(old)
        logger.addHandler(handler)
        logger.setLevel(level)
        logger.propagate = False
    return logging.getLogger(LOGGER_NAME)


__all__ = ["LOGGER_NAME", "JsonLineFormatter", "LogFormat", "TextFormatter", "configure_logging", "log_event"]
