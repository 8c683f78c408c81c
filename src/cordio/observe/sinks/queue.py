"""A log destination that never blocks the code that logs: a bounded queue written in
batches by a background task.

:class:`QueueSink` is a :class:`logging.Handler`. Its ``emit()`` — run in whatever thread
logged, inside the handler call that logged — only copies the record's facts into a small
dict (the filters before it have masked and bounded the text) and appends it to a queue of
at most ``queue_size`` entries; when the queue is full the record is dropped and counted.
Nothing in ``emit()`` waits for a network, a lock held across I/O or the event loop: a
destination that is down or slow costs a handler the same few microseconds as one that is
up.

A task on the app's event loop takes up to ``batch_size`` entries every
``flush_interval`` seconds (at once when a full batch is waiting) and writes them
(:meth:`QueueSink.write`). A write that fails because the destination cannot be reached is
tried again later, backing off up to 30 s, while new records wait in the queue (or are
dropped once it is full); any other failure drops that batch. Drops are counted
(:attr:`QueueSink.dropped`, :attr:`QueueSink.failed`) and reported by a warning at most
once per ``warn_interval`` seconds, written to the other destinations only.

Nothing a sink logs about itself, nor anything logged while it writes (by the database
driver, the broker's client), comes back into it: records of the ``cordio.observe.sinks``
loggers, and records made inside the writing task, are left out. So a destination that is
down never feeds itself lines about being down.

At shutdown (:meth:`QueueSink.stop`) the handler leaves the root logger first — nothing is
accepted after that — then what is queued is written within ``shutdown_timeout`` seconds;
what could not be is counted and reported.
"""

from __future__ import annotations

import abc
import asyncio
import contextvars
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, ClassVar

from cordio.observe.sinks.settings import _Queued

#: Loggers under this name never reach a queued destination.
SINK_LOGGERS = "cordio.observe.sinks"
_writing: contextvars.ContextVar[bool] = contextvars.ContextVar("cordio_log_sink", default=False)
_MAX_BACKOFF = 30.0
_plain = logging.Formatter()

Entry = dict[str, Any]


def entry(record: logging.LogRecord) -> Entry:
    """The facts of ``record`` a queued destination keeps (cheap: no formatting but the
    message's own, no JSON)."""
    exc_text = record.exc_text
    exc_info = record.exc_info
    if exc_text is None and exc_info and exc_info[0] is not None:
        exc_text = _plain.formatException(exc_info)
    error = getattr(record, "error", None)
    if exc_info and exc_info[0] is not None:
        error = exc_info[0].__name__
    fields = getattr(record, "fields", None)
    return {
        "ts": record.created,
        "level": record.levelname,
        "logger": record.name,
        "message": record.getMessage(),
        "app": getattr(record, "app", None),
        "handler": getattr(record, "handler", None),
        "trace_id": getattr(record, "trace_id", None),
        "message_id": getattr(record, "message_id", None),
        "fields": dict(fields) if isinstance(fields, dict) else None,
        "exc": exc_text,
        "error": None if error is None else str(error),
    }


def clean(text: str | None) -> str | None:
    """``text`` as valid UTF-8 without NUL characters (which PostgreSQL's ``text`` refuses):
    lone surrogates (from undecodable bytes) become backslash escapes, NUL ``\\x00``."""
    if text is None:
        return None
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


class _NotOwnLines(logging.Filter):
    """Leaves out records of the sinks' own loggers and records made while a sink writes."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (_writing.get() or record.name.startswith(SINK_LOGGERS))


class QueueSink(logging.Handler, abc.ABC):
    """A handler queueing records for a background writer; subclasses :meth:`write`.

    Args:
        settings: the destination's settings (queue and batch sizes, intervals, level).
        clock: monotonic seconds (tests may pass their own).

    Attributes:
        accepted: records queued.
        written: records written.
        dropped: records dropped because the queue was full, or still queued when the
            shutdown timeout passed.
        failed: records dropped because their write failed.
        last_error: the last write's exception, or ``None``.
    """

    #: The destination's name in warnings and ``/info`` (``log.postgres``).
    kind: ClassVar[str] = "log.queue"

    def __init__(self, settings: _Queued, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(settings.level)
        self.settings = settings
        self._clock = clock
        self._queue: deque[Entry] = deque()
        self._max = settings.queue_size
        self._batch = settings.batch_size
        self._retry: list[Entry] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: int | None = None
        self._wake = asyncio.Event()
        self._woken = False
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._failures = 0
        self._retry_at = 0.0
        self._last_warning = -math.inf
        self._reported = 0
        self.accepted = 0
        self.written = 0
        self.dropped = 0
        self.failed = 0
        self.last_error: BaseException | None = None
        self.log = logging.getLogger(f"{SINK_LOGGERS}.{self.kind.removeprefix('log.')}")
        self.addFilter(_NotOwnLines())

    # -- the request path --------------------------------------------------------------

    def emit(self, record: logging.LogRecord) -> None:
        """Queue the record's facts; drop and count it when the queue is full. Runs under
        the handler's lock (``Handler.handle``), in whatever thread logged."""
        if len(self._queue) >= self._max:
            self.dropped += 1
            return
        try:
            self._queue.append(entry(record))
        except Exception:
            self.handleError(record)  # a message whose arguments do not format
            return
        self.accepted += 1
        if len(self._queue) >= self._batch and not self._woken:
            self._woken = True
            self._wakeup()

    def _wakeup(self) -> None:
        loop = self._loop
        if loop is None:
            return
        if threading.get_ident() == self._thread:
            self._wake.set()
            return
        try:
            loop.call_soon_threadsafe(self._wake.set)
        except RuntimeError:  # the loop is closed: the app is gone
            pass

    # -- what a destination does -------------------------------------------------------

    async def open(self) -> None:
        """Prepare the destination (connect, create a table); a failure here is logged
        and the destination is tried again at the first write."""

    @abc.abstractmethod
    async def write(self, batch: list[Entry]) -> int:
        """Write ``batch``; return how many of its records could not be written (and are
        given up). Raise when none was written: a :meth:`retryable` exception keeps the
        batch for another try."""

    def retryable(self, exc: BaseException) -> bool:
        """Whether a failed write may succeed later (the destination is unreachable)."""
        return isinstance(exc, OSError | TimeoutError)

    async def close_destination(self) -> None:
        """Release connections at shutdown."""

    def stats(self) -> dict[str, Any]:
        """Counters for ``/info``."""
        return {
            "queued": len(self._queue) + len(self._retry),
            "accepted": self.accepted,
            "written": self.written,
            "dropped": self.dropped,
            "failed": self.failed,
            "last_error": None if self.last_error is None else repr(self.last_error),
        }

    # -- the background ----------------------------------------------------------------

    async def start(self) -> None:
        """Prepare the destination, start the writing task and join the root logger."""
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()
        self._wake = asyncio.Event()
        try:
            await self._guarded(self.open())
        except Exception as exc:
            self.last_error = exc
            self.log.warning("%s: not reachable at start (%r); retrying", self.kind, exc)
        context = contextvars.copy_context()
        context.run(_writing.set, True)  # what the writer's calls log stays out
        self._task = self._loop.create_task(
            self._run(), name=f"cordio.{self.kind}", context=context
        )
        logging.getLogger().addHandler(self)

    async def stop(self) -> None:
        """Leave the root logger, write what is queued within ``shutdown_timeout`` seconds
        and report what was lost."""
        logging.getLogger().removeHandler(self)
        self._closing = True
        self._wake.set()
        task = self._task
        if task is not None:
            done, _ = await asyncio.wait([task], timeout=self.settings.shutdown_timeout)
            if not done:
                task.cancel()
                await asyncio.wait([task])
        left = len(self._queue) + len(self._retry)
        if left:
            self.dropped += left
            self._queue.clear()
            self._retry.clear()
        self._warn(force=True)
        try:
            await self.close_destination()
        except Exception as exc:
            self.log.warning("%s: closing failed: %r", self.kind, exc)

    async def _guarded(self, step: Any) -> Any:
        return await asyncio.wait_for(step, timeout=self.settings.write_timeout)

    async def _run(self) -> None:
        while not self._closing:
            try:
                await asyncio.wait_for(self._wake.wait(), self.settings.flush_interval)
            except TimeoutError:
                pass
            self._wake.clear()
            self._woken = False
            if self._clock() >= self._retry_at or self._closing:
                await self._drain()
            self._warn()
        await self._drain()

    async def _drain(self) -> None:
        """Write batches until the queue is empty or a write must wait for a retry."""
        while True:
            batch = self._retry or self._take()
            self._retry = []
            if not batch:
                return
            try:
                lost = await self._guarded(self.write(batch))
            except asyncio.CancelledError:
                self._retry = batch
                raise
            except Exception as exc:
                self.last_error = exc
                if self.retryable(exc) and not self._closing:
                    self._retry = batch
                    self._failures += 1
                    delay = min(self.settings.flush_interval * 2**self._failures, _MAX_BACKOFF)
                    self._retry_at = self._clock() + delay
                    return
                self.failed += len(batch)
                continue
            self._failures = 0
            self.failed += lost
            self.written += len(batch) - lost

    def _take(self) -> list[Entry]:
        queue = self._queue
        return [queue.popleft() for _ in range(min(self._batch, len(queue)))]

    def _warn(self, force: bool = False) -> None:
        """One warning about records lost since the last one, at most every
        ``warn_interval`` seconds (or now, at shutdown)."""
        lost = self.dropped + self.failed
        if lost <= self._reported:
            return
        now = self._clock()
        if not force and now - self._last_warning < self.settings.warn_interval:
            return
        self.log.warning(
            "%s: %d log records lost since the last report (in all: %d dropped, the queue"
            " full or shut down; %d in failed writes; last error: %r); %d queued",
            self.kind,
            lost - self._reported,
            self.dropped,
            self.failed,
            self.last_error,
            len(self._queue) + len(self._retry),
        )
        self._reported = lost
        self._last_warning = now
