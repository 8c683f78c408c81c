"""Sending on a broker's ROUTER socket with ``ROUTER_MANDATORY``, without losing a message
silently: the two ways a send fails are told apart (ZeroMQ RFC 7 leaves them to the
implementation; libzmq, ``zmq_setsockopt(ZMQ_ROUTER_MANDATORY)``):

- *host unreachable* (``EHOSTUNREACH``): the peer is gone; the send is refused at once and
  the caller counts it;
- *try again* (``EAGAIN``): the peer's pipe is at its high-water mark. The message waits in
  that peer's backlog (so the order of its messages holds) while a task sends the backlog
  as the pipe drains; after ``send_timeout`` seconds without progress, or once the peer is
  gone, the backlog is given up and reported (``undelivered``).
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable

from cordio.zmq.mdp._io import SocketIO
from cordio.zmq.mdp._zmq import zmq

#: Seconds between the first two tries of a backlog's send (doubling up to 0.05).
FIRST_PAUSE = 0.001


class RouterSender:
    """Sends to the peers of one ROUTER socket; see the module.

    Args:
        io: the socket's reader and writer.
        send_timeout: seconds a backlog may make no progress before it is given up.
        undelivered: called with ``(identity, reason, count)`` when a backlog of ``count``
            messages is given up: ``backpressure`` (no progress in time), ``unreachable``
            (the peer left) or ``send_error`` (any other error).
        drop: called with ``(reason, detail, count)`` for a message refused by an error
            other than *host unreachable* (``send_error``).
    """

    def __init__(
        self,
        io: SocketIO,
        send_timeout: float,
        undelivered: Callable[[bytes, str, int], None],
        drop: Callable[[str, str, int], None],
    ) -> None:
        self.io = io
        self.send_timeout = send_timeout
        self._undelivered = undelivered
        self._drop = drop
        self._backlogs: dict[bytes, collections.deque[list[bytes]]] = {}
        self._flushers: set[asyncio.Task[None]] = set()

    def send(self, identity: bytes, frames: list[bytes]) -> bool:
        """Send ``frames`` to the peer ``identity``: ``False`` when it is gone (host
        unreachable) or the send failed; ``True`` when sent or waiting in its backlog."""
        backlog = self._backlogs.get(identity)
        if backlog is not None:
            backlog.append(frames)
            return True
        try:
            self.io.send([identity, *frames])
        except zmq.Again:
            self._backlogs[identity] = collections.deque([frames])
            task = asyncio.get_running_loop().create_task(self._flush(identity))
            self._flushers.add(task)
            task.add_done_callback(self._flushers.discard)
        except zmq.ZMQError as exc:
            if exc.errno != zmq.EHOSTUNREACH:
                self._drop("send_error", f"to {identity.hex()}: {exc}", 1)
            return False
        return True

    async def close(self) -> None:
        """Stop the backlogs' tasks; what they held is not sent."""
        tasks = list(self._flushers)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._flushers.clear()
        self._backlogs.clear()

    async def _flush(self, identity: bytes) -> None:
        """Send a peer's backlog as its pipe drains; give it up after ``send_timeout``
        seconds without progress, or when the peer is gone."""
        backlog = self._backlogs[identity]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.send_timeout
        pause = FIRST_PAUSE
        reason = ""
        while backlog:
            try:
                self.io.send([identity, *backlog[0]])
            except zmq.Again:
                if loop.time() >= deadline:
                    reason = "backpressure"
                    break
                await asyncio.sleep(pause)
                pause = min(pause * 2, 0.05)
                continue
            except zmq.ZMQError as exc:
                reason = "unreachable" if exc.errno == zmq.EHOSTUNREACH else "send_error"
                break
            backlog.popleft()
            deadline, pause = loop.time() + self.send_timeout, FIRST_PAUSE
        del self._backlogs[identity]
        if reason:
            self._undelivered(identity, reason, len(backlog))
