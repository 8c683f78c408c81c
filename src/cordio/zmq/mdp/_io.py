"""Non-blocking reads and writes on a ZeroMQ socket, woken by the event loop, without
``zmq.asyncio``'s per-call Futures.

``zmq.asyncio`` makes a Future for every send and receive, and its ``send_multipart`` /
``recv_multipart`` compute ``enum`` flags and read ``RCVMORE`` frame by frame: most of a
broker's CPU time went there. :class:`SocketIO` reads and writes through a plain
:class:`zmq.Socket` shadowing the same libzmq socket, with integer flags, woken by the event
loop's reader on the socket's ``ZMQ_FD``.

That descriptor is *edge-triggered* (libzmq, ``ZMQ_FD``): it signals that the socket's state
may have changed, not that a message waits, and any operation on the socket (a send, a read
of ``ZMQ_EVENTS``) may consume that signal. So the reader drains while ``ZMQ_EVENTS`` has
``POLLIN``, and a send made outside a drain checks ``ZMQ_EVENTS`` again and schedules a drain
when a message waits (a message that arrived during that send would wait for the next
one otherwise).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any, cast

from cordio.zmq.mdp._zmq import zmq

log = logging.getLogger("cordio.zmq.mdp")

# plain ints: the enum members cost an enum construction per ``|`` and per call
_NOBLOCK = int(zmq.NOBLOCK)
_MORE = int(zmq.NOBLOCK | zmq.SNDMORE)
_EVENTS = int(zmq.EVENTS)
_POLLIN = int(zmq.POLLIN)
_EAGAIN = int(zmq.EAGAIN)
_ENOTSOCK = int(zmq.ENOTSOCK)

#: Seconds to wait before reading again after an unexpected receive error (never spin).
ERROR_PAUSE = 0.01


def _events(sock: zmq.Socket[Any]) -> int:
    """The socket's ``ZMQ_EVENTS`` (``POLLIN`` / ``POLLOUT`` bits)."""
    return cast(int, sock.getsockopt(_EVENTS))


class SocketIO:
    """Reads every message that arrives on a socket into ``handle``, and sends without
    blocking.

    ``start()`` (in the loop) adds a reader on the socket's ``ZMQ_FD``; each wake-up hands
    up to ``batch`` waiting messages (lists of ``bytes`` frames) to ``handle``, then lets
    other callbacks run before reading on. ``close()`` removes the reader; the socket itself
    is the caller's to close (after ``close()``: the descriptor must not be closed while
    the loop watches it). An exception from ``handle`` is logged, and reading goes on.

    Args:
        sock: the socket (``zmq.asyncio`` or plain); only its libzmq socket is used.
        handle: called with each message received.
        batch: messages read in one go before the loop lets other tasks run.
        name: what log lines call the socket's owner.
    """

    __slots__ = (
        "_batch",
        "_closed",
        "_draining",
        "_fd",
        "_handle",
        "_last",
        "_loop",
        "_owner",
        "_soon",
        "name",
        "socket",
    )

    def __init__(
        self,
        sock: zmq.Socket[Any],
        handle: Callable[[list[bytes]], object],
        *,
        batch: int = 256,
        name: str = "ZeroMQ socket",
    ) -> None:
        self._owner = sock
        self.socket: zmq.Socket[bytes] = zmq.Socket.shadow(sock.underlying)
        self._fd = cast(int, sock.getsockopt(zmq.FD))
        self._handle = handle
        self._batch = batch
        self.name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._soon: asyncio.Handle | None = None
        self._draining = False
        self._closed = False
        self._last: zmq.Frame | None = None

    def peer_address(self) -> str | None:
        """The address of the peer that sent the message being handled (libzmq's
        ``Peer-Address`` message property: the IP address of a ``tcp://`` peer,
        ``localhost:UID:GID:PID`` of an ``ipc://`` one on Linux), or ``None`` when there is
        none (``inproc://``) or outside a handler."""
        frame = self._last
        if frame is None:
            return None
        try:
            return cast(str, frame.get("Peer-Address"))
        except zmq.ZMQError:
            return None

    def start(self) -> None:
        """Watch the socket in the running loop; read what arrived already."""
        loop = self._loop = asyncio.get_running_loop()
        loop.add_reader(self._fd, self._drain)
        self._schedule()  # a message that came before the reader left no edge to see

    def close(self) -> None:
        """Stop reading (the socket stays open). Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._soon is not None:
            self._soon.cancel()
            self._soon = None
        if self._loop is not None:
            self._loop.remove_reader(self._fd)

    def send(self, frames: Sequence[bytes]) -> None:
        """Send one multipart message without blocking.

        Raises:
            zmq.Again: the peer's pipe is full (high-water mark), nothing was sent.
            zmq.ZMQError: any other failure (``EHOSTUNREACH`` for a ROUTER with
                ``ROUTER_MANDATORY`` whose peer is gone; ``ENOTSOCK`` once the socket is
                closed: the shadow must never touch a closed libzmq socket).
        """
        if self._owner.closed:
            raise zmq.ZMQError(_ENOTSOCK)
        send = self.socket.send
        last = len(frames) - 1
        for i, frame in enumerate(frames):
            send(frame, _MORE if i < last else _NOBLOCK)
        # a send may consume the descriptor's edge for a message that just came
        if not (self._draining or self._closed or self._soon is not None) and (
            _events(self.socket) & _POLLIN
        ):
            self._schedule()

    def read_now(self) -> None:
        """Read at once what a drain already scheduled would read (say a message that came
        during a send), for a caller about to wait for it: that saves the wait's loop turns.
        Does nothing when no drain is scheduled."""
        if self._soon is not None and not self._draining:
            self._drain()

    def _schedule(self) -> None:
        if self._soon is None and self._loop is not None and not self._closed:
            self._soon = self._loop.call_soon(self._drain)

    def _drain(self) -> None:
        if self._soon is not None:
            self._soon.cancel()  # woken by the reader before the scheduled call
            self._soon = None
        if self._closed or self._owner.closed:
            return
        sock, handle = self.socket, self._handle
        recv = sock.recv
        getsockopt = cast("Callable[[int], int]", sock.getsockopt)
        self._draining = True
        try:
            for _ in range(self._batch):
                if not getsockopt(_EVENTS) & _POLLIN:
                    return
                frame = self._last = recv(_NOBLOCK, copy=False)
                frames = [frame.bytes]
                while frame.more:  # the parts of a message arrive together
                    frame = recv(_NOBLOCK, copy=False)
                    frames.append(frame.bytes)
                try:
                    handle(frames)
                except Exception:
                    log.exception("%s: handling a message failed; it was dropped", self.name)
            self._schedule()  # more may wait: read on after the other callbacks
        except zmq.ZMQError as exc:
            if self._closed:
                return
            if exc.errno == _EAGAIN:  # pragma: no cover - POLLIN said a message waits
                return
            log.error("%s: receiving failed (%s); going on", self.name, exc)
            if self._loop is not None:
                self._loop.call_later(ERROR_PAUSE, self._schedule)
        finally:
            self._draining = False
            self._last = None
