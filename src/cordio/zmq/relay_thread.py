"""The thread side of a relay (:mod:`cordio.zmq.relay`): one worker thread with its own
sockets, pulling items, calling the processing function and pushing results back; the
codec of bodies, and the wake-up every thread polls at stop. Frames and limits are those
of the relay's module docstring."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import socket
import threading
from typing import TYPE_CHECKING, Any, Literal

from cordio.errors import require_extra

require_extra("zmq", feature="ZeroMQ thread relay", extra="zmq")

from cordio.zmq.mdp._zmq import zmq  # noqa: E402

if TYPE_CHECKING:
    from cordio.observe.masking import Masker
    from cordio.zmq.relay import Relay

log = logging.getLogger("cordio.zmq.relay")

OK = b"ok"
ERROR = b"error"
#: The longest id frame accepted, in bytes.
MAX_ID = 255

#: How items are encoded: MessagePack, or bytes as they are.
Codec = Literal["msgpack", "raw"]
#: What ``async for`` does with a failed item: yield it with its error, or skip it.
ErrorPolicy = Literal["forward", "drop"]


class _Codec:
    """Bodies in and out: MessagePack or raw bytes."""

    def __init__(self, codec: Codec) -> None:
        self.raw = codec == "raw"
        if not self.raw:
            msgpack: Any = require_extra(
                "msgpack", feature="MessagePack frames of the ZeroMQ relay", extra="msgpack"
            )
            self._pack = functools.partial(msgpack.packb, use_bin_type=True)
            self._unpack = functools.partial(msgpack.unpackb, raw=False, strict_map_key=False)

    def encode(self, value: Any) -> bytes:
        """Raises: TypeError (or msgpack's errors) for a value the codec cannot carry."""
        if self.raw:
            if not isinstance(value, bytes | bytearray | memoryview):
                raise TypeError(f"the raw codec carries bytes, not {type(value).__name__}")
            return bytes(value)
        packed: bytes = self._pack(value)
        return packed

    def decode(self, body: bytes) -> Any:
        """Raises: msgpack's errors (``ValueError`` and its kin) for a malformed body."""
        return body if self.raw else self._unpack(body)


def _error_details(exc: BaseException, masker: Masker) -> bytes:
    """The error reply's body: the exception's class and its text, masked."""
    return json.dumps({"type": type(exc).__name__, "message": masker.text(str(exc))}).encode()


def _shape(frames: list[bytes], count: int) -> str:
    """What is wrong with the number of frames or the id frame, or ``""``."""
    if len(frames) != count:
        return f"{len(frames)} frame(s)"
    if not 1 <= len(frames[0]) <= MAX_ID:
        return f"an id of {len(frames[0])} bytes (1 to {MAX_ID})"
    return ""


class _Wake:
    """A socket pair whose read end turns readable for good once :meth:`set`: every thread
    polling it wakes. Closed by the last of its holders to :meth:`release` it, so a thread
    that outlives :meth:`Relay.stop` never polls a closed (or reused) descriptor."""

    def __init__(self, holders: int) -> None:
        self._read, self._write = socket.socketpair()
        self._holders = holders
        self._lock = threading.Lock()

    def fileno(self) -> int:
        return self._read.fileno()

    def set(self) -> None:
        self._write.send(b"\0")

    def release(self) -> None:
        with self._lock:
            self._holders -= 1
            last = self._holders == 0
        if last:
            self._read.close()
            self._write.close()


class _Worker:
    """One thread of a relay, with its own sockets and counters (written by that thread
    only, read by the loop)."""

    def __init__(
        self, relay: Relay, index: int, wake: _Wake, loop: asyncio.AbstractEventLoop
    ) -> None:
        self.relay = relay
        self.wake = wake
        self.endpoint = relay.input_endpoints[index]
        self.loop = loop
        self.ready: asyncio.Future[None] = loop.create_future()
        self.ended: asyncio.Future[None] = loop.create_future()
        self.processed = 0
        self.failed = 0
        self.malformed = 0
        self.thread = threading.Thread(
            target=self.run, name=f"cordio.relay:{relay.name}:{index}", daemon=True
        )

    def _tell(self, future: asyncio.Future[None], exc: BaseException | None = None) -> None:
        def settle() -> None:
            if future.done():
                return
            if exc is None:
                future.set_result(None)
            else:
                future.set_exception(exc)

        try:
            self.loop.call_soon_threadsafe(settle)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            pass

    def run(self) -> None:
        relay = self.relay
        pull: zmq.Socket[bytes] | None = None
        push: zmq.Socket[bytes] | None = None
        try:
            context = relay._threads_context
            assert context is not None
            pull = context.socket(zmq.PULL)
            pull.setsockopt(zmq.LINGER, 0)
            pull.setsockopt(zmq.RCVHWM, 1)
            pull.bind(self.endpoint)
            push = context.socket(zmq.PUSH)
            push.setsockopt(zmq.LINGER, 0)
            push.setsockopt(zmq.SNDHWM, 1)
            push.connect(relay.output_endpoint)
        except Exception as exc:
            self._tell(self.ready, exc)
        else:
            self._tell(self.ready)
            try:
                self._serve(pull, push)
            except zmq.ContextTerminated:
                log.warning("relay %s: the ZeroMQ context was terminated", relay.name)
            except Exception:  # a bug: say so, and let stop() find the thread ended
                log.exception("relay %s: %s failed", relay.name, self.thread.name)
        finally:
            for sock in (pull, push):
                if sock is not None:
                    sock.close(linger=0)
            self.wake.release()
            self._tell(self.ended)

    def _serve(self, pull: zmq.Socket[bytes], push: zmq.Socket[bytes]) -> None:
        wake = self.wake.fileno()
        incoming = zmq.Poller()
        incoming.register(pull, zmq.POLLIN)
        incoming.register(wake, zmq.POLLIN)
        outgoing = zmq.Poller()
        outgoing.register(push, zmq.POLLOUT)
        outgoing.register(wake, zmq.POLLIN)
        while True:
            if wake in dict(incoming.poll()):
                return
            try:
                frames = pull.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                continue
            reply = self._process(frames)
            while reply is not None:
                try:
                    push.send_multipart(reply, zmq.NOBLOCK)
                    reply = None
                except zmq.Again:  # the results queue is full: wait for room, or the end
                    if wake in dict(outgoing.poll()):
                        return  # this result is lost; the loop counts it

    def _process(self, frames: list[bytes]) -> list[bytes] | None:
        relay = self.relay
        problem = _shape(frames, 2)
        if problem:
            self.malformed += 1
            relay._malformed("input", "not [id, body]", problem)
            return None
        item_id, body = frames
        try:
            value = relay._codec.decode(body)
        except Exception as exc:
            self.malformed += 1
            relay._malformed("input", "undecodable body", f"{type(exc).__name__}: {exc}")
            return None
        try:
            out = relay._codec.encode(relay._func(value))
        except BaseException as exc:  # a thread has nobody to pass it to: count and answer
            self.failed += 1
            relay._failure(exc)
            return [item_id, ERROR, _error_details(exc, relay._masker)]
        self.processed += 1
        return [item_id, OK, out]
