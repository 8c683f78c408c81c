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
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, cast

from cordio.zmq.curve import CurveClientConfig, configure_client
from cordio.zmq.handshake import HandshakeFailure, HandshakeMonitor
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
from cordio.zmq.mdp.frames import ClientRequest, Version, parse_reply

if TYPE_CHECKING:
    import zmq.asyncio

log = logging.getLogger("cordio.zmq.mdp.client")

#: What ``on_partial`` may be: called with each PARTIAL's body, plain or async.
OnPartial = Callable[[list[bytes]], Awaitable[None] | None]


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
            :mod:`cordio.zmq.mdp.errors`, ``wrong_service``, ``wrong_version``).

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
        self._idle: list[zmq.asyncio.Socket] = []
        self._busy: set[zmq.asyncio.Socket] = set()
        self._slots: asyncio.Semaphore | None = None
        self._closed = False
        self._monitors: dict[zmq.asyncio.Socket, HandshakeMonitor] = {}

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

    def close(self) -> None:
        """Close every socket; requests in flight fail. Safe to call twice."""
        self._closed = True
        for sock in [*self._idle, *self._busy]:
            self._close(sock)
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
            sock: zmq.asyncio.Socket | None = self._take(text)
            try:
                for attempt in range(1, attempts + 1):
                    assert sock is not None
                    await sock.send_multipart(message)
                    self.sent += 1
                    streamed = [False]
                    try:
                        body = await self._final(sock, name, wait, on_partial, streamed)
                    except _Refused as refused:
                        self._discard(sock)
                        sock = None
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
                        self._discard(sock)
                        sock = None
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
                        sock = self._take(text)
                        continue
                    self._give_back(sock)
                    sock = None
                    error = read_error(body)
                    if error is not None:
                        raise MDPError(text, error[1], error[0])
                    return body
            finally:
                if sock is not None:  # cancelled or failed mid-attempt: a reply may still come
                    self._discard(sock)
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

    def _take(self, service: str) -> zmq.asyncio.Socket:
        if self._closed:
            raise MDPError(service, "the client is closed")
        while self._idle:
            sock = self._idle.pop()
            monitor = self._monitors.get(sock)
            if monitor is None or not monitor.refused.done():
                break
            self._close(sock)  # refused while idle: libzmq gives up on it (RFC 26)
        else:
            sock = _context(self._context).socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            if self.curve is not None:  # before connect: options apply to later connects
                configure_client(sock, self.curve)
                self._monitors[sock] = HandshakeMonitor(
                    sock, failures=self.curve.handshake_failures
                )
            sock.connect(self.broker)
        self._busy.add(sock)
        return sock

    def _give_back(self, sock: zmq.asyncio.Socket) -> None:
        self._busy.discard(sock)
        if self._closed or sock.closed:
            self._close(sock)
        else:
            self._idle.append(sock)

    def _discard(self, sock: zmq.asyncio.Socket) -> None:
        self._busy.discard(sock)
        self._close(sock)

    def _close(self, sock: zmq.asyncio.Socket) -> None:
        monitor = self._monitors.pop(sock, None)
        if monitor is not None:
            monitor.close()  # before the socket: it stops the socket's monitor
        if not sock.closed:
            sock.close(linger=0)

    async def _final(
        self,
        sock: zmq.asyncio.Socket,
        service: bytes,
        wait: float,
        on_partial: OnPartial | None,
        streamed: list[bool],
    ) -> list[bytes]:
        """The final reply's body; PARTIALs to ``on_partial``, each restarting the wait.

        Raises:
            TimeoutError: nothing within ``wait`` seconds.
            _Refused: with CURVE, the broker refused the handshake (or kept failing it).
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        monitor = self._monitors.get(sock)
        while True:
            received = cast("asyncio.Future[list[bytes]]", sock.recv_multipart())
            remaining = max(0.0, deadline - loop.time())
            if monitor is None:
                frames = await asyncio.wait_for(received, remaining)
            else:
                frames = await _or_refused(received, monitor, remaining)
            try:
                reply = parse_reply(frames)
            except MalformedMessage as exc:
                self.dropped[exc.reason] += 1
                log.warning("MDP client: dropped a reply from %s: %s", self.broker, exc)
                continue
            if reply.version is not self.options.version:
                self.dropped["wrong_version"] += 1
                continue
            if reply.service != service:
                self.dropped["wrong_service"] += 1
                log.warning("MDP client: dropped a reply for %r, not %r", reply.service, service)
                continue
            if reply.final:
                return list(reply.body)
            streamed[0] = True
            deadline = loop.time() + wait
            if on_partial is not None:
                result = on_partial(list(reply.body))
                if inspect.isawaitable(result):
                    await result


class _Refused(Exception):
    """The broker refused a socket's CURVE handshake."""

    def __init__(self, failure: HandshakeFailure) -> None:
        self.failure = failure


async def _or_refused(
    received: asyncio.Future[list[bytes]], monitor: HandshakeMonitor, timeout: float
) -> list[bytes]:
    """The received frames, or :class:`_Refused` when the monitor gives the connection up
    first.

    Raises:
        TimeoutError: neither within ``timeout`` seconds.
        _Refused: the handshake was refused.
    """
    refused = monitor.refused
    waits: set[asyncio.Future[Any]] = {received, refused}
    try:
        await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        received.cancel()
        raise
    if received.done():
        return received.result()
    received.cancel()
    if refused.done():
        raise _Refused(refused.result())
    raise TimeoutError
