"""OnError: what happens to an exception — break, respond, commit — by exception type.

The three actions of the spec, decided per exception type (the most specific class in the
exception's MRO wins):

- **break**: return a fallback value instead of raising (:func:`fallback`, :func:`ignore`),
  or let the exception go on;
- **respond**: what the caller gets: an HTTP status and problem details (:func:`respond`);
  the transport renders it (HTTP: ``application/problem+json``, internals never included);
- **commit**: where the fact is recorded: a log line at a level, with or without the stack
  (``level``, ``stack``), or nothing. Defaults: statuses below 500 at INFO without stack,
  others at ERROR with stack — once, where the exception is handled.

::

    @app.http.get("/orders/{order_id}")
    @OnError({OrderNotFound: respond(404, title="Order not found"),
              PaymentDeclined: respond(409),
              CacheMiss: ignore()})
    async def get_order(order_id: int, db: OrderStore) -> Order: ...

``app.on_error({...})`` sets a mapping for every handler of the app; a handler's own
``OnError`` comes first. ``OnError`` also works on any async function (a resource method:
its ``respond`` passes the exception up to the handler as an :class:`ErrorResponse`) and
as ``async with OnError({...}):`` (a fallback there suppresses the exception).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, ParamSpec, TypeVar

from cordio.outcome import Settle
from cordio.policy.commit import commit, require_sentry
from cordio.policy.marks import mark

P = ParamSpec("P")
T = TypeVar("T")

_RAISE = object()


@dataclass(frozen=True)
class ErrorAction:
    """What to do with an exception.

    Attributes:
        status: the status the caller gets (respond), or ``None`` to leave it to the
            transport's default (500 for HTTP).
        title: problem title (default: the status phrase).
        type: problem type URI (default ``about:blank``).
        detail: ``True`` to show ``str(exc)`` to the caller (default for statuses below
            500), ``False`` to show nothing, or a fixed text.
        level: log level, or ``None`` for no log line (commit).
        stack: log the traceback.
        value: the fallback value returned instead of raising (break); unset re-raises.
        count: add to the ``cordio_errors_total`` counter (when prometheus-client is
            installed; default true).
        span: mark the current OpenTelemetry span as failed (when installed; default true).
        report: send the exception to Sentry (needs ``cordio[sentry]``; default false).
    """

    status: int | None = None
    title: str | None = None
    type: str = "about:blank"
    detail: bool | str = False
    level: int | None = logging.ERROR
    stack: bool = True
    value: Any = _RAISE
    count: bool = True
    span: bool = True
    report: bool = False

    def __post_init__(self) -> None:
        if self.report:
            require_sentry()

    @property
    def falls_back(self) -> bool:
        return self.value is not _RAISE


def respond(
    status: int,
    title: str | None = None,
    *,
    type: str = "about:blank",
    detail: bool | str | None = None,
    level: int | None = None,
    stack: bool | None = None,
    report: bool = False,
) -> ErrorAction:
    """Answer the caller with ``status``. Below 500: the exception text as detail, logged
    at INFO without stack; 500 and above: no detail, logged at ERROR with stack."""
    client = status < 500
    return ErrorAction(
        status=status,
        title=title,
        type=type,
        detail=client if detail is None else detail,
        level=(logging.INFO if client else logging.ERROR) if level is None else level,
        stack=(not client) if stack is None else stack,
        report=report,
    )


def fallback(value: Any, *, level: int | None = logging.INFO, stack: bool = False) -> ErrorAction:
    """Return ``value`` instead of raising; log at ``level`` (default INFO, no stack)."""
    return ErrorAction(value=value, level=level, stack=stack)


def ignore() -> ErrorAction:
    """Return ``None`` instead of raising and record nothing."""
    return ErrorAction(value=None, level=None, stack=False, count=False, span=False)


def record(
    level: int | None = logging.ERROR, *, stack: bool = True, report: bool = False
) -> ErrorAction:
    """Record (log at ``level``, count, mark the span, optionally report to Sentry) and let
    the exception go on."""
    return ErrorAction(level=level, stack=stack, report=report)


class ErrorResponse(Exception):
    """An exception an :class:`OnError` decided how to answer; transports render it.

    Attributes:
        error: the original exception.
        action: the decision (status, title, detail...).
    """

    def __init__(self, error: BaseException, action: ErrorAction) -> None:
        super().__init__(str(error))
        self.error = error
        self.action = action

    @property
    def detail(self) -> str | None:
        detail = self.action.detail
        if detail is True:
            return str(self.error) or None
        return detail or None


def find_action(
    mappings: tuple[Mapping[type[BaseException], ErrorAction], ...], exc: BaseException
) -> ErrorAction | None:
    """The action for ``exc``: in the first mapping that has one, the most specific class
    of ``exc``'s MRO; ``None`` for a settle signal (:class:`~cordio.outcome.Settle`), which
    no rule handles."""
    if isinstance(exc, Settle):
        return None
    for mapping in mappings:
        for cls in type(exc).__mro__:
            action = mapping.get(cls)
            if action is not None:
                return action
    return None


def apply(action: ErrorAction, exc: Exception, where: str) -> Any:
    """Commit (log, count, span, report) and break: return the fallback, or raise
    :class:`ErrorResponse` (for a status) or the original exception."""
    commit(
        exc,
        where,
        level=action.level,
        stack=action.stack,
        status=action.status,
        count=action.count,
        span=action.span,
        report=action.report,
    )
    if action.falls_back:
        return action.value
    if action.status is not None:
        raise ErrorResponse(exc, action) from exc
    raise exc


class OnError:
    """Map exception types to actions; a decorator and an ``async with`` block.

    Args:
        mapping: exception class → :class:`ErrorAction` (see :func:`respond`,
            :func:`fallback`, :func:`ignore`, :func:`record`).

    Raises:
        TypeError: a key is not an exception class or a value is not an ErrorAction.
    """

    def __init__(self, mapping: Mapping[type[BaseException], ErrorAction]) -> None:
        for cls, action in mapping.items():
            if not (isinstance(cls, type) and issubclass(cls, Exception)):
                raise TypeError(f"OnError keys must be Exception classes, got {cls!r}")
            if not isinstance(action, ErrorAction):
                raise TypeError(f"OnError[{cls.__name__}] must be an ErrorAction, got {action!r}")
        self.mapping = dict(mapping)

    def __call__(self, func: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
        mappings = (self.mapping,)
        where = getattr(func, "__qualname__", "call").rsplit("<locals>.", 1)[-1]

        @functools.wraps(func)
        async def handled(*args: P.args, **kwargs: P.kwargs) -> T:
            try:
                return await func(*args, **kwargs)
            except ErrorResponse:
                raise
            except Exception as exc:
                action = find_action(mappings, exc)
                if action is None:
                    raise
                result: T = apply(action, exc, where)
                return result

        mark(handled, self)
        return handled

    async def __aenter__(self) -> OnError:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        if not isinstance(exc, Exception) or isinstance(exc, ErrorResponse):
            return False
        action = find_action((self.mapping,), exc)
        if action is None:
            return False
        apply(action, exc, "block")
        return True  # a fallback: the exception is suppressed
