"""Logging set-up: console (human, colour on a TTY) or JSON lines, level per logger.

Every record carries the app name and, inside a handler call, the handler name, the
trace id and, for a message, the message id (from :func:`cordio.context.current_context`).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, Literal, TextIO

from pydantic import Field

from cordio.context import current_context
from cordio.observe.masking import DEFAULT_PATTERNS, Masker, MaskingFilter
from cordio.observe.ratelimit import RateLimitedStreamHandler, RateLimitFilter, RateLimitSettings
from cordio.policy.layer import current_layers
from cordio.settings import Settings

_LEVELS = {"CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG", "NOTSET"}


class LogSettings(Settings, section="log"):
    """The ``log`` section.

    Attributes:
        level: root level (default ``INFO``).
        format: ``console`` (human; colour when the stream is a TTY) or ``json`` (one JSON
            object per line). Default ``console``.
        levels: logger name → level, e.g. ``{"uvicorn.access": "WARNING"}``.
        mask_patterns: words that make a key secret; its values, and passwords in URLs,
            are masked in every log line (see :mod:`cordio.observe.masking`).
        rate_limit: at most ``rate_limit.lines`` (10) error lines of one kind — logger,
            place in the code, handler, exception type — per ``rate_limit.interval`` (10 s),
            then one "K more like this suppressed" line (see
            :mod:`cordio.observe.ratelimit`); ``lines = 0`` writes every line.
    """

    level: str = "INFO"
    format: Literal["console", "json"] = "console"
    levels: dict[str, str] = Field(default_factory=lambda: {"uvicorn.access": "WARNING"})
    mask_patterns: list[str] = Field(default_factory=lambda: list(DEFAULT_PATTERNS))
    rate_limit: RateLimitSettings = Field(default_factory=RateLimitSettings)

    def model_post_init(self, context: Any, /) -> None:
        bad = [lvl for lvl in [self.level, *self.levels.values()] if lvl.upper() not in _LEVELS]
        if bad:
            raise ValueError(f"unknown log level(s) {bad}; use one of {sorted(_LEVELS)}")


class ContextFilter(logging.Filter):
    """Adds ``app``, ``layer``, ``handler``, ``trace_id`` and ``message_id`` attributes to
    every record (the last three from the current context; ``None`` outside one)."""

    def __init__(self, app_name: str) -> None:
        super().__init__()
        self.app_name = app_name

    def filter(self, record: logging.LogRecord) -> bool:
        record.app = self.app_name
        layers = current_layers()
        record.layer = layers[-1] if layers else None
        if getattr(record, "handler", None) is None:
            ctx = current_context()
            record.handler = ctx.handler if ctx is not None else None
            if getattr(record, "trace_id", None) is None:
                record.trace_id = ctx.trace_id if ctx is not None else None
            if getattr(record, "message_id", None) is None:
                record.message_id = ctx.message_id if ctx is not None else None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts`` (RFC 3339, UTC), ``level``, ``logger``, ``message``,
    ``app``, ``handler``, ``trace_id``, ``layer``, ``message_id`` (when known), the line's
    own structured ``fields`` (a dict given as ``extra={"fields": {...}}``, e.g. the access
    log's ``status``), and ``exc`` with the traceback when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "app": getattr(record, "app", None),
        }
        for key in ("handler", "trace_id", "layer", "message_id"):
            value = getattr(record, key, None)
            if value is not None:
                out[key] = value
        fields = getattr(record, "fields", None)  # structured fields of the line
        if isinstance(fields, dict):
            for key, value in fields.items():
                out.setdefault(key, value)
        if record.exc_info:
            out["exc"] = record.exc_text or self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


_COLOURS = {"DEBUG": "\x1b[2m", "INFO": "\x1b[32m", "WARNING": "\x1b[33m", "ERROR": "\x1b[31m"}


class ConsoleFormatter(logging.Formatter):
    """``HH:MM:SS LEVEL logger [app handler trace] message``; colour when asked."""

    def __init__(self, colour: bool) -> None:
        super().__init__()
        self.colour = colour

    def format(self, record: logging.LogRecord) -> str:
        level = record.levelname
        if self.colour:
            level = f"{_COLOURS.get(level, chr(27) + '[1;31m')}{level:<7}\x1b[0m"
        else:
            level = f"{level:<7}"
        where = [str(getattr(record, "app", "") or "")]
        handler = getattr(record, "handler", None)
        if handler:
            where.append(handler)
        trace = getattr(record, "trace_id", None)
        if trace:
            where.append(trace[:16])
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        line = f"{stamp} {level} {record.name} [{' '.join(where)}] {record.getMessage()}"
        if record.exc_info:
            line += "\n" + (record.exc_text or self.formatException(record.exc_info))
        return line


def configure_logging(
    app_name: str,
    settings: LogSettings,
    stream: TextIO | None = None,
    masker: Masker | None = None,
) -> None:
    """Install cordio's handler on the root logger (replacing one installed earlier).

    Args:
        app_name: written into every record.
        settings: the ``log`` section.
        stream: where to write; default ``sys.stderr``.
        masker: what to mask in every line (default: ``settings.mask_patterns``); the run's
            knows the secret values of its settings.
    """
    out = stream or sys.stderr
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_cordio", False)]:
        root.removeHandler(old)
        if isinstance(old, RateLimitedStreamHandler) and old.rate_limit is not None:
            old.rate_limit.flush()  # what the old handler held back, before it goes
    handler = RateLimitedStreamHandler(out)
    handler._cordio = True  # type: ignore[attr-defined]
    if settings.format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(ConsoleFormatter(colour=out.isatty()))
    handler.addFilter(ContextFilter(app_name))
    handler.rate_limit = RateLimitFilter(settings.rate_limit, handler.handle)
    handler.addFilter(handler.rate_limit)  # after the context: the handler is part of a kind
    handler.addFilter(MaskingFilter(masker or Masker(settings.mask_patterns)))
    root.addHandler(handler)
    root.setLevel(settings.level.upper())
    for name, level in settings.levels.items():
        logging.getLogger(name).setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
