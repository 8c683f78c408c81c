"""An MDP worker: serves one service through a broker, one request at a time per connection.

The MDP/Worker dialog (RFC 7 / RFC 18, "MDP/Worker"): the worker opens a DEALER socket,
connects to one broker, sends READY for its service, then answers each REQUEST with a REPLY
(MDP/0.1) or zero or more PARTIALs and a FINAL (MDP/0.2), while both sides heartbeat. A
connection holds **one request at a time** ("Workers will handle at most one request a
time"); :attr:`WorkerOptions.concurrency` opens that many connections, each registered as a
worker of its own, so up to that many requests run at once.

What each connection does, with the RFC rule behind it:

- **Heartbeats.** It sends HEARTBEAT when it has sent nothing for ``heartbeat_interval``
  seconds, busy or not, and counts every command from the broker as a heartbeat. With
  nothing from the broker for ``heartbeat_interval * heartbeat_liveness`` seconds while idle
  it takes the broker for gone ("A peer MUST consider the other peer 'disconnected' if no
  heartbeat arrives within some multiple of that interval"). While a request runs, the
  broker's silence is not counted: many brokers heartbeat idle workers only.
- **Heartbeat mismatch** (RFC 7, "Known Weaknesses": differing rates cause false
  disconnections). It measures the gaps between the broker's heartbeats while idle; when two
  in a row agree and differ from its own interval by more than half, it logs the mismatch
  once and, with ``adopt_heartbeat`` (the default), adopts the broker's interval. Each
  connection that ends in silence doubles the next one's window (up to 16 times) until the
  broker's rate has been measured, so a broker that heartbeats less often than the worker
  expects is heard, measured and adopted instead of flapping.
- **Reconnect.** On DISCONNECT from the broker, or a broker gone silent, it closes the
  socket and opens a new one ("MUST close its socket, and reconnect to the broker on a new
  socket"), after a delay: none after DISCONNECT ending a connection that was served,
  ``reconnect_initial`` after silence, and doubling up to ``reconnect_max`` while
  connections keep failing without a word from the broker (the Paranoid Pirate's backoff).
  A request in progress is cancelled then (the broker has requeued or failed it).
- **Handlers.** Each REQUEST runs the handler coroutine, awaited in the connection's task
  (a socket reader and a heartbeat timer run beside it); its return value (bytes,
  or a sequence of bytes frames) is the reply body. A handler that raises gets an error
  reply (:mod:`cordio.zmq.mdp.errors`): its :class:`MDPError` status, else ``500`` with the
  exception's type and message. A REQUEST that arrives while one is running breaks RFC 7;
  it is dropped and counted.
- **Stop.** :meth:`MDPWorker.stop` lets running handlers finish for ``stop_grace`` seconds,
  sends their replies, then DISCONNECT ("The worker MAY send DISCONNECT at any time").
- **CURVE** (``curve=``, :mod:`cordio.zmq.curve`). Each connection is a CURVE client of the
  broker with a socket monitor on its handshakes. A connection whose handshake the broker
  refuses (or that keeps failing: a wrong broker public key...) ends at once and the next
  one waits the backoff above, as after a silent broker: the worker never stops trying,
  and the broker is not hammered at libzmq's 100 ms reconnect pace. The refusal is logged
  once, at WARNING, per streak of refused connections; the streak ends, logged at INFO,
  when the broker answers again (say once the key was added to its directory).
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cordio.zmq.curve import CurveClientConfig, configure_client
from cordio.zmq.handshake import HandshakeFailure, HandshakeMonitor
from cordio.zmq.mdp._io import SocketIO
from cordio.zmq.mdp._options import counts, seconds
from cordio.zmq.mdp._zmq import context as _context
from cordio.zmq.mdp._zmq import endpoints as _endpoints
from cordio.zmq.mdp._zmq import zmq
from cordio.zmq.mdp.errors import HANDLER_FAILED, MalformedMessage, MDPError, error_body
from cordio.zmq.mdp.frames import (
    MMI_PREFIX,
    Disconnect,
    Heartbeat,
    Ready,
    Reply,
    Request,
    Version,
    parse_worker,
)

if TYPE_CHECKING:
    import zmq.asyncio

log = logging.getLogger("cordio.zmq.mdp.worker")

#: The most the silence window grows for a broker that has not said a word (a multiple).
MAX_SILENCE_FACTOR = 16


@dataclass(frozen=True)
class Job:
    """One request, as a handler gets it.

    Attributes:
        service: the service name.
        client: the client's address as the broker gave it (opaque).
        body: the request body: one or more frames.
        version: the protocol version of this connection.
    """

    service: str
    client: bytes
    body: tuple[bytes, ...]
    version: Version
    _partial: Callable[[tuple[bytes, ...]], Awaitable[None]] = field(repr=False, compare=False)

    async def partial(self, *frames: bytes) -> None:
        """Send part of the reply now, as an MDP/0.2 PARTIAL (RFC 18: "zero or more PARTIAL
        commands ... followed by exactly one FINAL"); the handler's return value is the
        FINAL.

        Raises:
            MDPError: the connection speaks MDP/0.1, whose REQUEST has exactly one REPLY.
            ValueError: no frames.
        """
        if self.version is Version.V01:
            raise MDPError(self.service, "MDP/0.1 has one REPLY per request (RFC 7): no PARTIAL")
        if not frames:
            raise ValueError("a PARTIAL needs at least one frame")
        await self._partial(frames)


#: What a handler returns: the reply body, one frame or several.
ReplyBody = bytes | Sequence[bytes]
#: A worker's handler: a coroutine function taking the :class:`Job`.
Handler = Callable[[Job], Awaitable[ReplyBody]]


@dataclass(frozen=True)
class WorkerOptions:
    """How a worker behaves; durations in seconds.

    Attributes:
        version: the protocol version to speak (default MDP/0.1, RFC 7, what most brokers
            speak; :attr:`Version.V02` for PARTIAL replies).
        heartbeat_interval: seconds between heartbeats (default 2.5); should match the
            broker's (RFC 7, "Known Weaknesses"), see ``adopt_heartbeat``.
        heartbeat_liveness: broker heartbeats missed before it counts as gone (default 3).
        adopt_heartbeat: take the broker's interval when it differs (default ``True``);
            ``False``: only log the mismatch, once.
        reconnect_initial: first delay before reconnecting (default 1).
        reconnect_max: the longest delay (default 32).
        concurrency: connections to the broker, each one request at a time (default 1).
        stop_grace: seconds :meth:`MDPWorker.stop` lets running handlers finish (default 5).

    Raises:
        ValueError: a value out of range.
    """

    version: Version = Version.V01
    heartbeat_interval: float = 2.5
    heartbeat_liveness: int = 3
    adopt_heartbeat: bool = True
    reconnect_initial: float = 1.0
    reconnect_max: float = 32.0
    concurrency: int = 1
    stop_grace: float = 5.0

    def __post_init__(self) -> None:
        seconds(self, "heartbeat_interval", "reconnect_initial", "reconnect_max")
        seconds(self, "stop_grace", zero=True)
        counts(self, "heartbeat_liveness", "concurrency")
        if self.reconnect_max < self.reconnect_initial:
            raise ValueError("reconnect_max must not be less than reconnect_initial")


class _BrokerGone(Exception):
    """A send could not be queued within the liveness window: the broker is not reading."""


class MDPWorker:
    """An MDP worker for one service: a handler coroutine per request.

    ::

        async def price(job: Job) -> bytes:
            return compute(job.body[0])

        worker = MDPWorker("tcp://127.0.0.1:5555", "pricing", price,
                           WorkerOptions(concurrency=4))
        await worker.start()
        ...
        await worker.stop()

    The module docstring lists what each connection does and the RFC rule behind it.

    Args:
        broker: the broker's endpoint (one: "One worker MUST connect to exactly one broker").
        service: the service name (str, UTF-8 on the wire, or bytes); not under ``mmi.``.
        handler: ``async (Job) -> bytes | Sequence[bytes]``.
        options: heartbeats, reconnects, concurrency (default :class:`WorkerOptions`).
        context: the pyzmq asyncio context (default: the process's shared one).
        curve: CURVE keys (:class:`~cordio.zmq.curve.CurveClientConfig`); default none,
            plain ZMTP.

    Attributes:
        heartbeat_interval: the interval in use (the broker's, once adopted).
        served: requests answered with the handler's value.
        failed: requests whose handler raised (answered with an error reply).
        reconnects: new connections after the first ones.
        auth_failures: connections given up because the broker refused the CURVE
            handshake (or handshakes kept failing).
        dropped: messages from the broker dropped, by reason (the malformed reasons of
            :mod:`cordio.zmq.mdp.errors`, ``wrong_version``, ``request_while_busy``,
            ``unexpected_command``).

    Raises:
        ValueError: an empty service name, one under ``mmi.`` (RFC 8 reserves it), or a
            malformed endpoint.
    """

    def __init__(
        self,
        broker: str,
        service: str | bytes,
        handler: Handler,
        options: WorkerOptions | None = None,
        *,
        context: zmq.asyncio.Context | None = None,
        curve: CurveClientConfig | None = None,
    ) -> None:
        (self.broker,) = _endpoints([broker])
        name = service.encode() if isinstance(service, str) else service
        if not name:
            raise ValueError("a service name must not be empty")
        if name.startswith(MMI_PREFIX):
            raise ValueError(f"{name!r}: the mmi. namespace belongs to the broker (RFC 8)")
        self.service = name
        self.handler = handler
        self.options = options or WorkerOptions()
        self.heartbeat_interval = self.options.heartbeat_interval
        self.served = self.failed = self.reconnects = self.auth_failures = 0
        self.dropped: collections.Counter[str] = collections.Counter()
        self.curve = curve
        self._context = context
        self._refusals = 0  # connections refused since the broker last answered
        self._links: list[asyncio.Task[None]] = []
        self._stopping: asyncio.Event | None = None
        self._stop_deadline = 0.0
        self._silence_factor = 1
        self._mismatch_logged = False
        self._silence_logged = False

    def __repr__(self) -> str:
        return f"<MDPWorker {self.service!r} at {self.broker}>"

    @property
    def name(self) -> str:
        """The service name as text."""
        return self.service.decode("utf-8", "replace")

    async def start(self) -> None:
        """Open the connections and register with the broker (in the background: there is
        no answer to READY, RFC 7).

        Raises:
            RuntimeError: started already.
        """
        if self._links:
            raise RuntimeError(f"{self!r} is running already")
        self._stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        self._links = [
            loop.create_task(self._link(n), name=f"cordio.mdp.worker:{self.name}:{n}")
            for n in range(self.options.concurrency)
        ]

    async def stop(self) -> None:
        """Let running handlers finish for ``stop_grace`` seconds, send their replies and
        DISCONNECT, close the connections. Safe to call twice."""
        links, self._links = self._links, []
        if not links or self._stopping is None:
            return
        self._stop_deadline = asyncio.get_running_loop().time() + self.options.stop_grace
        self._stopping.set()
        await asyncio.gather(*links, return_exceptions=True)

    # -- one connection -----------------------------------------------------------------

    async def _link(self, index: int) -> None:
        assert self._stopping is not None
        options, delay, first = self.options, 0.0, True
        while not self._stopping.is_set():
            if delay > 0:
                try:
                    await asyncio.wait_for(self._stopping.wait(), delay)
                    return
                except TimeoutError:
                    pass
            if not first:
                self.reconnects += 1
            first = False
            connection: _Connection | None = None
            try:
                connection = _Connection(self, index)
                outcome, heard = await connection.run()
            except Exception:
                log.exception("MDP worker %r: connection %d failed; reconnecting", self.name, index)
                outcome, heard = "failed", False
            if outcome == "stopped":
                return
            if heard:
                delay = 0.0 if outcome == "disconnected" else options.reconnect_initial
            else:
                delay = min(options.reconnect_max, max(options.reconnect_initial, delay * 2))
            if outcome == "refused" and connection is not None and connection.refusal:
                self._refused(connection.refusal, delay)
                continue
            log.info(
                "MDP worker %r: %s; reconnecting to %s in %.3g s",
                self.name,
                {
                    "disconnected": "the broker sent DISCONNECT",
                    "silent": "the broker is silent",
                }.get(outcome, outcome),
                self.broker,
                delay,
            )

    def _refused(self, failure: HandshakeFailure, delay: float) -> None:
        """A connection given up because the CURVE handshake failed: WARNING for the first
        of a streak, DEBUG for the others."""
        self.auth_failures += 1
        self._refusals += 1
        level = logging.WARNING if self._refusals == 1 else logging.DEBUG
        log.log(
            level,
            "MDP worker %r: the CURVE handshake with %s failed (%s); reconnecting with "
            "backoff, next in %.3g s%s",
            self.name,
            self.broker,
            failure.cause,
            delay,
            " (logged once until the broker answers)" if self._refusals == 1 else "",
        )

    def _answered(self) -> None:
        """The broker answered a connection: a streak of refusals is over."""
        if self._refusals:
            log.info(
                "MDP worker %r: the broker at %s accepts this worker again after %d refused "
                "connection(s)",
                self.name,
                self.broker,
                self._refusals,
            )
            self._refusals = 0

    def _silent_session(self) -> None:
        """A connection ended for silence: the next one waits twice as long (up to
        :data:`MAX_SILENCE_FACTOR` times the window), in case the broker heartbeats less
        often than this worker expects; back to normal once its rate is measured."""
        if not self._silence_logged:
            self._silence_logged = True
            log.warning(
                "MDP worker %r: no word from the broker at %s for %.3g s; it is down, or "
                "heartbeats less often than every %.3g s (RFC 7, Known Weaknesses): waiting "
                "longer on the next connections",
                self.name,
                self.broker,
                self.heartbeat_interval * self.options.heartbeat_liveness * self._silence_factor,
                self.heartbeat_interval,
            )
        self._silence_factor = min(MAX_SILENCE_FACTOR, self._silence_factor * 2)

    def _observe(self, gaps: collections.deque[float]) -> None:
        """Compare the broker's heartbeat gaps with ours; log a mismatch once, adopt."""
        if len(gaps) < 2:
            return
        first, second = gaps
        if abs(first - second) > 0.25 * max(first, second):
            return
        theirs = (first + second) / 2
        mine = self.heartbeat_interval
        self._silence_factor = 1  # the broker's rate is known now
        if mine / 1.5 <= theirs <= mine * 1.5:
            return
        adopt = self.options.adopt_heartbeat
        if not self._mismatch_logged:
            self._mismatch_logged = True
            log.warning(
                "MDP worker %r: the broker at %s heartbeats every %.3g s, this worker every "
                "%.3g s (RFC 7, Known Weaknesses); %s",
                self.name,
                self.broker,
                theirs,
                mine,
                "adopting the broker's interval" if adopt else "set heartbeat_interval to match",
            )
        if adopt:
            self.heartbeat_interval = theirs
        gaps.clear()

    async def _call(self, job: Job) -> tuple[bytes, ...]:
        """Run the handler; its reply body, or an error reply's."""
        try:
            result = await self.handler(job)
            body = _body(result)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is None or task.cancelling():
                raise  # the connection is closing: cancellation is never swallowed
            self.failed += 1  # the handler's own, say a cancelled call it awaited
            log.error("MDP worker %r: handler raised CancelledError", self.name)
            return error_body(HANDLER_FAILED, "the handler was cancelled")
        except MDPError as exc:
            self.failed += 1
            log.info("MDP worker %r: handler answered an error: %s", self.name, exc)
            return error_body(exc.status or HANDLER_FAILED, exc.message)
        except Exception as exc:
            self.failed += 1
            log.exception("MDP worker %r: handler failed", self.name)
            return error_body(HANDLER_FAILED, f"{type(exc).__name__}: {exc}")
        self.served += 1
        return body


def _body(result: Any) -> tuple[bytes, ...]:
    """The reply frames a handler's value stands for.

    Raises:
        TypeError: neither bytes nor a sequence of bytes.
    """
    if isinstance(result, bytes):
        return (result,)
    if isinstance(result, tuple | list) or (
        isinstance(result, Sequence) and not isinstance(result, str)
    ):
        frames = tuple(result)
        for frame in frames:
            if not isinstance(frame, bytes):
                break
        else:
            return frames or (b"",)  # a body has at least one frame (RFC 7)
    raise TypeError(f"a handler returns bytes or a sequence of bytes, not {type(result).__name__}")


#: What a worker takes from the broker (RFC 7 / RFC 18, "MDP/Worker").
_FROM_BROKER = (Heartbeat, Request, Disconnect)

#: Seconds between two tries of a send to a broker whose pipe is full (doubling up to 0.05).
SEND_PAUSE = 0.001


class _Connection:
    """One DEALER socket to the broker, from READY to DISCONNECT or silence.

    :meth:`run` (in the connection's task) awaits each request's handler itself; the
    socket is read by a :class:`~cordio.zmq.mdp._io.SocketIO` callback (heartbeats,
    DISCONNECT, a REQUEST while busy) and a timer sends heartbeats and watches the
    broker's silence, so nothing waits on a timeout per message. What ends the connection
    while a handler runs (DISCONNECT, a CURVE refusal, a heartbeat that cannot be sent,
    ``stop_grace`` over) cancels the task, which :meth:`run` takes back (``uncancel``).
    """

    def __init__(self, worker: MDPWorker, index: int) -> None:
        self.worker = worker
        self.index = index
        self.version = worker.options.version
        self.name = worker.name
        self.heard = False
        self.gaps: collections.deque[float] = collections.deque(maxlen=2)
        self.loop = asyncio.get_running_loop()
        self.next_beat = 0.0
        self.last_heard = 0.0
        #: since the broker's last word, while idle (heartbeat gaps are measured from it)
        self.sampling: float | None = None
        self.refusal: HandshakeFailure | None = None
        self.monitor: HandshakeMonitor | None = None
        #: how the connection ended (``stopped``, ``disconnected``, ``silent``, ``refused``)
        self.outcome: str | None = None
        self.stopping = False
        self.busy = False
        self.task: asyncio.Task[Any] | None = None
        self.wakeup: asyncio.Future[Request | None] | None = None  # run() waits, idle
        self.in_handler = False
        self.cancelled_handler = False  # we cancelled the task to end the handler
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at = float("inf")
        self.sends: set[asyncio.Task[None]] = set()
        sock = _context(worker._context).socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        window = worker.heartbeat_interval * worker.options.heartbeat_liveness
        #: seconds a send may wait for a full pipe (was ZMQ_SNDTIMEO with zmq.asyncio)
        self.send_timeout = max(1, round(window * 1000)) / 1000
        sock.setsockopt(zmq.SNDTIMEO, max(1, round(window * 1000)))
        if worker.curve is not None:  # before connect: options apply to later connects
            configure_client(sock, worker.curve)
            self.monitor = HandshakeMonitor(sock, failures=worker.curve.handshake_failures)
        sock.connect(worker.broker)
        self.sock = sock
        self.io = SocketIO(sock, self.on_message, name=f"MDP worker {worker.name!r}")

    # -- sending --------------------------------------------------------------------------

    async def send(self, frames: list[bytes]) -> None:
        """Send, and count it as our heartbeat.

        Raises:
            _BrokerGone: the message could not even be queued within the liveness window.
        """
        try:
            self.io.send(frames)
        except zmq.Again:
            await self._send_slowly(frames)
        self.next_beat = self.loop.time() + self.worker.heartbeat_interval

    async def _send_slowly(self, frames: list[bytes]) -> None:
        """Try again while the pipe is full, for :attr:`send_timeout` seconds.

        Raises:
            _BrokerGone: still full.
        """
        deadline = self.loop.time() + self.send_timeout
        pause = SEND_PAUSE
        while True:
            await asyncio.sleep(pause)
            try:
                self.io.send(frames)
                return
            except zmq.Again:
                if self.loop.time() >= deadline:
                    raise _BrokerGone from None
            pause = min(pause * 2, 0.05)

    def _heartbeat(self) -> None:
        """Send HEARTBEAT from the timer; when the pipe is full, keep trying in a task
        (the broker is taken for gone if it stays full)."""
        frames = Heartbeat(self.version).to_frames()
        try:
            self.io.send(frames)
        except zmq.Again:
            task = self.loop.create_task(self._heartbeat_slowly(frames))
            self.sends.add(task)
            task.add_done_callback(self.sends.discard)
        self.next_beat = self.loop.time() + self.worker.heartbeat_interval

    async def _heartbeat_slowly(self, frames: list[bytes]) -> None:
        try:
            await self._send_slowly(frames)
        except _BrokerGone:
            self.finish("silent")

    # -- the connection -------------------------------------------------------------------

    async def run(self) -> tuple[str, bool]:
        """``(outcome, heard)``: ``stopped``, ``disconnected``, ``silent`` or ``refused``
        (the CURVE handshake failed: :attr:`refusal` says why), and whether the broker said
        anything but DISCONNECT."""
        worker = self.worker
        assert worker._stopping is not None
        task = self.task = asyncio.current_task()
        assert task is not None
        stop = self.loop.create_task(worker._stopping.wait())
        try:
            await self.send(Ready(self.version, worker.service).to_frames())
            self.last_heard = self.sampling = self.loop.time()
            stop.add_done_callback(self.on_stop)
            if self.monitor is not None:
                self.monitor.refused.add_done_callback(self.on_refused)
            self.io.start()
            self.arm()
            while self.outcome is None:
                wakeup = self.wakeup = self.loop.create_future()
                # a REQUEST that came while the reply was sent is read now: no loop turns
                self.io.read_now()
                request = await wakeup
                self.wakeup = None
                if request is None:
                    break
                body = await self.serve(task, request)
                if body is None:
                    break
                await self.send(Reply(self.version, request.client, body).to_frames())
                self.busy = False
                if self.stopping:  # the request finished within stop_grace
                    self.finish("stopped")
                    break
                self.last_heard = self.loop.time()  # the broker's silence while busy
                self.arm()
            if self.outcome == "stopped":
                await self.leave()
            return self.outcome or "stopped", self.heard
        except _BrokerGone:
            return "silent", self.heard
        finally:
            self.io.close()
            stop.cancel()
            if self.timer is not None:
                self.timer.cancel()
            for send in list(self.sends):
                send.cancel()
            if self.monitor is not None:
                self.monitor.close()
            if not self.sock.closed:
                self.sock.close(linger=0)

    async def serve(self, task: asyncio.Task[Any], request: Request) -> tuple[bytes, ...] | None:
        """Run the handler in this task: the reply body, or ``None`` when the connection
        ended meanwhile (the handler was cancelled)."""
        self.in_handler = True
        try:
            body: tuple[bytes, ...] | None = await self.worker._call(self.job(request))
        except asyncio.CancelledError:
            if not self.cancelled_handler:
                raise
            self.cancelled_handler = False
            if task.uncancel():
                raise  # cancelled from outside too
            return None
        finally:
            self.in_handler = False
        if self.cancelled_handler:  # the handler swallowed our cancellation
            self.cancelled_handler = False
            task.uncancel()
            return None
        return body

    def finish(self, outcome: str) -> None:
        """End the connection: wake :meth:`run`, or cancel the handler it awaits."""
        if self.outcome is not None:
            return
        self.outcome = outcome
        if self.wakeup is not None and not self.wakeup.done():
            self.wakeup.set_result(None)
        elif self.in_handler and not self.cancelled_handler and self.task is not None:
            self.cancelled_handler = True
            self.task.cancel()

    def on_stop(self, _: object) -> None:
        """Stop: a running request may finish within ``stop_grace``, then DISCONNECT."""
        self.stopping = True
        if self.in_handler:
            self.loop.call_at(self.worker._stop_deadline, self.on_grace_over)
        else:
            self.finish("stopped")

    def on_grace_over(self) -> None:
        if self.outcome is None and self.in_handler:
            log.warning(
                "MDP worker %r: a request still ran after stop_grace; cancelled",
                self.worker.name,
            )
            self.finish("stopped")

    def on_refused(self, refused: asyncio.Future[HandshakeFailure]) -> None:
        if self.outcome is None and not self.stopping and not refused.cancelled():
            self.refusal = refused.result()
            self.finish("refused")

    def on_message(self, frames: list[bytes]) -> None:
        """A message from the broker (the SocketIO callback)."""
        if self.outcome is not None or self.stopping:
            return
        worker = self.worker
        now = self.loop.time()
        command = self.read(frames)
        if isinstance(command, Disconnect):
            self.finish("disconnected")
            return
        if command is not None:
            if not self.heard:
                self.heard = True
                worker._answered()
            self.last_heard = now
        if isinstance(command, Heartbeat):
            if self.sampling is not None:
                self.gaps.append(now - self.sampling)
                worker._observe(self.gaps)
                self.next_beat = min(self.next_beat, now + worker.heartbeat_interval)
                self.arm()
            self.sampling = now
        elif isinstance(command, Request):
            self.sampling = None
            wakeup = self.wakeup
            if self.busy or wakeup is None or wakeup.done():
                worker.dropped["request_while_busy"] += 1
                log.warning(
                    "MDP worker %r: a REQUEST while busy (RFC 7: one at a time); dropped",
                    worker.name,
                )
            else:
                self.busy = True
                wakeup.set_result(command)

    # -- heartbeats and silence -----------------------------------------------------------

    def window(self) -> float:
        worker = self.worker
        return (
            worker.heartbeat_interval * worker.options.heartbeat_liveness * worker._silence_factor
        )

    def arm(self) -> None:
        """Make sure the timer fires by the next heartbeat or silence deadline (it re-arms
        itself when it fires early: deadlines mostly move later)."""
        deadline = (
            self.next_beat if self.busy else min(self.next_beat, self.last_heard + self.window())
        )
        if deadline < self.timer_at:
            if self.timer is not None:
                self.timer.cancel()
            self.timer_at = deadline
            self.timer = self.loop.call_at(deadline, self.on_timer)

    def on_timer(self) -> None:
        self.timer, self.timer_at = None, float("inf")
        if self.outcome is not None or self.stopping:
            return
        now = self.loop.time()
        if not self.busy and now - self.last_heard >= self.window():
            monitor = self.monitor
            if monitor is not None and monitor.last is not None and not monitor.succeeded:
                self.refusal = monitor.last  # silent because no handshake succeeded
                self.finish("refused")
                return
            self.worker._silent_session()
            self.finish("silent")
            return
        if now >= self.next_beat:
            self._heartbeat()
        self.arm()

    def read(self, frames: list[bytes]) -> Heartbeat | Request | Disconnect | None:
        """The broker's command, or ``None`` when it was dropped (counted)."""
        worker = self.worker
        try:
            command = parse_worker(frames)
        except MalformedMessage as exc:
            worker.dropped[exc.reason] += 1
            log.warning("MDP worker %r: dropped a message from the broker: %s", worker.name, exc)
            return None
        if command.version is not self.version:
            worker.dropped["wrong_version"] += 1
            log.warning(
                "MDP worker %r: dropped a %s command on an %s connection",
                worker.name,
                command.version.value,
                self.version.value,
            )
            return None
        if isinstance(command, _FROM_BROKER):
            return command
        worker.dropped["unexpected_command"] += 1
        log.warning("MDP worker %r: dropped %s from the broker", worker.name, command)
        return None

    def job(self, request: Request) -> Job:
        async def partial(frames: tuple[bytes, ...]) -> None:
            reply = Reply(self.version, request.client, frames, final=False)
            await self.send(reply.to_frames())

        return Job(self.name, request.client, request.body, self.version, partial)

    async def leave(self) -> None:
        """Stop: DISCONNECT (a running request has been answered or cancelled)."""
        try:
            await self.send(Disconnect(self.version).to_frames())
        except _BrokerGone:
            return
        # keep the socket long enough for DISCONNECT to leave (libzmq sends in its thread)
        self.io.close()
        if self.monitor is not None:
            self.monitor.close()
        self.sock.close(linger=round(min(1.0, self.worker.heartbeat_interval) * 1000))
