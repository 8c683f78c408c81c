"""Log rate limiting: the same error at the same place is written at most N times per interval.

A dependency that is down, or a client that sends the same bad request in a loop, must not
turn every call into a log line (let alone a traceback): the log would drown what matters,
and writing it would cost more than serving. :class:`RateLimitFilter` lets through, for
each *kind* of record, at most ``lines`` records per ``interval`` seconds, and when the
interval is over writes one summary — ``"K more like this suppressed in the last 10 s:
<message>"`` — for the ones it held back.

A kind is the logger, the place in the code that logged (file and line), the handler the
record was written in, and the exception type. Only error records are limited: those at
WARNING and above, those with a traceback, and those that name an ``error`` (cordio's own
lines about a handled exception do); ordinary INFO and DEBUG lines always pass.

Summaries are written when the next record of the same kind arrives after the interval,
when any record arrives and a pending summary is due (checked at most once a second), and
when the handler is closed (``logging.shutdown`` at exit, or logging configured again), so
none is lost.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

_SUMMARY = "_cordio_summary"
_MAX_KINDS = 10_000  # bounded memory however many places log errors


class RateLimitSettings(BaseModel):
    """``log.rate_limit``: at most ``lines`` error records of one kind per ``interval``.

    Attributes:
        lines: records of one kind written per interval (default 10; 0 turns the limit
            off).
        interval: seconds (default 10).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    lines: int = Field(10, ge=0)
    interval: float = Field(10.0, gt=0)


@dataclass
class _Window:
    start: float
    written: int
    suppressed: int = 0
    level: int = logging.WARNING
    sample: str = ""
    logger: str = ""
    handler: str | None = None


Kind = tuple[str, str, int, object, object]


class RateLimitFilter(logging.Filter):
    """A logging filter for one handler that holds back repeated error records.

    Thread-safe: records may come from any thread.

    Args:
        settings: the limit.
        write: how a summary record is written (the handler's ``handle``).
        clock: seconds, monotonic; default :func:`time.monotonic`.

    Attributes:
        suppressed_total: records held back since the filter was made.
    """

    def __init__(
        self,
        settings: RateLimitSettings,
        write: Callable[[logging.LogRecord], object],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.settings = settings
        self._write = write
        self._clock = clock
        self._windows: dict[Kind, _Window] = {}
        self._lock = threading.Lock()
        self._next_sweep = 0.0
        self.suppressed_total = 0

    def filter(self, record: logging.LogRecord) -> bool:
        lines = self.settings.lines
        if lines == 0 or getattr(record, _SUMMARY, False):
            return True
        now = self._clock()
        due: list[_Window] = []
        allow = True
        error = getattr(record, "error", None)
        exc_info = record.exc_info
        if record.levelno >= logging.WARNING or exc_info or error is not None:
            if exc_info and exc_info[0] is not None:
                error = exc_info[0].__name__
            handler = getattr(record, "handler", None)
            kind: Kind = (record.name, record.pathname, record.lineno, handler, error)
            with self._lock:
                window = self._windows.get(kind)
                if window is None or now - window.start >= self.settings.interval:
                    if window is not None and window.suppressed:
                        due.append(window)
                    if window is None and len(self._windows) >= _MAX_KINDS:
                        due.extend(self._sweep(now, everything=True))
                    self._windows[kind] = _Window(now, 1)
                elif window.written < lines:
                    window.written += 1
                else:
                    allow = False
                    self.suppressed_total += 1
                    if not window.suppressed:
                        window.level = record.levelno
                        window.sample = record.getMessage()
                        window.logger = record.name
                        window.handler = handler if isinstance(handler, str) else None
                    window.suppressed += 1
        if now >= self._next_sweep:
            with self._lock:
                self._next_sweep = now + 1.0
                due.extend(self._sweep(now))
        for window in due:
            self._summarise(window)
        return allow

    def _sweep(self, now: float, everything: bool = False) -> list[_Window]:
        """Forget finished windows; return those with records held back. Holds the lock."""
        interval = self.settings.interval
        done = [k for k, w in self._windows.items() if everything or now - w.start >= interval]
        due = []
        for kind in done:
            window = self._windows.pop(kind)
            if window.suppressed:
                due.append(window)
        return due

    def flush(self) -> None:
        """Write the summaries of every window with records held back, due or not."""
        with self._lock:
            due = self._sweep(self._clock(), everything=True)
        for window in due:
            self._summarise(window)

    def _summarise(self, window: _Window) -> None:
        record = logging.LogRecord(
            window.logger,
            window.level,
            __file__,
            0,
            "%d more like this suppressed in the last %g s: %s",
            (window.suppressed, self.settings.interval, window.sample),
            None,
        )
        setattr(record, _SUMMARY, True)
        record.handler = window.handler
        record.suppressed = window.suppressed
        self._write(record)


class RateLimitedStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler that writes the rate limiter's pending summaries when it is closed
    (``logging.shutdown`` closes it at exit)."""

    rate_limit: RateLimitFilter | None = None

    def close(self) -> None:
        if self.rate_limit is not None:
            limiter, self.rate_limit = self.rate_limit, None
            limiter.flush()
        super().close()
