"""cordio's MDP client: exact frames against a broker side written from the RFCs, round
trips with RFC workers, Paranoid Pirate retries, error replies, MMI and many concurrent
requests over one client."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence

import pytest

from cordio.zmq.mdp import ClientOptions, Job, MDPClient, MDPError, RequestTimeout, Version
from cordio.zmq.mdp._io import SocketIO
from cordio.zmq.mdp._zmq import zmq
from tests.eventually import eventually
from tests.zmq import rfc_peers as rfc
from tests.zmq.conftest import StartBroker, StartWorker

pytestmark = pytest.mark.timeout(30)


@pytest.mark.parametrize("version", [Version.V01, Version.V02])
async def test_exact_frames_against_a_hand_written_broker(
    tcp_endpoint: str, version: Version
) -> None:
    broker = rfc.Broker(tcp_endpoint)
    async with MDPClient(tcp_endpoint, ClientOptions(version=version)) as client:
        asked = asyncio.ensure_future(client.request("echo", b"a", b"b"))
        frames = await broker.recv()
        identity = frames[0]
        if version is Version.V01:
            assert frames[1:] == [b"", rfc.C01, b"echo", b"a", b"b"]
            await broker.send(identity, b"", rfc.C01, b"echo", b"reply")
        else:
            assert frames[1:] == [rfc.C02, rfc.C02_REQUEST, b"echo", b"a", b"b"]
            await broker.send(identity, rfc.C02, rfc.C02_PARTIAL, b"echo", b"part")
            await broker.send(identity, rfc.C02, rfc.C02_FINAL, b"echo", b"reply")
        assert await asked == [b"reply"]
    broker.close()


async def test_round_trips_with_rfc_workers(start_broker: StartBroker, endpoint: str) -> None:
    await start_broker(endpoint)
    w01, w02 = rfc.Worker(endpoint, b"old", "0.1"), rfc.Worker(endpoint, b"new", "0.2")
    partials: list[list[bytes]] = []
    async with rfc.serving(w01, 0.1), MDPClient(endpoint) as c01:
        assert await c01.request("old", b"x", b"y") == [b"x", b"y"]
    await w02.ready()
    async with MDPClient(endpoint, ClientOptions(version=Version.V02)) as c02:
        asked = asyncio.ensure_future(c02.request("new", b"q", on_partial=partials.append))
        address, _ = await w02.next_request()
        await w02.reply(address, b"1", partial=True)
        await w02.reply(address, b"2", partial=True)
        await w02.reply(address, b"done")
        assert await asked == [b"done"]
    assert partials == [[b"1"], [b"2"]]
    w02.close()


async def test_retry_on_a_new_socket_after_a_timeout(tcp_endpoint: str) -> None:
    """Paranoid Pirate: the first attempt gets no answer; the resend comes from a new
    socket (a new identity) and its answer is the result."""
    broker = rfc.Broker(tcp_endpoint)
    options = ClientOptions(timeout=0.2, retries=2)
    async with MDPClient(tcp_endpoint, options) as client:
        asked = asyncio.ensure_future(client.request("echo", b"x"))
        first = await broker.recv()
        second = await broker.recv(timeout=2)
        assert first[1:] == second[1:]
        assert first[0] != second[0]
        await broker.send(first[0], b"", rfc.C01, b"echo", b"too late")  # its socket is gone
        await broker.send(second[0], b"", rfc.C01, b"echo", b"answer")
        assert await asked == [b"answer"]
        assert (client.sent, client.retried) == (2, 1)
    broker.close()


async def test_request_timeout_names_service_and_cause(tcp_endpoint: str) -> None:
    broker = rfc.Broker(tcp_endpoint)  # never answers
    async with MDPClient(tcp_endpoint, ClientOptions(timeout=0.05, retries=2)) as client:
        with pytest.raises(RequestTimeout) as caught:
            await client.request("pricing", b"x")
    error = caught.value
    assert isinstance(error, TimeoutError)
    assert isinstance(error, MDPError)
    assert (error.service, error.attempts, error.timeout) == ("pricing", 3, 0.05)
    assert "'pricing'" in str(error)
    assert "3 attempts" in str(error)
    broker.close()


async def test_error_replies_raise(start_broker: StartBroker, tcp_endpoint: str) -> None:
    broker = await start_broker(tcp_endpoint, max_queued=1, request_ttl=0.2)
    async with MDPClient(tcp_endpoint, ClientOptions(timeout=2, retries=0)) as client:
        waiting = asyncio.ensure_future(client.request("nobody", b"1"))
        await eventually(lambda: broker.services() != [])  # queued first
        with pytest.raises(MDPError) as full:
            await client.request("nobody", b"2")
        assert full.value.status == 503
        assert full.value.service == "nobody"
        with pytest.raises(MDPError) as expired:
            await waiting
        assert expired.value.status == 504
        assert "request_ttl" in expired.value.message


async def test_service_available(
    start_broker: StartBroker, start_worker: StartWorker, tcp_endpoint: str
) -> None:
    broker = await start_broker(tcp_endpoint)
    async with MDPClient(tcp_endpoint) as client:
        assert not await client.service_available("echo")
        await start_worker(tcp_endpoint, "echo", _echo)
        await eventually(lambda: len(broker.workers()) == 1)
        assert await client.service_available("echo")
        assert await client.request("mmi.unknown", b"x") == [b"501"]


async def test_service_available_needs_mmi(tcp_endpoint: str) -> None:
    broker = rfc.Broker(tcp_endpoint)  # a broker without MMI answers 501
    async with MDPClient(tcp_endpoint) as client:
        asked = asyncio.ensure_future(client.service_available("echo"))
        frames = await broker.recv()
        assert frames[1:] == [b"", rfc.C01, b"mmi.service", b"echo"]
        await broker.send(frames[0], b"", rfc.C01, b"mmi.service", b"501")
        with pytest.raises(MDPError, match="501"):
            await asked
    broker.close()


async def _echo(job: Job) -> list[bytes]:
    return list(job.body)


async def test_many_concurrent_requests_over_one_client(
    start_broker: StartBroker, start_worker: StartWorker, endpoint: str
) -> None:
    await start_broker(endpoint)

    async def jittery(job: Job) -> list[bytes]:
        await asyncio.sleep(random.uniform(0, 0.005))  # replies come back out of order
        return [b"re:" + job.body[0]]

    await start_worker(endpoint, "echo", jittery, concurrency=8)
    async with MDPClient(endpoint, ClientOptions(max_sockets=32)) as client:
        bodies = [str(n).encode() for n in range(400)]
        replies = await asyncio.gather(*(client.request("echo", body) for body in bodies))
        assert replies == [[b"re:" + body] for body in bodies]
        assert client.retried == 0


async def test_a_cancelled_request_does_not_leak_its_reply(
    start_broker: StartBroker, start_worker: StartWorker, tcp_endpoint: str
) -> None:
    await start_broker(tcp_endpoint)
    gate, started = asyncio.Event(), asyncio.Event()

    async def gated(job: Job) -> list[bytes]:
        if job.body[0] == b"slow":
            started.set()
            await gate.wait()
        return list(job.body)

    await start_worker(tcp_endpoint, "svc", gated, concurrency=2)
    async with MDPClient(tcp_endpoint, ClientOptions(max_sockets=1)) as client:
        slow = asyncio.ensure_future(client.request("svc", b"slow"))
        await asyncio.wait_for(started.wait(), 5)
        slow.cancel()
        gate.set()
        # the only socket was discarded with the cancelled request: the late "slow" reply
        # cannot be taken for this one
        assert await client.request("svc", b"fast") == [b"fast"]


async def test_replies_for_another_service_are_dropped(tcp_endpoint: str) -> None:
    broker = rfc.Broker(tcp_endpoint)
    async with MDPClient(tcp_endpoint) as client:
        asked = asyncio.ensure_future(client.request("echo", b"x"))
        identity = (await broker.recv())[0]
        await broker.send(identity, b"", rfc.C01, b"other", b"wrong")
        await broker.send(identity, b"", b"MDPX01", b"echo", b"garbage")
        await broker.send(identity, b"", rfc.C01, b"echo", b"right")
        assert await asked == [b"right"]
        assert client.dropped == {"wrong_service": 1, "unknown_header": 1}
    broker.close()


async def test_arguments_and_closing(tcp_endpoint: str) -> None:
    client = MDPClient(tcp_endpoint)
    with pytest.raises(ValueError, match="at least one frame"):
        await client.request("echo")
    with pytest.raises(TypeError):
        await client.request("echo", "text")  # type: ignore[arg-type]
    client.close()
    with pytest.raises(MDPError, match="closed"):
        await client.request("echo", b"x")


async def test_a_hundred_concurrent_requests_over_one_client(
    start_broker: StartBroker, start_worker: StartWorker, endpoint: str
) -> None:
    """One socket per request in flight: 100 at once open 100 sockets, each a client of
    its own to the broker, all given back to the pool afterwards."""
    await start_broker(endpoint)
    await start_worker(endpoint, "echo", _echo, concurrency=4)
    async with MDPClient(endpoint, ClientOptions(max_sockets=100)) as client:
        bodies = [str(n).encode() for n in range(100)]
        replies = await asyncio.gather(*(client.request("echo", body) for body in bodies))
        assert replies == [[body] for body in bodies]
        assert (client.sent, client.retried, client.dropped) == (100, 0, {})
        assert not client._busy
        assert len(client._idle) == 100
        again = await asyncio.gather(*(client.request("echo", body) for body in bodies))
        assert again == replies
        assert len(client._idle) == 100  # reused, none opened


async def test_cancelled_requests_close_their_sockets(
    start_broker: StartBroker, start_worker: StartWorker, tcp_endpoint: str
) -> None:
    """Requests cancelled mid-request discard their sockets (closed, out of the pool):
    none leaks, and the client serves on."""
    await start_broker(tcp_endpoint)
    gate = asyncio.Event()
    started = 0

    async def gated(job: Job) -> list[bytes]:
        nonlocal started
        if job.body[0] == b"slow":
            started += 1
            await gate.wait()
        return list(job.body)

    await start_worker(tcp_endpoint, "svc", gated, concurrency=4)
    async with MDPClient(tcp_endpoint, ClientOptions(max_sockets=8)) as client:
        slow = [asyncio.ensure_future(client.request("svc", b"slow")) for _ in range(8)]
        await eventually(lambda: started == 4)
        links = list(client._busy)
        assert len(links) == 8
        for request in slow:
            request.cancel()
        await asyncio.gather(*slow, return_exceptions=True)
        assert not client._busy
        assert not client._idle
        assert all(link.sock.closed for link in links)
        gate.set()
        assert await client.request("svc", b"fast") == [b"fast"]
        assert len(client._idle) == 1
        assert client.dropped == {}


async def test_a_reply_with_no_request_in_flight_is_dropped(tcp_endpoint: str) -> None:
    """A reply that comes to an idle socket is counted and dropped, not taken for the next
    request sent on that socket."""
    broker = rfc.Broker(tcp_endpoint)
    async with MDPClient(tcp_endpoint) as client:
        asked = asyncio.ensure_future(client.request("echo", b"1"))
        identity = (await broker.recv())[0]
        await broker.send(identity, b"", rfc.C01, b"echo", b"one")
        assert await asked == [b"one"]
        await broker.send(identity, b"", rfc.C01, b"echo", b"stale")
        await eventually(lambda: client.dropped == {"no_request": 1})
        asked = asyncio.ensure_future(client.request("echo", b"2"))
        frames = await broker.recv()
        assert frames[0] == identity  # the same pooled socket
        await broker.send(identity, b"", rfc.C01, b"echo", b"two")
        assert await asked == [b"two"]
    broker.close()


async def test_a_full_pipe_is_waited_for_within_the_attempt(
    tcp_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A send at the high-water mark (``zmq.Again``) is tried again, not dropped; a pipe
    still full at the attempt's timeout counts as a timed-out attempt."""
    broker = rfc.Broker(tcp_endpoint)
    full = 3
    real_send = SocketIO.send

    def send(io: SocketIO, frames: Sequence[bytes]) -> None:
        nonlocal full
        if io.name == "MDP client" and full > 0:
            full -= 1
            raise zmq.Again
        real_send(io, frames)

    monkeypatch.setattr(SocketIO, "send", send)
    async with MDPClient(tcp_endpoint, ClientOptions(timeout=0.5, retries=0)) as client:
        asked = asyncio.ensure_future(client.request("echo", b"x"))
        frames = await broker.recv()
        assert frames[1:] == [b"", rfc.C01, b"echo", b"x"]
        await broker.send(frames[0], b"", rfc.C01, b"echo", b"y")
        assert await asked == [b"y"]
        assert (full, client.sent) == (0, 1)

        full = 10**6
        with pytest.raises(RequestTimeout) as caught:
            await client.request("echo", b"x", timeout=0.05, retries=1)
        assert caught.value.attempts == 2
        assert (client.sent, client.retried) == (1, 1)
        assert not client._busy
    broker.close()


async def test_close_fails_the_requests_in_flight(tcp_endpoint: str) -> None:
    broker = rfc.Broker(tcp_endpoint)  # never answers
    client = MDPClient(tcp_endpoint, ClientOptions(timeout=5))
    asked = asyncio.ensure_future(client.request("echo", b"x"))
    await broker.recv()
    client.close()
    with pytest.raises(MDPError, match="closed") as caught:
        await asked
    assert caught.value.service == "echo"
    client.close()
    broker.close()
