"""Logging set-up: console (human, colour on a TTY) or JSON lines, level per logger, and
the log destinations: the console, a rotating file, PostgreSQL and the message broker
(:mod:`cordio.observe.sinks`).

Every record carries the app name and, inside a handler call, the handler name, the
trace id and, for a message, the message id (from :func:`cordio.context.current_context`).
Every destination rate limits repeated errors, cuts messages and tracebacks longer than
``log.max_message_chars`` and masks secrets (:func:`add_filters`).
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
from cordio.observe.sinks.settings import (
    BrokerSinkSettings,
    ConsoleSettings,
    FileSettings,
    PostgresSinkSettings,
)
from cordio.observe.tracing import current_stage
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
        max_message_chars: a message, or a traceback, longer than this is cut to about
            this many characters in every destination (default 16384; see
            :class:`TruncateFilter`).
        console: the console destination (:class:`~.sinks.settings.ConsoleSettings`).
        file: a rotating log file (:class:`~.sinks.settings.FileSettings`); off by default.
        postgres: a PostgreSQL table (:class:`~.sinks.settings.PostgresSinkSettings`);
            off by default.
        broker: messages through the app's publisher
            (:class:`~.sinks.settings.BrokerSinkSettings`); off by default.
    """

    level: str = "INFO"
    format: Literal["console", "json"] = "console"
    levels: dict[str, str] = Field(default_factory=lambda: {"uvicorn.access": "WARNING"})
    mask_patterns: list[str] = Field(default_factory=lambda: list(DEFAULT_PATTERNS))
    rate_limit: RateLimitSettings = Field(default_factory=RateLimitSettings)
    max_message_chars: int = Field(16_384, ge=100)
    console: ConsoleSettings = Field(default_factory=ConsoleSettings)
    file: FileSettings = Field(default_factory=FileSettings)
    postgres: PostgresSinkSettings = Field(default_factory=PostgresSinkSettings)
    broker: BrokerSinkSettings = Field(default_factory=BrokerSinkSettings)

    def model_post_init(self, context: Any, /) -> None:
        bad = [lvl for lvl in [self.level, *self.levels.values()] if lvl.upper() not in _LEVELS]
        if bad:
            raise ValueError(f"unknown log level(s) {bad}; use one of {sorted(_LEVELS)}")


class ContextFilter(logging.Filter):
    """Adds ``app``, ``layer``, ``stage`` (:func:`cordio.stage`), ``handler``, ``trace_id``
    and ``message_id`` attributes to every record (the last three from the current context;
    ``None`` outside one)."""

    def __init__(self, app_name: str) -> None:
        super().__init__()
        self.app_name = app_name

    def filter(self, record: logging.LogRecord) -> bool:
        record.app = self.app_name
        layers = current_layers()
        record.layer = layers[-1] if layers else None
        record.stage = current_stage()
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
    ``app``, ``handler``, ``trace_id``, ``layer``, ``message_id``, ``stage`` (when known),
    the line's own structured ``fields`` (a dict given as ``extra={"fields": {...}}``, e.g.
    the access log's ``status``), and ``exc`` with the traceback when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "app": getattr(record, "app", None),
        }
        for key in ("handler", "trace_id", "layer", "message_id", "stage"):
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


class TruncateFilter(logging.Filter):
    """Bounds a record's text: a message longer than ``limit`` characters keeps its first
    ``limit`` (less the word cut in two) and ends ``… [N more characters]``; a traceback
    longer than that keeps its last ``limit`` (the exception and the innermost frames)
    after ``[N characters left out] …``. A huge payload logged by mistake costs every
    destination a bounded line, and masking a bounded text.

    It runs before the masking filter, so that masking never reads more than ``limit``
    characters; dropping the word cut in two keeps a secret at the cut from being left
    half-written and unrecognised."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def filter(self, record: logging.LogRecord) -> bool:
        limit = self.limit
        message = record.getMessage()
        if len(message) > limit:
            record.msg = truncate(message, limit)
            record.args = None
        if record.exc_info and record.exc_text is None:
            record.exc_text = _plain.formatException(record.exc_info)
        if record.exc_text and len(record.exc_text) > limit:
            text = record.exc_text
            record.exc_text = f"[{len(text) - limit} characters left out] …{text[-limit:]}"
        return True


_plain = logging.Formatter()


def truncate(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, less the word cut in two (up to 64
    characters back), with ``… [N more characters]`` after it."""
    if len(text) <= limit:
        return text
    head = text[:limit]
    if not text[limit].isspace():
        space = max(head.rfind(" ", limit - 64), head.rfind("\n", limit - 64))
        head = head[: space + 1] if space > 0 else head[: limit - 64]
    return f"{head}… [{len(text) - len(head)} more characters]"


def add_filters(
    handler: logging.Handler,
    app_name: str,
    settings: LogSettings,
    masker: Masker | None = None,
) -> None:
    """Give a destination's handler what every destination has: the context (app,
    handler, trace id), its own rate limit of repeated errors (its summaries written
    through ``handler``; kept as ``handler.rate_limit``), the bound on message length and
    masking of secrets (by ``masker``; default: ``settings.mask_patterns``)."""
    handler.addFilter(ContextFilter(app_name))
    limiter = RateLimitFilter(settings.rate_limit, handler.handle)
    handler.rate_limit = limiter  # type: ignore[attr-defined]
    handler.addFilter(limiter)  # after the context: the handler is part of a kind
    handler.addFilter(TruncateFilter(settings.max_message_chars))  # before masking: bounded
    handler.addFilter(MaskingFilter(masker or Masker(settings.mask_patterns)))


def _formatter(fmt: str, colour: bool = False) -> logging.Formatter:
    return JsonFormatter() if fmt == "json" else ConsoleFormatter(colour=colour)


def _console_handler(
    app_name: str, settings: LogSettings, out: TextIO, masker: Masker
) -> RateLimitedStreamHandler | None:
    console = settings.console
    if not console.enabled:
        return None
    handler = RateLimitedStreamHandler(out)
    fmt = console.format or settings.format
    tty = out.isatty()
    formatter = _formatter(fmt, colour=tty)
    if fmt == "console" and tty and console.rich:
        from cordio.observe.sinks import pretty

        if pretty.available():
            formatter = pretty.RichConsoleFormatter(masker)
    handler.setFormatter(formatter)
    if console.level:
        handler.setLevel(console.level)
    add_filters(handler, app_name, settings, masker)
    return handler


def _file_handler(app_name: str, settings: LogSettings, masker: Masker) -> logging.Handler | None:
    if not settings.file.path:
        return None
    from cordio.observe.sinks.file import file_handler

    try:
        handler = file_handler(settings.file)
    except OSError as exc:
        logging.getLogger("cordio.observe.sinks.file").error(
            "log.file.path: cannot write %s (%s); logging without the file",
            settings.file.path,
            exc.strerror or exc,
        )
        return None
    handler.setFormatter(_formatter(settings.file.format))
    if settings.file.level:
        handler.setLevel(settings.file.level)
    add_filters(handler, app_name, settings, masker)
    return handler


def configure_logging(
    app_name: str,
    settings: LogSettings,
    stream: TextIO | None = None,
    masker: Masker | None = None,
) -> None:
    """Install cordio's handlers on the root logger (replacing those installed earlier):
    the console (unless ``log.console.enabled`` is false) and the file (``log.file.path``).

    The queued destinations (PostgreSQL, broker) need the running app; they are started
    with it (:mod:`cordio.observe.sinks.service`).

    Args:
        app_name: written into every record.
        settings: the ``log`` section.
        stream: where the console writes; default ``sys.stderr``.
        masker: what to mask in every line (default: ``settings.mask_patterns``); the run's
            knows the secret values of its settings.
    """
    out = stream or sys.stderr
    masker = masker or Masker(settings.mask_patterns)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_cordio", False)]:
        root.removeHandler(old)
        limiter = getattr(old, "rate_limit", None)
        if isinstance(old, RateLimitedStreamHandler) and limiter is not None:
            limiter.flush()  # what the old handler held back, before it goes
        elif isinstance(old, logging.FileHandler):
            old.close()  # flushes its limiter too
    console = _console_handler(app_name, settings, out, masker)
    if console is not None:
        console._cordio = True  # type: ignore[attr-defined]
        root.addHandler(console)
    file = _file_handler(app_name, settings, masker)  # a file it cannot open is said on the console
    if file is not None:
        file._cordio = True  # type: ignore[attr-defined]
        root.addHandler(file)
    root.setLevel(settings.level.upper())
    for name, level in settings.levels.items():
        logging.getLogger(name).setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
