"""An MDP client: requests to services through a broker, with retries and concurrency.

**Retries** follow the Paranoid Pirate pattern that RFC 7 and RFC 18 recommend ("MDP/Client":
"If there is no reply within some timeout, to close the request socket and open a new socket,
and resend the request on that new socket. If there is no reply after several retries, to
signal the transaction as failed"): each attempt waits ``timeout`` seconds; then the socket is
closed (a late reply dies with it) and the request goes again on a new one, up to
``retries`` more times, then :class:`~cordio.zmq.mdp.errors.RequestTimeout`. Workers are
assumed idempotent (RFC 7, "Overall Topology"), so a retried request may run twice.

**Concurrency.** MDP's client dialog is strictly one request, then its reply: neither
MDP/0.1 nor MDP/0.2 carries a request id, so the replies to two requests outstanding on one
socket cannot be told apart (a reply names only its service). Rather than add an id frame
that third-party workers would not echo, the client keeps **one DEALER socket per request in
flight**: a request takes an idle socket from a pool (or opens one, up to ``max_sockets``;
beyond that, requests wait their turn), and gives it back after its reply. Each socket is a
client of its own to the broker, so this works with any RFC broker and any RFC worker.
``inproc://`` and ``ipc://`` sockets are cheap; over ``tcp://`` each is a connection.

**Replies.** The final reply's body is returned (MDP/0.1 REPLY, MDP/0.2 FINAL); MDP/0.2
PARTIALs go to ``on_partial`` as they come, each restarting the attempt's timeout. An
attempt that got PARTIALs is not retried (the stream would start over): a timeout after one
raises at once. An error reply (:mod:`cordio.zmq.mdp.errors`: ``mdp.error``, status,
message) raises :class:`~cordio.zmq.mdp.errors.MDPError` with that status.

**CURVE** (``curve=``, :mod:`cordio.zmq.curve`): every socket is a CURVE client of the
broker, with a socket monitor on its handshakes. When the broker refuses the handshake
(its ZAP handler says no) or handshakes keep failing (a wrong broker public key, a broker
without CURVE), the request raises :class:`~cordio.zmq.mdp.errors.AuthenticationError` at
once, within its timeout, instead of waiting for a reply that cannot come; it is not
retried (RFC 26: the client "SHALL NOT try to reconnect using the same credentials").

**I/O.** Each socket is read by a :class:`~cordio.zmq.mdp._io.SocketIO` (a plain shadow
socket woken by the event loop's reader on its descriptor, no ``zmq.asyncio`` Future per
call): replies are parsed as they arrive and handed to the request waiting on that socket.
A reply that comes while no request waits on its socket is dropped and counted
(``no_request``). A send that finds the socket's pipe full (its high-water mark) is tried
again until the attempt's timeout, then counts as a timed-out attempt.
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING

from cordio.zmq.curve import CurveClientConfig, configure_client
from cordio.zmq.handshake import HandshakeFailure, HandshakeMonitor
from cordio.zmq.mdp._io import SocketIO
from cordio.zmq.mdp._options import counts, seconds
from cordio.zmq.mdp._zmq import context as _context
from cordio.zmq.mdp._zmq import endpoints as _endpoints
from cordio.zmq.mdp._zmq import zmq
from cordio.zmq.mdp.errors import (
    AuthenticationError,
    MalformedMessage,
    MDPError,
    RequestTimeout,
    read_error,
)
from cordio.zmq.mdp.frames import ClientReply, ClientRequest, Version, parse_reply

if TYPE_CHECKING:
    import zmq.asyncio

log = logging.getLogger("cordio.zmq.mdp.client")

#: What ``on_partial`` may be: called with each PARTIAL's body, plain or async.
OnPartial = Callable[[list[bytes]], Awaitable[None] | None]

#: Seconds between two tries of a send whose pipe is full (doubling up to 0.05).
SEND_PAUSE = 0.001


@dataclass(frozen=True)
class ClientOptions:
    """How a client behaves.

    Attributes:
        version: the protocol version to speak (default MDP/0.1, RFC 7).
        timeout: seconds each attempt waits for a reply (default 2.5).
        retries: further attempts after the first (default 2: three in all).
        max_sockets: requests in flight at once, one socket each (default 64).

    Raises:
        ValueError: a value out of range.
    """

    version: Version = Version.V01
    timeout: float = 2.5
    retries: int = 2
    max_sockets: int = 64

    def __post_init__(self) -> None:
        seconds(self, "timeout")
        counts(self, "retries", least=0)
        counts(self, "max_sockets")


class MDPClient:
    """Requests to MDP services through one broker; safe to share between tasks.

    ::

        async with MDPClient("tcp://127.0.0.1:5555") as client:
            body = await client.request("echo", b"hello", timeout=1.0)
            if await client.service_available("pricing"):
                ...

    Args:
        broker: the broker's endpoint.
        options: version, timeout, retries, sockets (default :class:`ClientOptions`).
        context: the pyzmq asyncio context (default: the process's shared one).
        curve: CURVE keys (:class:`~cordio.zmq.curve.CurveClientConfig`); default none,
            plain ZMTP.

    Attributes:
        sent: requests sent, retries included.
        retried: attempts that timed out and were sent again.
        dropped: replies dropped, by reason (the malformed reasons of
            :mod:`cordio.zmq.mdp.errors`, ``wrong_service``, ``wrong_version``,
            ``no_request``: a reply on a socket with no request waiting).

    Raises:
        ValueError: a malformed endpoint.
    """

    def __init__(
        self,
        broker: str,
        options: ClientOptions | None = None,
        *,
        context: zmq.asyncio.Context | None = None,
        curve: CurveClientConfig | None = None,
    ) -> None:
        (self.broker,) = _endpoints([broker])
        self.options = options or ClientOptions()
        self.curve = curve
        self.sent = self.retried = 0
        self.dropped: collections.Counter[str] = collections.Counter()
        self._context = context
        self._idle: list[_Link] = []
        self._busy: set[_Link] = set()
        self._slots: asyncio.Semaphore | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"<MDPClient {self.broker} {self.options.version.value}>"

    async def __aenter__(self) -> MDPClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def pool_sizes(self) -> dict[str, int]:
        """The sockets: ``idle``, ``busy`` (a request in flight each) and ``max``."""
        return {
            "idle": len(self._idle),
            "busy": len(self._busy),
            "max": self.options.max_sockets,
        }

    def close(self) -> None:
        """Close every socket; requests in flight fail (:class:`MDPError`). Safe to call
        twice."""
        self._closed = True
        for link in [*self._idle, *self._busy]:
            link.close(closed=True)
        self._idle.clear()
        self._busy.clear()

    async def request(
        self,
        service: str | bytes,
        *frames: bytes,
        timeout: float | None = None,
        retries: int | None = None,
        on_partial: OnPartial | None = None,
    ) -> list[bytes]:
        """Send a request to ``service`` and return the body of its final reply.

        Args:
            service: the service name (str, UTF-8 on the wire, or bytes).
            frames: the request body: one or more frames (RFC 7: "4 or more frames").
            timeout: seconds each attempt waits (default: the client's).
            retries: further attempts (default: the client's).
            on_partial: called with each MDP/0.2 PARTIAL's body (plain or async).

        Returns:
            The final reply's body frames.

        Raises:
            RequestTimeout: no reply after every attempt (names service, timeout, attempts).
            AuthenticationError: with ``curve``, the broker refused the handshake or
                handshakes kept failing (names the broker and the cause).
            MDPError: an error reply (``status`` set: 503 queue full, 504 expired, 502
                workers lost, 500 handler failed), or the client is closed.
            ValueError: no body frame, or an empty service name.
            TypeError: a frame that is not bytes.
        """
        name = service.encode() if isinstance(service, str) else service
        text = name.decode("utf-8", "replace")
        if not all(isinstance(frame, bytes) for frame in frames):
            raise TypeError("request frames must be bytes")
        message = ClientRequest(self.options.version, name, tuple(frames)).to_frames()
        wait = self.options.timeout if timeout is None else timeout
        attempts = 1 + (self.options.retries if retries is None else retries)
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.options.max_sockets)
        async with self._slots:
            link: _Link | None = self._take(text)
            try:
                for attempt in range(1, attempts + 1):
                    assert link is not None
                    streamed = [False]
                    try:
                        deadline = link.loop.time() + wait
                        link.expect(name, text)
                        try:
                            link.io.send(message)
                        except zmq.Again:  # the pipe is full: try again within the attempt
                            await self._send_slowly(link, message, deadline)
                        self.sent += 1
                        body = await self._final(link, deadline, wait, on_partial, streamed)
                    except _Refused as refused:
                        self._discard(link)
                        link = None
                        failure = refused.failure
                        log.info(
                            "MDP request to %r: the CURVE handshake with %s failed %d time(s): %s",
                            text,
                            self.broker,
                            failure.failures,
                            failure.cause,
                        )
                        raise AuthenticationError(
                            text, self.broker, failure.cause, failure.event
                        ) from None
                    except TimeoutError:
                        self._discard(link)
                        link = None
                        if streamed[0] or attempt == attempts:
                            raise RequestTimeout(text, wait, attempt, self.broker) from None
                        self.retried += 1
                        log.info(
                            "MDP request to %r: no reply within %g s; resending on a new "
                            "socket (attempt %d of %d)",
                            text,
                            wait,
                            attempt + 1,
                            attempts,
                        )
                        link = self._take(text)
                        continue
                    self._give_back(link)
                    link = None
                    error = read_error(body)
                    if error is not None:
                        raise MDPError(text, error[1], error[0])
                    return body
            finally:
                if link is not None:  # cancelled or failed mid-attempt: a reply may still come
                    self._discard(link)
        raise AssertionError("unreachable")  # pragma: no cover

    async def service_available(
        self, service: str | bytes, *, timeout: float | None = None
    ) -> bool:
        """Whether the broker has at least one worker of ``service`` (RFC 8, ``mmi.service``).

        Raises:
            RequestTimeout: the broker did not answer.
            MDPError: the broker does not implement ``mmi.service`` (501) or answered
                something else.
        """
        name = service.encode() if isinstance(service, str) else service
        reply = await self.request(b"mmi.service", name, timeout=timeout)
        if reply == [b"200"]:
            return True
        if reply == [b"404"]:
            return False
        raise MDPError("mmi.service", f"unexpected answer {reply!r} about {name!r}")

    # -- sockets ------------------------------------------------------------------------

    def _take(self, service: str) -> _Link:
        if self._closed:
            raise MDPError(service, "the client is closed")
        while self._idle:
            link = self._idle.pop()
            if link.refusal() is None:
                break
            link.close()  # refused while idle: libzmq gives up on it (RFC 26)
        else:
            link = self._open()
        self._busy.add(link)
        return link

    def _open(self) -> _Link:
        sock = _context(self._context).socket(zmq.DEALER)
        try:
            sock.setsockopt(zmq.LINGER, 0)
            monitor = None
            if self.curve is not None:  # before connect: options apply to later connects
                configure_client(sock, self.curve)
                monitor = HandshakeMonitor(sock, failures=self.curve.handshake_failures)
            sock.connect(self.broker)
        except BaseException:
            sock.close(linger=0)
            raise
        return _Link(self, sock, monitor)

    def _give_back(self, link: _Link) -> None:
        self._busy.discard(link)
        link.service = None
        if self._closed or link.sock.closed:
            link.close()
        else:
            self._idle.append(link)

    def _discard(self, link: _Link) -> None:
        self._busy.discard(link)
        link.close()

    async def _send_slowly(self, link: _Link, message: list[bytes], deadline: float) -> None:
        """Send again while the socket's pipe is full (its high-water mark), until
        ``deadline``.

        Raises:
            TimeoutError: still full at the deadline.
            MDPError: the client was closed meanwhile.
        """
        loop, pause = link.loop, SEND_PAUSE
        while True:
            await asyncio.sleep(max(0.0, min(pause, deadline - loop.time())))
            if self._closed:
                raise MDPError(link.text, "the client is closed")
            try:
                link.io.send(message)
                return
            except zmq.Again:
                if loop.time() >= deadline:
                    raise TimeoutError from None
            pause = min(pause * 2, 0.05)

    async def _final(
        self,
        link: _Link,
        deadline: float,
        wait: float,
        on_partial: OnPartial | None,
        streamed: list[bool],
    ) -> list[bytes]:
        """The final reply's body, by ``deadline``; PARTIALs to ``on_partial``, each
        restarting the wait (``wait`` seconds).

        Raises:
            TimeoutError: nothing in time.
            _Refused: with CURVE, the broker refused the handshake (or kept failing it).
            MDPError: the client was closed.
        """
        replies = link.replies
        while True:
            if replies:
                reply = replies.popleft()
            else:
                if self._closed:
                    raise MDPError(link.text, "the client is closed")
                waiter = link.wait(deadline)
                try:
                    reply = await waiter
                finally:
                    link.done_waiting()
            if reply.final:
                return list(reply.body)
            streamed[0] = True
            deadline = link.loop.time() + wait
            if on_partial is not None:
                result = on_partial(list(reply.body))
                if inspect.isawaitable(result):
                    await result


class _Refused(Exception):
    """The broker refused a socket's CURVE handshake."""

    def __init__(self, failure: HandshakeFailure) -> None:
        self.failure = failure


def _expire(waiter: asyncio.Future[ClientReply]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


class _Link:
    """One pooled DEALER socket, read by a :class:`SocketIO` into the state of the request
    in flight on it: its service, the replies not yet taken, and the Future the request
    awaits."""

    __slots__ = (
        "client",
        "io",
        "loop",
        "monitor",
        "replies",
        "service",
        "sock",
        "text",
        "timer",
        "waiter",
    )

    def __init__(
        self, client: MDPClient, sock: zmq.asyncio.Socket, monitor: HandshakeMonitor | None
    ) -> None:
        self.client = client
        self.sock = sock
        self.monitor = monitor
        self.loop = asyncio.get_running_loop()
        #: the service of the request in flight until its final reply came; else ``None``
        self.service: bytes | None = None
        self.text = ""
        self.replies: collections.deque[ClientReply] = collections.deque()
        self.waiter: asyncio.Future[ClientReply] | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.io = SocketIO(sock, self.on_message, name="MDP client")
        if monitor is not None:
            monitor.refused.add_done_callback(self.on_refused)
        self.io.start()

    def expect(self, service: bytes, text: str) -> None:
        """A request for ``service`` goes out on this socket."""
        self.service, self.text = service, text
        self.replies.clear()

    def refusal(self) -> HandshakeFailure | None:
        """Why the broker refused this socket's CURVE handshake, or ``None``."""
        monitor = self.monitor
        if monitor is None or not monitor.refused.done() or monitor.refused.cancelled():
            return None
        return monitor.refused.result()

    def wait(self, deadline: float) -> asyncio.Future[ClientReply]:
        """A Future for the next reply, failing with :class:`TimeoutError` at ``deadline``
        (:meth:`done_waiting` after it).

        Raises:
            _Refused: the broker refused the handshake.
            TimeoutError: ``deadline`` is past.
        """
        if self.monitor is not None and (failure := self.refusal()) is not None:
            raise _Refused(failure)
        loop = self.loop
        if loop.time() >= deadline:
            raise TimeoutError
        waiter = self.waiter = loop.create_future()
        self.timer = loop.call_at(deadline, _expire, waiter)
        return waiter

    def done_waiting(self) -> None:
        self.waiter = None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def on_message(self, frames: list[bytes]) -> None:
        """A message from the broker (the SocketIO callback)."""
        client = self.client
        service = self.service
        if service is None:
            client.dropped["no_request"] += 1
            log.warning(
                "MDP client: dropped a reply from %s on a socket with no request in flight",
                client.broker,
            )
            return
        try:
            reply = parse_reply(frames)
        except MalformedMessage as exc:
            client.dropped[exc.reason] += 1
            log.warning("MDP client: dropped a reply from %s: %s", client.broker, exc)
            return
        if reply.version is not client.options.version:
            client.dropped["wrong_version"] += 1
            return
        if reply.service != service:
            client.dropped["wrong_service"] += 1
            log.warning("MDP client: dropped a reply for %r, not %r", reply.service, service)
            return
        if reply.final:
            self.service = None  # nothing more is due on this socket
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            self.waiter = None
            waiter.set_result(reply)
        else:
            self.replies.append(reply)

    def on_refused(self, refused: asyncio.Future[HandshakeFailure]) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done() and not refused.cancelled():
            waiter.set_exception(_Refused(refused.result()))

    def close(self, *, closed: bool = False) -> None:
        """Stop reading, close the monitor and the socket; with ``closed`` (the client
        closes), the request waiting fails. Safe to call twice."""
        waiter = self.waiter
        if closed and waiter is not None and not waiter.done():
            waiter.set_exception(MDPError(self.text, "the client is closed"))
        self.io.close()  # before the socket: the loop must not watch a closed descriptor
        if self.monitor is not None:
            self.monitor.close()  # before the socket: it stops the socket's monitor
        if not self.sock.closed:
            self.sock.close(linger=0)
