"""Which exceptions say that a dependency is unhealthy, and which are the caller's fault.

A circuit breaker opens, and a retry tries again, only for failures of the *dependency*: it
refused or dropped the connection, did not answer in time, or answered that it is broken.
A caller's bad input (a ``ValueError``, a URL that cannot be built, a 4xx answer) says
nothing about the dependency's health: it would fail the same way on every attempt, and
counting it would let one bad request deny service to everyone.

**Dependency failures** by default (:func:`is_dependency_failure`):

- :class:`ConnectionError` (refused, reset, aborted, broken pipe), :class:`TimeoutError`
  (with :class:`~cordio.policy.errors.PolicyTimeoutError` and :class:`asyncio.TimeoutError`),
  name resolution errors (:class:`socket.gaierror`, :class:`socket.herror`), and an
  :class:`OSError` whose ``errno`` says the network or host is unreachable or down;
- cordio's :class:`~cordio.errors.ResourceUnavailableError`, an inner breaker's
  :class:`~cordio.policy.errors.CircuitOpenError`, and messaging's ``PublishError`` (a
  ``ConnectionError``) and ``RequestTimeout`` (a ``TimeoutError``);
- of the client libraries cordio works with, when they are imported: httpx's
  ``NetworkError``, ``TimeoutException``, ``RemoteProtocolError``, ``ProxyError`` and
  ``HTTPStatusError`` with a status of 500 or more; asyncpg's ``PostgresConnectionError``
  (SQLSTATE class 08), ``InsufficientResourcesError`` (53), ``OperatorInterventionError``
  (57) and ``InterfaceError`` (a closed connection); aiormq's ``AMQPConnectionError`` and
  ``ChannelInvalidStateError``; nats-py's connection and timeout errors and
  ``NoRespondersError``; redis-py's ``ConnectionError`` and ``TimeoutError``;
- an exception raised ``from`` one of these (``raise PublishError(...) from exc``): its
  ``__cause__`` is looked at, up to five levels.

**Caller errors** (:func:`is_caller_error`) never count and are never retried, whatever
types a policy is configured with:
:class:`ValueError` and its subclasses (pydantic's ``ValidationError``,
``UnicodeError``, ``json.JSONDecodeError``, messaging's ``InvalidMessage``: a message that
cannot be published as given, though it is a ``PublishError`` too), :class:`TypeError`,
httpx's ``InvalidURL``, ``UnsupportedProtocol`` and ``LocalProtocolError``, and an answer
with a 4xx status other than 408 and 429 (RFC 9110 §15.5.9 lets a client repeat a request
after 408; RFC 6585 §4 asks it to come back later after 429).

Everything else is neither: a breaker lets it pass without counting it, a retry gives up.
"""

from __future__ import annotations

import builtins
import errno
import importlib
import socket
import sys
from collections.abc import Mapping
from typing import Any

from cordio.errors import ResourceUnavailableError
from cordio.outcome import Settle
from cordio.policy.errors import CircuitOpenError

_UNREACHABLE = frozenset(
    {errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ENETDOWN, errno.EHOSTDOWN, errno.ETIMEDOUT}
)
_BUILTIN_FAILURES: tuple[type[BaseException], ...] = (
    ConnectionError,
    TimeoutError,
    socket.gaierror,
    socket.herror,
    ResourceUnavailableError,
    CircuitOpenError,
)
#: module → names of its exception classes that are dependency failures (looked up only
#: when the module has been imported: an exception of a library nobody imported cannot occur)
_LIBRARY_FAILURES = {
    "httpx": ("NetworkError", "TimeoutException", "RemoteProtocolError", "ProxyError"),
    "asyncpg": (
        "PostgresConnectionError",
        "InsufficientResourcesError",
        "OperatorInterventionError",
        "InterfaceError",
    ),
    "aiormq.exceptions": ("AMQPConnectionError", "ChannelInvalidStateError"),
    "nats.errors": (
        "ConnectionClosedError",
        "NoServersError",
        "StaleConnectionError",
        "ConnectionReconnectingError",
        "NoRespondersError",
        "OutboundBufferLimitError",
    ),
    "redis.exceptions": ("ConnectionError", "TimeoutError"),
}
_LIBRARY_CALLER_ERRORS = {
    "httpx": ("InvalidURL", "UnsupportedProtocol", "LocalProtocolError"),
}
_RETRYABLE_4XX = frozenset({408, 429})
_CAUSE_DEPTH = 5


def _library_types(table: Mapping[str, tuple[str, ...]]) -> tuple[type[BaseException], ...]:
    found: list[type[BaseException]] = []
    for module_name, names in table.items():
        module = sys.modules.get(module_name)
        if module is None:
            continue
        for name in names:
            cls = getattr(module, name, None)
            if isinstance(cls, type) and issubclass(cls, BaseException):
                found.append(cls)
    return tuple(found)


def answer_status(exc: BaseException) -> int | None:
    """The HTTP status of the answer an exception carries (httpx's ``HTTPStatusError``:
    ``exc.response.status_code``), or ``None``."""
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    return status if isinstance(status, int) else None


def is_client_error_answer(exc: BaseException) -> bool:
    """Whether ``exc`` carries a 4xx answer other than 408 and 429: the request itself was
    wrong, and sending it again would be answered the same."""
    status = answer_status(exc)
    return status is not None and 400 <= status < 500 and status not in _RETRYABLE_4XX


def is_caller_error(exc: BaseException) -> bool:
    """Whether ``exc`` is the caller's fault by the rules in the module docs."""
    if isinstance(exc, ValueError | TypeError):
        return True
    if isinstance(exc, _library_types(_LIBRARY_CALLER_ERRORS)):
        return True
    return is_client_error_answer(exc)


def _failure_itself(exc: BaseException) -> bool:
    if isinstance(exc, _BUILTIN_FAILURES):
        return True
    if isinstance(exc, OSError) and exc.errno in _UNREACHABLE:
        return True
    if isinstance(exc, _library_types(_LIBRARY_FAILURES)):
        return True
    status = answer_status(exc)
    return status is not None and status >= 500


def is_dependency_failure(exc: BaseException) -> bool:
    """Whether ``exc`` says the dependency is unhealthy, by the default rules above
    (cancellations and caller errors never are)."""
    current: BaseException | None = exc
    for _ in range(_CAUSE_DEPTH):
        if current is None or not isinstance(current, Exception) or is_caller_error(current):
            return False
        if _failure_itself(current):
            return True
        current = current.__cause__
    return False


class FailureRule:
    """Decides which exceptions count as failures of one dependency.

    An exception counts when it is neither a caller error (:func:`is_caller_error`) nor an
    instance of ``ignore_types``, and is either an instance of ``failure_types`` or a
    dependency failure by the default rules (:func:`is_dependency_failure`). Cancellations
    and a handler's settle signals (:class:`~cordio.outcome.Settle`) never count.
    Immutable: safe to share.

    Args:
        failure_types: more exception types that count (e.g. a client's own
            ``PricingUnavailable``); default none.
        ignore_types: exception types that never count, even if the defaults say so;
            default none.
    """

    __slots__ = ("failure_types", "ignore_types")

    def __init__(
        self,
        failure_types: tuple[type[BaseException], ...] = (),
        ignore_types: tuple[type[BaseException], ...] = (),
    ) -> None:
        self.failure_types = failure_types
        self.ignore_types = ignore_types

    def __call__(self, exc: BaseException) -> bool:
        if not isinstance(exc, Exception) or isinstance(exc, Settle):
            return False
        if isinstance(exc, self.ignore_types):
            return False
        if is_caller_error(exc):
            return False
        return isinstance(exc, self.failure_types) or is_dependency_failure(exc)

    def __repr__(self) -> str:
        return f"FailureRule(failure_types={self.failure_types}, ignore_types={self.ignore_types})"


def exception_type(name: str) -> type[BaseException]:
    """Resolve an exception class from a builtin name (``"ConnectionError"``) or a dotted
    path (``"httpx.TransportError"``), as configuration names them.

    Raises:
        ValueError: the name does not resolve to an exception class.
    """
    found: Any = getattr(builtins, name, None)
    if found is None and "." in name:
        module, _, attr = name.rpartition(".")
        try:
            found = getattr(importlib.import_module(module), attr, None)
        except ImportError:
            found = None
    if not (isinstance(found, type) and issubclass(found, BaseException)):
        raise ValueError(f"unknown exception type {name!r}")
    return found


def exception_types(names: tuple[str, ...]) -> tuple[type[BaseException], ...]:
    """:func:`exception_type` for each name."""
    return tuple(exception_type(name) for name in names)
