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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cordio.zmq.curve import CurveClientConfig
from cordio.zmq.handshake import HandshakeFailure
from cordio.zmq.mdp._options import counts, seconds
from cordio.zmq.mdp._zmq import endpoints as _endpoints
from cordio.zmq.mdp._zmq import zmq
from cordio.zmq.mdp.errors import HANDLER_FAILED, MDPError, error_body
from cordio.zmq.mdp.frames import (
    MMI_PREFIX,
    Version,
)

if TYPE_CHECKING:
    import zmq.asyncio

from cordio.zmq.mdp.connection import _Connection
from cordio.zmq.mdp.job import Handler, Job, ReplyBody

__all__ = ["Handler", "Job", "MDPWorker", "ReplyBody", "WorkerOptions"]

log = logging.getLogger("cordio.zmq.mdp.worker")

#: The most the silence window grows for a broker that has not said a word (a multiple).
MAX_SILENCE_FACTOR = 16


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
