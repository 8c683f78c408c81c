"""Errors of the Majordomo Protocol core, and the error reply convention.

The hierarchy::

    CordioError
    ├── MalformedMessage(ValueError)   a multipart message is not MDP (names the reason)
    └── MDPError                       a request failed (names the service and the cause)
        ├── RequestTimeout(TimeoutError)  no reply after every attempt
        └── AuthenticationError        the broker refused the CURVE handshake (RFC 26/27)

**Error replies.** MDP has no error command: a broker can only answer a request with a
reply. When cordio's broker or worker must fail a request, the reply's body is three
frames::

    Frame 0: "mdp.error"              (ERROR_MARKER, nine bytes)
    Frame 1: status code, ASCII digits (b"503")
    Frame 2: message, UTF-8 text       (b"service 'echo' has 1000 requests queued")

sent on the requested service's name (so RFC clients that check the service frame accept
it). Codes follow HTTP: ``503`` the service's queue is full, ``504`` no worker took the
request within the broker's ``request_ttl``, ``502`` the workers holding it were lost,
``500`` the worker's handler raised. :class:`~cordio.zmq.mdp.client.MDPClient` turns such a
reply into :class:`MDPError`; any other client sees three ordinary frames. A real reply that
starts with the frame ``mdp.error`` would be taken for an error: services should not send one.
"""

from __future__ import annotations

from collections.abc import Sequence

from cordio.errors import CordioError

#: The first body frame of an error reply.
ERROR_MARKER = b"mdp.error"

#: Status codes of error replies.
HANDLER_FAILED = 500
WORKER_LOST = 502
QUEUE_FULL = 503
EXPIRED = 504

#: The reasons :class:`MalformedMessage` gives (its ``reason``), also the keys under which
#: the broker counts dropped messages.
MALFORMED_REASONS = (
    "too_few_frames",  # fewer frames than the command's layout has
    "too_many_frames",  # more frames than a fixed-size command has (READY, HEARTBEAT...)
    "unknown_header",  # the protocol header is none of MDPC01/MDPW01/MDPC02/MDPW02
    "unknown_command",  # the command frame is no command of that header's version
    "unexpected_command",  # a command the receiver's side never receives (client FINAL)
    "nonempty_delimiter",  # the empty frame 0 of MDP/0.1, or the envelope delimiter, is not
    "empty_service",  # the service name frame is empty
    "empty_address",  # the client address frame of REQUEST/REPLY is empty
)


class MalformedMessage(CordioError, ValueError):
    """A multipart message that is not a valid MDP command.

    Args:
        reason: one of :data:`MALFORMED_REASONS`.
        detail: what is wrong, naming the frame and the RFC rule.
    """

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"malformed MDP message ({reason}): {detail}")


class MDPError(CordioError):
    """A request failed: an error reply, or no reply at all (:class:`RequestTimeout`).

    Args:
        service: the service the request was for.
        message: the cause (an error reply's message, or what went wrong).
        status: the error reply's status code (see the module docstring), or ``None``
            when the failure is not an error reply.
    """

    def __init__(self, service: str, message: str, status: int | None = None) -> None:
        self.service = service
        self.message = message
        self.status = status
        code = f"{status} " if status is not None else ""
        super().__init__(f"request to MDP service {service!r} failed: {code}{message}")


class RequestTimeout(MDPError, TimeoutError):
    """No reply to a request after every attempt (an :class:`MDPError` and a
    ``TimeoutError``).

    Args:
        service: the service the request was for.
        timeout: seconds each attempt waited.
        attempts: how many times the request was sent.
        broker: the broker's endpoint.
    """

    def __init__(self, service: str, timeout: float, attempts: int, broker: str) -> None:
        self.timeout = timeout
        self.attempts = attempts
        self.broker = broker
        plural = "s" if attempts != 1 else ""
        super().__init__(
            service,
            f"no reply from {broker} after {attempts} attempt{plural} of {timeout:g} s each",
        )


class AuthenticationError(MDPError):
    """The CURVE handshake with the broker keeps failing (RFC 26, RFC 27), so the request
    was not sent: a wrong key pair, a key the broker does not authorize, an address it does
    not allow, a wrong broker public key, or a broker without CURVE
    (:mod:`cordio.zmq.curve`).

    Args:
        service: the service the request was for.
        broker: the broker's endpoint.
        cause: what failed, for people (the ZAP status, the protocol error...).
        event: the socket monitor event behind it (``HANDSHAKE_FAILED_AUTH``,
            ``HANDSHAKE_FAILED_PROTOCOL``, ``HANDSHAKE_FAILED_NO_DETAIL``), or ``""``.
    """

    def __init__(self, service: str, broker: str, cause: str, event: str = "") -> None:
        self.broker = broker
        self.cause = cause
        self.event = event
        super().__init__(service, f"CURVE handshake with {broker} failed: {cause}")


def error_body(status: int, message: str) -> tuple[bytes, bytes, bytes]:
    """The body frames of an error reply (see the module docstring).

    Args:
        status: a status code (``100`` to ``999``).
        message: what went wrong, for people.
    """
    return ERROR_MARKER, str(status).encode("ascii"), message.encode("utf-8", "replace")


def read_error(body: Sequence[bytes]) -> tuple[int, str] | None:
    """``(status, message)`` when ``body`` is an error reply's body, else ``None``."""
    if len(body) != 3 or body[0] != ERROR_MARKER:
        return None
    status = body[1]
    if not (len(status) == 3 and status.isdigit()):
        return None
    return int(status), body[2].decode("utf-8", "replace")
