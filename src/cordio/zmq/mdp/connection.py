"""One connection of an MDP worker to its broker: READY, requests, heartbeats,
DISCONNECT (RFC 7 and RFC 18, "MDP/Worker"), on a DEALER socket read by
:class:`~cordio.zmq.mdp._io.SocketIO`. :class:`~cordio.zmq.mdp.worker.MDPWorker` runs one
per ``concurrency`` and starts a new one, after a backoff, when one ends."""

from __future__ import annotations

import asyncio
import collections
import logging
from typing import TYPE_CHECKING, Any

from cordio.zmq.curve import configure_client
from cordio.zmq.handshake import HandshakeFailure, HandshakeMonitor
from cordio.zmq.mdp._io import SocketIO
from cordio.zmq.mdp._zmq import context as _context
from cordio.zmq.mdp._zmq import zmq
from cordio.zmq.mdp.errors import MalformedMessage
from cordio.zmq.mdp.frames import (
    Disconnect,
    Heartbeat,
    Ready,
    Reply,
    Request,
    parse_worker,
)
from cordio.zmq.mdp.job import Job

if TYPE_CHECKING:
    from cordio.zmq.mdp.worker import MDPWorker

log = logging.getLogger("cordio.zmq.mdp.worker")


class _BrokerGone(Exception):
    """A send could not be queued within the liveness window: the broker is not reading."""


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
