"""MDP clients and workers written from the RFC text alone, on raw pyzmq sockets.

They know nothing of cordio: every frame below is typed out from the layouts of RFC 7
(MDP/0.1) and RFC 18 (MDP/0.2), so a test that passes with them says cordio's broker,
worker or client speaks the protocol as written, not merely as cordio reads it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import zmq.asyncio

# RFC 7, MDP/0.1
C01, W01 = b"MDPC01", b"MDPW01"
W01_READY, W01_REQUEST, W01_REPLY, W01_HEARTBEAT, W01_DISCONNECT = (
    b"\x01",
    b"\x02",
    b"\x03",
    b"\x04",
    b"\x05",
)
# RFC 18, MDP/0.2
C02, W02 = b"MDPC02", b"MDPW02"
C02_REQUEST, C02_PARTIAL, C02_FINAL = b"\x01", b"\x02", b"\x03"
W02_READY, W02_REQUEST, W02_PARTIAL, W02_FINAL, W02_HEARTBEAT, W02_DISCONNECT = (
    b"\x01",
    b"\x02",
    b"\x03",
    b"\x04",
    b"\x05",
    b"\x06",
)

TIMEOUT = 5.0


def context() -> zmq.asyncio.Context:
    return zmq.asyncio.Context.instance()


class Peer:
    """One raw socket connected to a broker."""

    def __init__(self, endpoint: str, kind: int, *, receive_hwm: int = 1000) -> None:
        self.sock = context().socket(kind)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.RCVHWM, receive_hwm)
        self.sock.connect(endpoint)

    async def send(self, *frames: bytes) -> None:
        await self.sock.send_multipart(list(frames))

    async def recv(self, timeout: float = TIMEOUT) -> list[bytes]:
        return await asyncio.wait_for(self.sock.recv_multipart(), timeout)

    async def silent(self, seconds: float) -> bool:
        """Whether nothing arrives for ``seconds``."""
        try:
            await asyncio.wait_for(self.sock.poll(), seconds)
        except TimeoutError:
            return True
        return False

    def close(self) -> None:
        self.sock.close(linger=0)


class Client01(Peer):
    """RFC 7 client on a REQ socket ("Clients SHOULD use a REQ socket"): the REQ socket adds
    and strips frame 0."""

    def __init__(self, endpoint: str) -> None:
        super().__init__(endpoint, zmq.REQ)

    async def request(self, service: bytes, *body: bytes) -> list[bytes]:
        await self.send(C01, service, *body)
        reply = await self.recv()
        assert reply[:2] == [C01, service], reply
        return reply[2:]


class Client02(Peer):
    """RFC 18 client ("Clients MUST use a DEALER socket")."""

    def __init__(self, endpoint: str) -> None:
        super().__init__(endpoint, zmq.DEALER)

    async def request(self, service: bytes, *body: bytes) -> tuple[list[list[bytes]], list[bytes]]:
        """``(partial bodies, final body)``."""
        await self.send(C02, C02_REQUEST, service, *body)
        partials = []
        while True:
            reply = await self.recv()
            assert reply[0] == C02, reply
            assert reply[2] == service, reply
            if reply[1] == C02_FINAL:
                return partials, reply[3:]
            assert reply[1] == C02_PARTIAL, reply
            partials.append(reply[3:])


class Worker(Peer):
    """An RFC 7 or RFC 18 worker on a DEALER socket."""

    def __init__(self, endpoint: str, service: bytes, version: str = "0.1") -> None:
        super().__init__(endpoint, zmq.DEALER)
        self.service = service
        self.version = version
        self.lead = [b"", W01] if version == "0.1" else [W02]

    def code(self, name: str) -> bytes:
        table01 = {
            "READY": W01_READY,
            "REQUEST": W01_REQUEST,
            "REPLY": W01_REPLY,
            "FINAL": W01_REPLY,
            "HEARTBEAT": W01_HEARTBEAT,
            "DISCONNECT": W01_DISCONNECT,
        }
        table02 = {
            "READY": W02_READY,
            "REQUEST": W02_REQUEST,
            "PARTIAL": W02_PARTIAL,
            "FINAL": W02_FINAL,
            "REPLY": W02_FINAL,
            "HEARTBEAT": W02_HEARTBEAT,
            "DISCONNECT": W02_DISCONNECT,
        }
        return (table01 if self.version == "0.1" else table02)[name]

    async def command(self, name: str, *rest: bytes) -> None:
        await self.send(*self.lead, self.code(name), *rest)

    async def ready(self) -> None:
        await self.command("READY", self.service)

    async def heartbeat(self) -> None:
        await self.command("HEARTBEAT")

    async def disconnect(self) -> None:
        await self.command("DISCONNECT")

    async def reply(self, client: bytes, *body: bytes, partial: bool = False) -> None:
        await self.command("PARTIAL" if partial else "REPLY", client, b"", *body)

    async def next_command(self, timeout: float = TIMEOUT) -> tuple[str, list[bytes]]:
        """The next command from the broker: its name and the frames after it."""
        frames = await self.recv(timeout)
        lead = len(self.lead)
        assert frames[:lead] == self.lead, frames
        names = {self.code(n): n for n in ("REQUEST", "HEARTBEAT", "DISCONNECT")}
        return names[frames[lead]], frames[lead + 1 :]

    async def next_request(self, timeout: float = TIMEOUT) -> tuple[bytes, list[bytes]]:
        """Skip heartbeats up to the next REQUEST: ``(client address, body)``."""
        while True:
            name, rest = await self.next_command(timeout)
            if name == "REQUEST":
                assert rest[1] == b"", rest  # the envelope delimiter
                return rest[0], rest[2:]
            assert name == "HEARTBEAT", (name, rest)

    async def serve(self, heartbeat: float, echo_prefix: bytes = b"") -> None:
        """Echo every request (with ``echo_prefix`` first), heartbeating every ``heartbeat``
        seconds; until cancelled."""
        await self.ready()
        loop = asyncio.get_running_loop()
        next_beat = loop.time() + heartbeat
        while True:
            try:
                name, rest = await self.next_command(max(0.0, next_beat - loop.time()))
            except TimeoutError:
                await self.heartbeat()
                next_beat = loop.time() + heartbeat
                continue
            if name == "REQUEST":
                body = rest[2:]
                await self.reply(rest[0], *([echo_prefix] if echo_prefix else []), *body)
            elif name == "DISCONNECT":
                return


@contextlib.asynccontextmanager
async def serving(worker: Worker, heartbeat: float) -> AsyncIterator[Worker]:
    """Run ``worker.serve`` in a task for the ``with`` block."""
    task = asyncio.get_running_loop().create_task(worker.serve(heartbeat))
    try:
        yield worker
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        worker.close()


class Broker:
    """The broker's side of RFC 7 / RFC 18, by hand: a bound ROUTER socket that shows the
    frames exactly as they arrive (the peer's identity first)."""

    def __init__(self, endpoint: str) -> None:
        self.sock = context().socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.bind(endpoint)

    async def send(self, *frames: bytes) -> None:
        await self.sock.send_multipart(list(frames))

    async def recv(self, timeout: float = TIMEOUT) -> list[bytes]:
        return await asyncio.wait_for(self.sock.recv_multipart(), timeout)

    async def recv_skipping_heartbeats(self, timeout: float = TIMEOUT) -> list[bytes]:
        while True:
            frames = await self.recv(timeout)
            if frames[1:] not in ([b"", W01, W01_HEARTBEAT], [W02, W02_HEARTBEAT]):
                return frames

    def close(self) -> None:
        self.sock.close(linger=0)
