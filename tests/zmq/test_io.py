"""SocketIO: reads woken by the loop's reader on the edge-triggered ZMQ_FD, plain sends."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator

import pytest
import zmq.asyncio  # binds zmq too

from cordio.zmq.mdp._io import SocketIO

_names = itertools.count()


async def _until(predicate: object, timeout: float = 2.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.005)


@pytest.fixture
def pair() -> Iterator[tuple[zmq.asyncio.Socket, zmq.Socket[bytes]]]:
    context = zmq.asyncio.Context.instance()
    endpoint = f"inproc://cordio-io-{next(_names)}"
    router = context.socket(zmq.ROUTER)
    router.bind(endpoint)
    dealer = zmq.Socket.shadow(context.socket(zmq.DEALER).underlying)
    dealer.setsockopt(zmq.IDENTITY, b"peer")
    dealer.connect(endpoint)
    yield router, dealer
    dealer.close(linger=0)
    router.close(linger=0)


async def test_reads_messages_sent_before_start_and_after(
    pair: tuple[zmq.asyncio.Socket, zmq.Socket[bytes]],
) -> None:
    router, dealer = pair
    got: list[list[bytes]] = []
    dealer.send_multipart([b"early", b"two"])
    io = SocketIO(router, got.append, batch=2)
    io.start()
    try:
        await _until(lambda: got == [[b"peer", b"early", b"two"]])
        for n in range(5):  # more than a batch: read on after other callbacks
            dealer.send(str(n).encode())
        await _until(lambda: len(got) == 6)
        assert [m[1] for m in got[1:]] == [b"0", b"1", b"2", b"3", b"4"]
    finally:
        io.close()
        io.close()


async def test_a_send_outside_a_drain_does_not_lose_the_edge(
    pair: tuple[zmq.asyncio.Socket, zmq.Socket[bytes]],
) -> None:
    """A message that arrives while the owner sends (its edge may be consumed by the
    send) is still read."""
    router, dealer = pair
    got: list[list[bytes]] = []
    io = SocketIO(router, got.append)
    io.start()
    try:
        dealer.send(b"hello")
        await _until(lambda: len(got) == 1)
        for n in range(20):
            dealer.send(str(n).encode())
            io.send([b"peer", b"reply"])  # no await between: the reader has not run
        await _until(lambda: len(got) == 21)
        assert [dealer.recv() for _ in range(20)] == [b"reply"] * 20
    finally:
        io.close()


async def test_send_errors_are_raised(
    pair: tuple[zmq.asyncio.Socket, zmq.Socket[bytes]],
) -> None:
    router, _ = pair
    router.setsockopt(zmq.ROUTER_MANDATORY, 1)
    io = SocketIO(router, lambda frames: None)
    io.start()
    try:
        with pytest.raises(zmq.ZMQError) as caught:
            io.send([b"nobody", b"x"])
        assert caught.value.errno == zmq.EHOSTUNREACH
    finally:
        io.close()


async def test_a_failing_handler_does_not_stop_reading(
    pair: tuple[zmq.asyncio.Socket, zmq.Socket[bytes]],
) -> None:
    router, dealer = pair
    got: list[bytes] = []

    def handle(frames: list[bytes]) -> None:
        if frames[1] == b"bad":
            raise RuntimeError("boom")
        got.append(frames[1])

    io = SocketIO(router, handle)
    io.start()
    try:
        dealer.send(b"bad")
        dealer.send(b"good")
        await _until(lambda: got == [b"good"])
    finally:
        io.close()


async def test_send_on_a_closed_socket_raises(
    pair: tuple[zmq.asyncio.Socket, zmq.Socket[bytes]],
) -> None:
    """Say a handler's background task sends a PARTIAL after its connection closed: an
    error, never a use of the freed libzmq socket."""
    router, _ = pair
    io = SocketIO(router, lambda frames: None)
    io.start()
    io.close()
    router.close(linger=0)
    with pytest.raises(zmq.ZMQError) as caught:
        io.send([b"peer", b"x"])
    assert caught.value.errno == zmq.ENOTSOCK


async def test_read_now_runs_a_scheduled_drain_at_once(
    pair: tuple[zmq.asyncio.Socket, zmq.Socket[bytes]],
) -> None:
    """A message that came during a send is read by ``read_now`` without a loop turn;
    with no drain scheduled it reads nothing."""
    router, dealer = pair
    got: list[list[bytes]] = []
    io = SocketIO(router, got.append)
    io.start()
    try:
        await _until(lambda: io._soon is None)  # start()'s own drain has run
        io.read_now()
        assert got == []
        dealer.send(b"hello")
        await _until(lambda: len(got) == 1)
        dealer.send(b"during")  # inproc: in the router's pipe at once, no await after it
        io.send([b"peer", b"reply"])  # sees the waiting message: schedules a drain
        assert io._soon is not None
        io.read_now()  # no await: the loop has not run
        assert got[1:] == [[b"peer", b"during"]]
        assert io._soon is None
    finally:
        io.close()
