"""The event context a handler can ask for: trace id, handler name, event metadata."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

_current: ContextVar[Context | None] = ContextVar("cordio_context", default=None)


class Context:
    """Facts about the event being handled.

    A handler gets it by declaring a parameter annotated ``Context``. It is also available
    anywhere below a handler through :func:`current_context` (logging uses it).

    Attributes:
        handler: the handler's name (``"create_order"``).
        transport: where the event came from (``"http"``, ``"timer"``, ...).
        trace_id: 32 lower-case hex digits; taken from a W3C ``traceparent`` header when the
            event carries one (https://www.w3.org/TR/trace-context/#traceparent-header),
            generated on first use otherwise.
        attempt: delivery attempt, 1 for the first.
        headers: event metadata (HTTP request headers, message headers), read-only.
    """

    __slots__ = ("_trace_id", "attempt", "extra", "handler", "headers", "span", "transport")

    #: Whether the transport ends the call's span itself once it has answered (HTTP: the
    #: status is known when the outcome is rendered); the span is then left in :attr:`span`.
    ends_span: bool = False

    def __init__(
        self,
        handler: str,
        transport: str,
        *,
        trace_id: str | None = None,
        attempt: int = 1,
        headers: Any = None,
    ) -> None:
        self.handler = handler
        self.transport = transport
        self._trace_id = trace_id
        self.attempt = attempt
        self.headers = headers if headers is not None else {}
        self.extra: dict[str, Any] = {}
        #: the call's span when :attr:`ends_span` and the app makes spans, else ``None``
        self.span: Any = None

    @property
    def message_id(self) -> str | None:
        """The id of the message being handled; ``None`` outside messaging."""
        return None

    @property
    def trace_id(self) -> str:
        if self._trace_id is None:
            self._trace_id = os.urandom(16).hex()
        return self._trace_id

    def __repr__(self) -> str:
        return f"Context(handler={self.handler!r}, transport={self.transport!r})"


def current_context() -> Context | None:
    """Return the context of the handler call running in this task, or ``None``."""
    return _current.get()


_ATTRIBUTE = "__cordio_context__"


def attach_context(exc: BaseException, ctx: Context) -> None:
    """Record on ``exc`` the context of the handler call it escaped (the innermost one).

    Whoever handles ``exc`` after the call has returned (an app-wide ``OnError``, a
    transport) logs it with that context: see :func:`context_of`. An exception that
    takes no attributes is left as it is.
    """
    if getattr(exc, _ATTRIBUTE, None) is None:
        try:
            setattr(exc, _ATTRIBUTE, ctx)
        except (AttributeError, TypeError):
            pass


def context_of(exc: BaseException) -> Context | None:
    """The context current while ``exc`` is handled: the running one, else the one of the
    handler call ``exc`` escaped (:func:`attach_context`), else ``None``."""
    ctx = _current.get()
    if ctx is not None:
        return ctx
    found = getattr(exc, _ATTRIBUTE, None)
    return found if isinstance(found, Context) else None


@contextlib.contextmanager
def using_context(ctx: Context | None) -> Iterator[None]:
    """Make ``ctx`` the current context inside the block (nothing changes for ``None``)."""
    if ctx is None or _current.get() is ctx:
        yield
        return
    token = _current.set(ctx)
    try:
        yield
    finally:
        _current.reset(token)


def trace_id_from_traceparent(value: str | None) -> str | None:
    """Return the trace id of a W3C ``traceparent`` header, or ``None`` if it is malformed.

    Format (W3C Trace Context, section 3.2): ``version-traceid-parentid-flags``, e.g.
    ``00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01``. An all-zero trace id is
    invalid.
    """
    if not value or len(value) < 55 or len(value) > 512:
        return None
    parts = value.split("-")
    if len(parts) < 4 or len(parts[1]) != 32:
        return None
    trace = parts[1].lower()
    try:
        int(trace, 16)
    except ValueError:
        return None
    if trace == "0" * 32:
        return None
    return trace


class ShutdownDeadline:
    """When the running app's retries must have ended, on the monotonic clock: the end of
    its shutdown grace period less a fifth of it (at most 2 s), which is left to the calls
    to answer.

    One per run of an app (:class:`~cordio.lifecycle.Runtime`), made current for the tasks
    of that run; no retry sleeps past it. Two apps in one process each have their own.

    Attributes:
        at: :func:`time.monotonic` seconds, or ``None`` while the app is not stopping.
    """

    __slots__ = ("at",)

    def __init__(self) -> None:
        self.at: float | None = None


_deadline: ContextVar[ShutdownDeadline | None] = ContextVar("cordio_deadline", default=None)


def enter_run(deadline: ShutdownDeadline) -> None:
    """Make ``deadline`` the current task's (and the tasks it starts from now on)."""
    _deadline.set(deadline)


def shutdown_deadline() -> float | None:
    """When retries of the current app must have ended (monotonic seconds): the end of its
    shutdown grace period less a fifth of it (at most 2 s), left to the calls to answer
    after their last attempt; ``None`` when it is not stopping or there is no app."""
    current = _deadline.get()
    return None if current is None else current.at
