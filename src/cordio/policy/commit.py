"""Where a handled exception is recorded (the spec's "commit"): log, metrics, span, tracker.

- **log**: one line at the action's level, with the stack when asked; the line names the
  exception type (``error`` attribute), so repeats are rate limited
  (:mod:`cordio.observe.ratelimit`). A policy's rejection is an expected outcome, not a
  fault of the code, and is never logged with a stack: a call refused by an open breaker
  or a full bulkhead at DEBUG (the policy logs one WARNING when its state changes and
  counts the rest), a call cut by a :class:`~cordio.policy.Timeout` at WARNING at most;
- **metrics**, **span** and **error tracker**: handed to the current recorder
  (:mod:`cordio.observe.recorder`): by default the Prometheus counter
  ``cordio_errors_total``, the OpenTelemetry span's status, a Sentry event.

An event source that writes its own line about the outcome (a consumer: "failed, again
in 1 s", "dead-lettered") collects the log lines of the exception that failed the call
(:func:`collecting_lines`) and writes one line, at the level and with the stack the rule
chose; lines of other exceptions are written when the call ends.

Metrics and spans are recorded when their library is installed and skipped otherwise; an
action that asks for a Sentry report requires sentry-sdk and says so when it is missing.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field

from cordio.context import context_of, using_context
from cordio.observe.recorder import current_recorder
from cordio.policy.errors import PolicyError

log = logging.getLogger("cordio.errors")


@dataclass(frozen=True)
class Line:
    """A log line a rule asked for: ``level`` (a ``logging`` level), ``stack`` (with the
    traceback), ``where`` and ``status`` (the text ``where: Name answered status``)."""

    exc: BaseException
    where: str
    level: int
    stack: bool
    status: int | None
    summary: str | None = None  # a policy's own text ("all 3 attempts failed")

    def write(self) -> None:
        name = type(self.exc).__name__
        if self.summary is not None:
            with using_context(context_of(self.exc)):
                log_summary = logging.getLogger("cordio.policy")
                log_summary.log(self.level, "%s", self.summary, extra={"error": name})
            return
        with using_context(context_of(self.exc)):
            log.log(
                self.level,
                "%s: %s%s",
                self.where,
                name,
                f" answered {self.status}" if self.status else "",
                exc_info=self.exc if self.stack else None,
                extra={"error": name},
            )


@dataclass
class Lines:
    """The lines collected during one call (see :func:`collecting_lines`)."""

    lines: list[Line] = field(default_factory=list)
    open: bool = True

    def take(self, exc: BaseException | None) -> Line | None:
        """Close the collection; write every line but the last one about ``exc`` (or the
        exception it wraps: ``error``, ``__cause__``), and return that one (``None``: no
        rule logged ``exc``)."""
        self.open = False
        about: set[int] = set()
        current: BaseException | None = exc
        while current is not None and id(current) not in about:
            about.add(id(current))
            wrapped = getattr(current, "error", None)  # an ErrorResponse's exception
            current = wrapped if isinstance(wrapped, BaseException) else current.__cause__
        mine = next(
            (x for x in reversed(self.lines) if id(x.exc) in about and x.summary is None), None
        )
        for line in self.lines:
            if line is mine or (line.summary is not None and id(line.exc) in about):
                continue  # the caller's line says it failed
            line.write()
        self.lines.clear()
        return mine


_collecting: ContextVar[Lines | None] = ContextVar("cordio_error_lines", default=None)


def summarise(exc: BaseException, level: int, text: str) -> None:
    """A policy's line about ``exc`` going on (a retry that gave up): written now, or, when
    collected (:func:`collecting_lines`) and ``exc`` fails the call, left out, as the
    caller's own line says so."""
    line = Line(exc, "", level, False, None, summary=text)
    collected = _collecting.get()
    if collected is not None and collected.open:
        collected.lines.append(line)
    else:
        line.write()


@contextlib.contextmanager
def collecting_lines() -> Iterator[Lines]:
    """Collect the log lines :func:`commit` would write inside the block; the caller must
    :meth:`Lines.take` them (the other sinks record at once)."""
    lines = Lines()
    token = _collecting.set(lines)
    try:
        yield lines
    finally:
        _collecting.reset(token)


def require_sentry() -> None:
    """Raise :class:`~cordio.errors.MissingExtraError` unless sentry-sdk is installed."""
    from cordio.errors import require_extra

    require_extra("sentry_sdk", feature="Reporting errors to Sentry", extra="sentry")


def commit(
    exc: BaseException,
    where: str,
    *,
    level: int | None,
    stack: bool,
    status: int | None,
    count: bool,
    span: bool,
    report: bool,
) -> None:
    """Record a handled exception in every sink the action asks for.

    The log line carries the context of the handler call ``exc`` came from (trace id,
    handler, message id), also when the call has returned already.
    """
    with using_context(context_of(exc)):
        _commit(exc, where, level, stack, status, count, span, report)


def _commit(
    exc: BaseException,
    where: str,
    level: int | None,
    stack: bool,
    status: int | None,
    count: bool,
    span: bool,
    report: bool,
) -> None:
    if level is not None:
        if isinstance(exc, PolicyError):
            stack = False
            quiet = logging.WARNING if isinstance(exc, TimeoutError) else logging.DEBUG
            level = min(level, quiet)
        line = Line(exc, where, level, stack, status)
        collected = _collecting.get()
        if collected is not None and collected.open:
            collected.lines.append(line)
        else:
            line.write()
    if count or span or report:
        current_recorder().record(exc, where, status=status, count=count, span=span, report=report)
