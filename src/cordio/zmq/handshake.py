"""The client's and worker's side of CURVE: a socket monitor that tells a refused or
failed handshake apart from a slow broker, so a bad key is an error, not a hang. See
:mod:`cordio.zmq.curve` for the whole picture."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cordio.errors import require_extra

require_extra("zmq", feature="ZeroMQ CURVE security", extra="zmq")

import zmq.asyncio  # noqa: E402
import zmq.auth  # noqa: E402
from zmq.utils.monitor import parse_monitor_message  # noqa: E402

if TYPE_CHECKING:
    pass

log = logging.getLogger("cordio.zmq.curve")


# -- the client's side: the handshake monitor ----------------------------------------------

_HANDSHAKE_EVENTS = (
    zmq.EVENT_HANDSHAKE_SUCCEEDED
    | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_AUTH
)
_monitor_ids = itertools.count()
_PROTOCOL_ERRORS = {
    getattr(zmq, name): name for name in dir(zmq) if name.startswith("PROTOCOL_ERROR_")
}


@dataclass(frozen=True)
class HandshakeFailure:
    """Why the CURVE handshakes with a broker failed.

    Attributes:
        event: the monitor event (``HANDSHAKE_FAILED_AUTH``, ``..._PROTOCOL``,
            ``..._NO_DETAIL``).
        value: its value: the ZAP status code (RFC 27: ``400`` refused, ``300`` temporary,
            ``500`` internal error), the ``ZMQ_PROTOCOL_ERROR_*`` code, or an errno.
        failures: failed handshakes in a row when the connection was given up.
        cause: what it means, for people.
    """

    event: str
    value: int
    failures: int
    cause: str


def describe(event: int, value: int) -> str:
    """What a ``HANDSHAKE_FAILED_*`` monitor event means, for people."""
    if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
        meaning = {
            300: "a temporary error in the broker's ZAP handler",
            400: "the broker refused this peer: its public key is not in the broker's "
            "authorized keys, or its address is not allowed",
            500: "an internal error in the broker's ZAP handler",
        }.get(value, "an unknown ZAP status")
        return f"ZAP status {value} (RFC 27): {meaning}"
    if event == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL:
        name = _PROTOCOL_ERRORS.get(value, f"protocol error {value:#x}")
        if value == getattr(zmq, "PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH", None):
            return f"{name}: the broker does not speak CURVE"
        return f"{name}: the handshake broke the CURVE protocol (RFC 26)"
    reason = os.strerror(value) if value > 0 else "no detail"
    return (
        f"the broker closed the connection during the handshake ({reason}); most often the "
        "broker public key is not the broker's, so it cannot open the HELLO (RFC 26)"
    )


class HandshakeMonitor:
    """Watches the CURVE handshakes of one connecting socket (a socket monitor for the
    ``HANDSHAKE_*`` events) and resolves :attr:`refused` when the broker keeps refusing it.

    A ``HANDSHAKE_FAILED_AUTH`` or ``..._PROTOCOL`` refuses at once (libzmq does not
    reconnect after either); ``..._NO_DETAIL`` after ``failures`` of them in a row with no
    handshake succeeding in between. Make it
    before the socket connects, inside a running event loop; :meth:`close` it before the
    socket closes.

    Args:
        sock: the socket to watch (its context hosts the monitor's ``inproc://`` pair).
        failures: ``HANDSHAKE_FAILED_NO_DETAIL`` events in a row that refuse the
            connection.

    Attributes:
        refused: a future set to the :class:`HandshakeFailure` once the connection counts
            as refused.
        succeeded: handshakes that succeeded.
        failed: handshakes that failed.
        streak: handshakes failed since the last one that succeeded.
        last: the latest failure (``None`` before the first).
    """

    def __init__(self, sock: zmq.asyncio.Socket, *, failures: int = 3) -> None:
        self.failures = failures
        self.succeeded = self.failed = self.streak = 0
        self.last: HandshakeFailure | None = None
        loop = asyncio.get_running_loop()
        self.refused: asyncio.Future[HandshakeFailure] = loop.create_future()
        self._sock = sock
        address = f"inproc://cordio.curve.monitor.{os.getpid()}.{next(_monitor_ids)}"
        self._pair = sock.get_monitor_socket(_HANDSHAKE_EVENTS, address)
        self._task = loop.create_task(self._read(), name="cordio.zmq.curve:monitor")

    async def _read(self) -> None:
        while True:
            try:
                frames = await self._pair.recv_multipart()
                message = parse_monitor_message(frames)
            except zmq.ZMQError:
                return  # closed
            event, value = int(message["event"]), int(message["value"])
            if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self.succeeded += 1
                self.streak = 0
                continue
            self.failed += 1
            self.streak += 1
            name = zmq.Event(event).name or str(event)
            self.last = HandshakeFailure(name, value, self.streak, describe(event, value))
            hard = event != zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL  # libzmq gives those up
            if (hard or self.streak >= self.failures) and not self.refused.done():
                self.refused.set_result(self.last)

    def close(self) -> None:
        """Stop watching (before the socket closes). Safe to call twice."""
        self._task.cancel()
        if not self._pair.closed:
            if not self._sock.closed:
                with contextlib.suppress(zmq.ZMQError):
                    self._sock.disable_monitor()
            self._pair.close(linger=0)
