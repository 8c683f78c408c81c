"""A relay to code that must run in threads: receive on one ZeroMQ channel, run a processing
function in a thread, forward the result on another (pylib's ``ZmqRelay``, never pickle).

::

    def resize(image: bytes) -> bytes:          # blocking code: runs in a relay thread
        return thumbnail(image)

    async with Relay(resize, RelayOptions(threads=4, codec="raw"), name="resize") as relay:
        small = await relay.call(big)            # one item in, its result out
        await relay.send(other)                  # or: send now ...
        async for result in relay:               # ... and take results as they come
            ...

**Channels.** Each of :attr:`RelayOptions.threads` threads owns its sockets (ZeroMQ sockets
are not thread-safe): a PULL bound at its own ``inproc://`` endpoint
(:attr:`Relay.input_endpoints`) and a PUSH connected to :attr:`Relay.output_endpoint`,
where the event loop's PULL is bound. The event loop's PUSH is connected to every thread's
endpoint and deals items among them (ZeroMQ's round robin over the threads with room). All
sockets are on one context (``inproc://`` needs it): the app's, given as ``context``, or the
process's shared one. Other code on that context may connect its own PUSH to an input
endpoint; its results come out of ``async for`` like those of :meth:`Relay.send`.

**Frames.** In: ``[id, body]``; out: ``[id, b"ok", body]`` or ``[id, b"error", details]``.
``id`` is 1 to 255 opaque bytes, sent back unchanged (the relay's own are 12 bytes: a random
prefix per relay and a counter). ``body`` is MessagePack (``codec="msgpack"``, the default,
needs ``cordio[msgpack]``) or the bytes themselves (``codec="raw"``). ``details`` is JSON
``{"type": "ValueError", "message": "..."}`` in both codecs. Anything else arriving on
either side is counted in :attr:`Relay.malformed`, logged (the first of each kind as a
warning, the rest at debug level) and dropped.

**Back-pressure.** Every queue is bounded by high-water marks, so a slow processing function
slows the sender down instead of growing memory: the loop's PUSH has ``ZMQ_SNDHWM = hwm``
and each thread's PULL ``ZMQ_RCVHWM = 1``, so at most ``hwm + 1`` items wait for each
thread (libzmq sums the two ends of an ``inproc`` pipe), one more is in its hands, and
:meth:`Relay.send` / :meth:`Relay.call` wait beyond that: at most ``threads * (hwm + 2)``
items are between a completed send and the function's return. Results are bounded the same
way (``hwm + 1`` per thread), and at most ``hwm`` results of :meth:`Relay.send` wait for
``async for``; while nobody takes them the relay stops reading results, then the threads
stop, then senders wait.

**Errors of the processing function** are counted in :attr:`Relay.failed` and logged, one
warning line per failure naming the exception's type, with the traceback the first time a
type is seen (every time when the ``cordio.zmq.relay`` logger is at debug level). The thread
keeps serving. The failure travels back as an error item: :meth:`Relay.call` raises it as a
:class:`ProcessingError`, whatever the policy (a caller awaiting its item always learns);
``async for`` yields a :class:`RelayResult` whose ``error`` is set (``errors="forward"``, the
default) or skips it, counted in :attr:`Relay.dropped` (``errors="drop"``).

**Stop** (:meth:`Relay.stop`, also the end of ``async with``; the relay is a
:class:`~cordio.lifecycle.Service`): new items are refused (:class:`RelayClosed`), items in
flight get ``grace`` seconds to come back, then the threads are told to end (a wake-up
socket every thread polls) and joined for at most ``join_timeout`` seconds; sockets close
with linger 0. What was handed to ZeroMQ and did not come back is counted in
:attr:`Relay.lost` and logged; its :meth:`Relay.call` raises :class:`RelayClosed`. A thread
still inside the processing function after ``join_timeout`` cannot be interrupted in Python:
it is named in an error log line and ends (closing its sockets) when the function returns.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from cordio.errors import require_extra
from cordio.observe.masking import Masker, current_masker

require_extra("zmq", feature="ZeroMQ thread relay", extra="zmq")

from cordio.zmq.mdp._zmq import context as _context  # noqa: E402
from cordio.zmq.mdp._zmq import zmq  # noqa: E402
from cordio.zmq.relay_api import (  # noqa: E402
    ProcessingError,
    RelayClosed,
    RelayError,
    RelayOptions,
    RelayResult,
)
from cordio.zmq.relay_thread import (  # noqa: E402
    ERROR,
    OK,
    _Codec,
    _shape,
    _Wake,
    _Worker,
)

if TYPE_CHECKING:
    import zmq.asyncio

__all__ = [
    "ProcessingError",
    "Relay",
    "RelayClosed",
    "RelayError",
    "RelayOptions",
    "RelayResult",
]

log = logging.getLogger("cordio.zmq.relay")

#: The status frames of a result.
_serial = itertools.count()


@dataclass
class _Item:
    """An item of the relay's own in flight: who awaits it, and whether ZeroMQ has it."""

    waiter: asyncio.Future[Any] | None
    sent: bool = False


class Relay:
    """Run a synchronous function in a pool of threads, fed and drained over ZeroMQ.

    ::

        relay = Relay(parse, RelayOptions(threads=2, hwm=10), name="parser")
        await relay.start()
        doc = await relay.call(b"...")          # ProcessingError if parse raised
        await relay.stop()

    The module docstring gives the channels, frames, the back-pressure bound, the error
    policy and the stop sequence. The relay is an async context manager and a
    :class:`~cordio.lifecycle.Service`. For handlers that call it, make it a resource (an
    async generator around ``async with``, as ``examples/relay_amqp.py`` does): it stops
    after the app has drained their calls. Added with ``app.add(relay)``, it refuses new
    items from ``stop_accepting()`` on, which the app calls before draining them.

    Args:
        func: the processing function, synchronous, called in a relay thread with each
            item's decoded body; its return value is the result.
        options: threads, high-water mark, codec, error policy, grace (default
            :class:`RelayOptions`).
        name: names the threads (``cordio.relay:<name>:<n>``), endpoints and log lines
            (default ``"relay"``).
        context: the pyzmq context (asyncio or not) whose ``inproc://`` namespace to use:
            the app's; default the process's shared asyncio context. Never terminated here.

    Attributes:
        name: as given.
        options: as given.
        input_endpoints: one ``inproc://`` endpoint per thread, where its PULL is bound.
        output_endpoint: the ``inproc://`` endpoint where the loop's PULL takes results.
        dropped: results nobody took: failed items skipped under ``errors="drop"``, and
            results of :meth:`call` whose caller was cancelled.
        lost: items handed to ZeroMQ whose result had not come back when the relay stopped.

    Raises:
        ValueError: an empty name.
        MissingExtraError: ``codec="msgpack"`` without ``cordio[msgpack]``.
    """

    def __init__(
        self,
        func: Callable[[Any], Any],
        options: RelayOptions | None = None,
        *,
        name: str = "relay",
        context: zmq.Context[Any] | None = None,
    ) -> None:
        if not name:
            raise ValueError("a relay needs a name")
        self.name = name
        self.options = options if options is not None else RelayOptions()
        self._func = func
        self._func_name = getattr(func, "__qualname__", repr(func))
        self._codec = _Codec(self.options.codec)
        self._masker: Masker = current_masker()  # the app's, taken again at start
        base = f"inproc://cordio.relay.{name}.{next(_serial)}"
        self.input_endpoints = tuple(f"{base}.in.{i}" for i in range(self.options.threads))
        self.output_endpoint = f"{base}.out"
        self.dropped = 0
        self.lost = 0
        self._given_context = context
        self._threads_context: zmq.Context[Any] | None = None
        self._state: Literal["created", "starting", "running", "stopping", "stopped"]
        self._state = "created"
        self._stop_lock = asyncio.Lock()
        self._workers: list[_Worker] = []
        self._wake: _Wake | None = None
        self._push: zmq.asyncio.Socket | None = None
        self._pull: zmq.asyncio.Socket | None = None
        self._receiver: asyncio.Task[None] | None = None
        self._token = os.urandom(4)
        self._ids = itertools.count()
        self._pending: dict[bytes, _Item] = {}
        self._idle = asyncio.Event()
        self._idle.set()
        self._results: asyncio.Queue[RelayResult | None] = asyncio.Queue()
        self._room = asyncio.Semaphore(self.options.hwm)
        self._malformed_here = 0
        self._seen: set[object] = set()
        self._seen_lock = threading.Lock()

    # -- counters -----------------------------------------------------------------------

    @property
    def processed(self) -> int:
        """Items the processing function returned on (in every thread)."""
        return sum(worker.processed for worker in self._workers)

    @property
    def failed(self) -> int:
        """Items the processing function raised on, or whose result the codec could not
        encode."""
        return sum(worker.failed for worker in self._workers)

    @property
    def malformed(self) -> int:
        """Frames dropped as malformed: on the threads' input sockets and on the output."""
        return self._malformed_here + sum(worker.malformed for worker in self._workers)

    @property
    def in_flight(self) -> int:
        """The relay's own items not yet answered (including those waiting to be sent)."""
        return len(self._pending)

    @property
    def running(self) -> bool:
        """Whether items are accepted (started, not stopping)."""
        return self._state == "running"

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Start the threads, wait until each has its sockets, connect to them.

        Raises:
            RuntimeError: the relay was started before (a relay runs once).
            RelayError: a thread could not open its sockets, or did not within
                ``join_timeout`` (what started is stopped again).
        """
        if self._state != "created":
            raise RuntimeError(f"relay {self.name!r} was started before; a relay runs once")
        self._state = "starting"
        # the threads run outside the app's context: they mask with the app's masker, taken
        # here (an error reply names the exception, whose text may hold a secret)
        self._masker = current_masker()
        loop = asyncio.get_running_loop()
        given = self._given_context
        if isinstance(given, zmq.asyncio.Context):
            context = given
        elif given is not None:
            context = zmq.asyncio.Context.shadow(given.underlying)
        else:
            context = _context(None)
        self._threads_context = zmq.Context.shadow(context.underlying)
        self._pull = context.socket(zmq.PULL)
        self._pull.setsockopt(zmq.LINGER, 0)
        self._pull.setsockopt(zmq.RCVHWM, self.options.hwm)
        self._pull.bind(self.output_endpoint)
        wake = self._wake = _Wake(1 + self.options.threads)
        self._workers = [_Worker(self, i, wake, loop) for i in range(self.options.threads)]
        for worker in self._workers:
            try:
                worker.thread.start()
            except RuntimeError as exc:  # no more threads in this process
                wake.release()
                worker.ended.set_result(None)
                worker.ready.set_exception(exc)
        readiness = asyncio.gather(*(worker.ready for worker in self._workers))
        try:
            await asyncio.wait_for(readiness, self.options.join_timeout)
        except BaseException as exc:
            await self._shut(loop)
            self._state = "stopped"
            if isinstance(exc, asyncio.CancelledError):
                raise
            raise RelayError(f"relay {self.name!r}: a thread failed to start: {exc!r}") from exc
        self._push = context.socket(zmq.PUSH)
        self._push.setsockopt(zmq.LINGER, 0)
        self._push.setsockopt(zmq.SNDHWM, self.options.hwm)
        for endpoint in self.input_endpoints:
            self._push.connect(endpoint)
        self._receiver = loop.create_task(self._receive(), name=f"cordio.relay:{self.name}")
        self._state = "running"
        log.info(
            "relay %s: %d thread(s) running %s", self.name, self.options.threads, self._func_name
        )

    async def stop_accepting(self) -> None:
        """Refuse new items from now on (:class:`RelayClosed`); those in flight go on."""
        if self._state == "running":
            self._state = "stopping"

    async def stop(self) -> None:
        """Stop: refuse new items, give those in flight ``grace`` seconds, end and join the
        threads (at most ``join_timeout`` seconds), close the sockets (linger 0), count
        what did not come back in :attr:`lost`, and end every ``async for``. Idempotent;
        never raises for what it finds (it logs)."""
        async with self._stop_lock:
            if self._state in ("created", "stopped"):
                self._state = "stopped"
                return
            await self.stop_accepting()
            if self._pending:
                try:
                    await asyncio.wait_for(self._idle.wait(), self.options.grace)
                except TimeoutError:
                    pass
            await self._shut(asyncio.get_running_loop())
            self._state = "stopped"
            log.info(
                "relay %s stopped: %d processed, %d failed, %d malformed, %d dropped, %d lost",
                self.name,
                self.processed,
                self.failed,
                self.malformed,
                self.dropped,
                self.lost,
            )

    async def _shut(self, loop: asyncio.AbstractEventLoop) -> None:
        """End the threads, close the sockets, settle what is left."""
        assert self._wake is not None
        self._wake.set()
        ended = [worker.ended for worker in self._workers]
        if ended:
            await asyncio.wait(ended, timeout=self.options.join_timeout)
        stuck = []
        for worker in self._workers:
            if worker.ended.done():
                if worker.thread.ident is not None:
                    worker.thread.join(timeout=1.0)  # past its last line: returns at once
            elif worker.thread.is_alive():
                stuck.append(worker.thread.name)
        if stuck:
            log.error(
                "relay %s: thread(s) %s still in %s after %.1f s; they end when it returns",
                self.name,
                ", ".join(stuck),
                self._func_name,
                self.options.join_timeout,
            )
        if self._receiver is not None:
            self._receiver.cancel()
            await asyncio.wait([self._receiver])
        for sock in (self._push, self._pull):
            if sock is not None:
                sock.close(linger=0)  # cancels sends still waiting: they raise RelayClosed
        self._wake.release()
        lost = [item for item in self._pending.values() if item.sent]
        self._pending.clear()
        self._idle.set()
        for item in lost:
            if item.waiter is not None and not item.waiter.done():
                item.waiter.set_exception(
                    RelayClosed(f"relay {self.name!r} stopped before this item came back")
                )
        if lost:
            self.lost += len(lost)
            log.warning(
                "relay %s: %d item(s) in flight lost at stop (grace %.1f s)",
                self.name,
                len(lost),
                self.options.grace,
            )
        self._results.put_nowait(None)

    async def __aenter__(self) -> Relay:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- items in and out ---------------------------------------------------------------

    async def send(self, item: Any) -> bytes:
        """Hand ``item`` to a thread; its :class:`RelayResult` comes out of ``async for``.

        Waits while the threads' queues are full (back-pressure).

        Returns:
            The item's id, as the :class:`RelayResult` will carry it.

        Raises:
            RelayClosed: the relay is not running, or stopped before the item was sent.
            TypeError: the codec cannot encode ``item`` (``bytes`` only with ``"raw"``).
        """
        return await self._submit(item, None)

    async def call(self, item: Any) -> Any:
        """Hand ``item`` to a thread and wait for its result.

        Waits while the threads' queues are full (back-pressure), then for the function.
        Cancelling the call does not recall the item: its result is counted in
        :attr:`dropped`.

        Returns:
            The processing function's return value, decoded.

        Raises:
            ProcessingError: the function raised (its type name and message).
            RelayClosed: the relay is not running, or stopped before the result came back.
            TypeError: the codec cannot encode ``item``.
        """
        waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        try:
            await self._submit(item, waiter)
            return await waiter
        finally:
            if not waiter.done():
                waiter.cancel()

    async def _submit(self, item: Any, waiter: asyncio.Future[Any] | None) -> bytes:
        if self._state != "running" or self._push is None:
            raise RelayClosed(f"relay {self.name!r} is not running ({self._state})")
        body = self._codec.encode(item)
        item_id = self._token + next(self._ids).to_bytes(8, "big")
        entry = self._pending[item_id] = _Item(waiter)
        self._idle.clear()
        try:
            await self._push.send_multipart([item_id, body])
        except BaseException as exc:
            self._settled(item_id)
            task = asyncio.current_task()
            if self._state != "running" and (
                isinstance(exc, zmq.ZMQError)
                or (isinstance(exc, asyncio.CancelledError) and task and not task.cancelling())
            ):
                raise RelayClosed(f"relay {self.name!r} stopped before the item was sent") from None
            raise
        entry.sent = True
        return item_id

    def _settled(self, item_id: bytes) -> _Item | None:
        entry = self._pending.pop(item_id, None)
        if not self._pending:
            self._idle.set()
        return entry

    def __aiter__(self) -> AsyncIterator[RelayResult]:
        """Results of :meth:`send` (and of other producers) as they come, in the order they
        come back (across threads, not the order sent: match them by ``id``). Ends when
        the relay has stopped and every result before was taken. Several iterators share
        the results (each one goes to one of them)."""
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[RelayResult]:
        while True:
            result = await self._results.get()
            if result is None:
                self._results.put_nowait(None)  # the end, for the other iterators too
                return
            self._room.release()
            yield result

    # -- the loop's side of the output channel ------------------------------------------

    async def _receive(self) -> None:
        assert self._pull is not None
        while True:
            try:
                frames = await self._pull.recv_multipart()
            except zmq.ContextTerminated:
                log.warning("relay %s: the ZeroMQ context was terminated", self.name)
                return
            try:
                await self._deliver(frames)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug: never the end of the relay
                log.exception("relay %s: a result could not be delivered", self.name)

    async def _deliver(self, frames: list[bytes]) -> None:
        parsed = self._parse(frames)
        if parsed is None:
            return
        result = parsed
        entry = self._pending.get(result.id)
        if entry is not None and entry.waiter is not None:
            self._settled(result.id)
            if entry.waiter.done():  # its caller was cancelled
                self.dropped += 1
            elif result.error is not None:
                entry.waiter.set_exception(result.error)
            else:
                entry.waiter.set_result(result.value)
            return
        if result.error is not None and self.options.errors == "drop":
            self._settled(result.id)
            self.dropped += 1
            return
        await self._room.acquire()  # at most hwm results wait for async for
        self._settled(result.id)
        self._results.put_nowait(result)

    def _parse(self, frames: list[bytes]) -> RelayResult | None:
        problem = _shape(frames, 3)
        if not problem and frames[1] not in (OK, ERROR):
            problem = f"status {frames[1][:20]!r}"
        if problem:
            self._malformed_here += 1
            self._malformed("output", "not [id, status, body]", problem)
            return None
        item_id, status, body = frames
        try:
            if status == OK:
                return RelayResult(item_id, self._codec.decode(body))
            details = json.loads(body)
            error = ProcessingError(str(details["type"]), str(details["message"]))
        except Exception as exc:
            self._malformed_here += 1
            kind = f"undecodable {status.decode()} body"
            self._malformed("output", kind, f"{type(exc).__name__}: {exc}")
            return None
        return RelayResult(item_id, error=error)

    # -- logging (from any thread) ------------------------------------------------------

    def _first(self, key: object) -> bool:
        with self._seen_lock:
            first = key not in self._seen
            self._seen.add(key)
        return first

    def _failure(self, exc: BaseException) -> None:
        kind = type(exc)
        traced = self._first(kind) or log.isEnabledFor(logging.DEBUG)
        log.warning(
            "relay %s: %s raised %s: %s",
            self.name,
            self._func_name,
            kind.__qualname__,
            exc,
            exc_info=exc if traced else None,
        )

    def _malformed(self, where: str, kind: str, detail: str) -> None:
        level = logging.WARNING if self._first((where, kind)) else logging.DEBUG
        log.log(
            level, "relay %s: malformed %s dropped, %s: %s", self.name, where, kind, detail[:200]
        )
