"""The error pipeline's result: what one handler call came to, for every transport.

:meth:`cordio.handler.Invoker.run` calls the handler and decides, in one place, what an
exception leads to: the handler's own policies and ``OnError`` run inside the call; then the
app-wide ``OnError`` mappings (:meth:`cordio.App.on_error`); then the default for a call a
policy refused (an open breaker, a full bulkhead, a timeout) or a resource that is down.
The result is an :class:`Outcome`; a transport only translates it to its protocol (an HTTP
status and problem details, an ack / requeue / dead-letter and an error reply, a log line).

A handler may also settle its event on purpose by raising or returning a :class:`Settle`
signal (messaging: ``Ack``, ``Nack(requeue=..., delay=...)``, ``Reject(reason)``, as
FastStream's ``AckMessage`` / ``NackMessage`` / ``RejectMessage``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cordio.policy.onerror import ErrorAction, ErrorResponse


class Settle(Exception):
    """Base of the signals a handler raises or returns to settle its event itself; a
    transport that has no such thing (HTTP) treats one as a failure of the handler."""


@dataclass(slots=True)  # not frozen: one is made per event, and frozen ones cost 3x
class Outcome:
    """What one handler call came to; read-only by convention.

    Exactly one of: a value (:attr:`ok`, also the fallback an ``OnError`` rule gave), a
    :attr:`signal`, or an :attr:`error`.

    Attributes:
        value: the handler's return value (or a rule's fallback).
        error: the exception that failed the call (the handler's own, unwrapped).
        response: when an ``OnError`` rule chose an answer (a status, title, detail): the
            :class:`~cordio.policy.onerror.ErrorResponse` carrying it.
        recorded: an ``OnError`` rule recorded the error (its log line is written, or
            collected by the transport); the transport writes no line of its own about it.
        unavailable: the call was refused or cut by a policy, or a resource is down — an
            expected outcome (HTTP answers 503), recorded without a stack.
        signal: the :class:`Settle` signal the handler raised or returned.
    """

    value: Any = None
    error: BaseException | None = None
    response: ErrorResponse | None = None
    recorded: bool = False
    unavailable: bool = False
    signal: Settle | None = None

    @property
    def ok(self) -> bool:
        """The call gave a value (the handler's, or a rule's fallback)."""
        return self.error is None and self.signal is None

    @property
    def action(self) -> ErrorAction | None:
        """The ``OnError`` action that chose the answer, if one did."""
        return None if self.response is None else self.response.action

    @property
    def status(self) -> int | None:
        """The status an ``OnError`` rule chose (``None``: the transport's default)."""
        action = self.action
        return None if action is None else action.status
