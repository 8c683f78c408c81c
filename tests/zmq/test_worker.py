"""cordio's MDP worker: against RFC clients through cordio's broker, and against a broker
side written by hand from the RFCs (exact frames); errors, concurrency, reconnects,
heartbeat adoption and a graceful stop."""

from __future__ import annotations

import asyncio
import logging

import pytest

import zmq
from cordio.zmq.mdp import Job, MDPError, MDPWorker, Version
from tests.eventually import eventually
from tests.zmq import rfc_peers as rfc
from tests.zmq.conftest import StartBroker, StartWorker, echo

pytestmark = pytest.mark.timeout(30)


async def test_serves_rfc_clients_in_both_versions(
    start_broker: StartBroker, start_worker: StartWorker, endpoint: str
) -> None:
    await start_broker(endpoint)

    async def shout(job: Job) -> list[bytes]:
        if job.version is Version.V02:
            await job.partial(b"working")
        return [frame.upper() for frame in job.body]

    await start_worker(endpoint, "v1", shout)
    await start_worker(endpoint, "v2", shout, version=Version.V02)
    c01, c02 = rfc.Client01(endpoint), rfc.Client02(endpoint)
    assert await c01.request(b"v1", b"a", b"b") == [b"A", b"B"]
    assert await c02.request(b"v2", b"c") == ([[b"working"]], [b"C"])
    assert await c02.request(b"v1", b"d") == ([], [b"D"])
    c01.close()
    c02.close()


@pytest.mark.parametrize("version", [Version.V01, Version.V02])
async def test_exact_frames_against_a_hand_written_broker(
    start_worker: StartWorker, tcp_endpoint: str, version: Version
) -> None:
    broker = rfc.Broker(tcp_endpoint)
    worker = await start_worker(tcp_endpoint, "echo", echo, version=version, heartbeat_interval=5)
    lead = [b"", rfc.W01] if version is Version.V01 else [rfc.W02]
    ready = await broker.recv()
    identity = ready[0]
    assert ready[1:] == [*lead, b"\x01", b"echo"]
    request = b"\x02"
    reply = rfc.W01_REPLY if version is Version.V01 else rfc.W02_FINAL
    await broker.send(identity, *lead, request, b"CLIENT", b"", b"x", b"y")
    assert await broker.recv() == [identity, *lead, reply, b"CLIENT", b"", b"x", b"y"]
    await worker.stop()
    disconnect = rfc.W01_DISCONNECT if version is Version.V01 else rfc.W02_DISCONNECT
    assert await broker.recv() == [identity, *lead, disconnect]
    broker.close()


async def test_heartbeats_and_reconnects_on_a_new_socket(
    start_worker: StartWorker, tcp_endpoint: str
) -> None:
    broker = rfc.Broker(tcp_endpoint)
    worker = await start_worker(tcp_endpoint, "echo", echo, heartbeat_interval=0.05)
    first = (await broker.recv())[0]
    beat = await broker.recv()  # nothing else to send: a heartbeat within the interval
    assert beat == [first, b"", rfc.W01, rfc.W01_HEARTBEAT]
    await broker.send(first, b"", rfc.W01, rfc.W01_DISCONNECT)
    again = await broker.recv_skipping_heartbeats()
    assert again[1:] == [b"", rfc.W01, rfc.W01_READY, b"echo"]
    assert again[0] != first  # RFC 7: reconnect on a new socket
    assert worker.reconnects == 1
    broker.close()


async def test_a_silent_broker_means_a_new_connection(
    start_worker: StartWorker, tcp_endpoint: str
) -> None:
    broker = rfc.Broker(tcp_endpoint)  # reads, never answers
    worker = await start_worker(tcp_endpoint, "echo", echo, heartbeat_interval=0.05)
    identities = set()
    while len(identities) < 2:
        frames = await broker.recv()
        if frames[3:] == [rfc.W01_READY, b"echo"]:  # READY
            identities.add(frames[0])
    assert worker.reconnects >= 1
    broker.close()


async def test_handler_errors_become_error_replies(
    start_broker: StartBroker, start_worker: StartWorker, tcp_endpoint: str
) -> None:
    await start_broker(tcp_endpoint)

    async def picky(job: Job) -> bytes:
        if job.body[0] == b"boom":
            raise RuntimeError("it broke")
        if job.body[0] == b"refuse":
            raise MDPError(job.service, "not for you", 403)
        if job.body[0] == b"odd":
            return 42  # type: ignore[return-value]
        if job.body[0] == b"cancelled":
            raise asyncio.CancelledError  # not the worker's: an error reply, not a dead worker
        return b"ok"

    worker = await start_worker(tcp_endpoint, "picky", picky)
    client = rfc.Client01(tcp_endpoint)
    assert await client.request(b"picky", b"boom") == [
        b"mdp.error",
        b"500",
        b"RuntimeError: it broke",
    ]
    assert await client.request(b"picky", b"refuse") == [b"mdp.error", b"403", b"not for you"]
    assert (await client.request(b"picky", b"odd"))[:2] == [b"mdp.error", b"500"]
    cancelled = await client.request(b"picky", b"cancelled")
    assert cancelled == [b"mdp.error", b"500", b"the handler was cancelled"]
    assert await client.request(b"picky", b"fine") == [b"ok"]
    assert (worker.failed, worker.served) == (4, 1)
    client.close()


async def test_partial_on_mdp01_is_refused(
    start_broker: StartBroker, start_worker: StartWorker, tcp_endpoint: str
) -> None:
    await start_broker(tcp_endpoint)

    async def streaming(job: Job) -> bytes:
        await job.partial(b"no")
        return b"unreachable"

    await start_worker(tcp_endpoint, "s", streaming)
    client = rfc.Client01(tcp_endpoint)
    reply = await client.request(b"s", b"x")
    assert reply[:2] == [b"mdp.error", b"500"]
    assert b"PARTIAL" in reply[2]
    client.close()


async def test_concurrency_is_one_request_per_connection(
    start_broker: StartBroker, start_worker: StartWorker, tcp_endpoint: str
) -> None:
    broker = await start_broker(tcp_endpoint)
    running = 0
    most = 0
    release = asyncio.Event()
    three_running = asyncio.Event()

    async def slow(job: Job) -> list[bytes]:
        nonlocal running, most
        running += 1
        most = max(most, running)
        if running == 3:
            three_running.set()
        await release.wait()
        running -= 1
        return list(job.body)

    await start_worker(tcp_endpoint, "slow", slow, concurrency=3)
    await eventually(lambda: len(broker.workers()) == 3)
    client = rfc.Peer(tcp_endpoint, zmq.DEALER)
    for n in range(5):
        await client.send(rfc.C02, rfc.C02_REQUEST, b"slow", str(n).encode())
    await asyncio.wait_for(three_running.wait(), 5)
    assert broker.services()[0].queued == 2  # the other two wait at the broker
    release.set()
    replies = {tuple((await client.recv())[3:]) for _ in range(5)}
    assert replies == {(str(n).encode(),) for n in range(5)}
    assert most == 3
    client.close()


async def test_reregisters_after_the_broker_restarts(
    start_broker: StartBroker, start_worker: StartWorker, tcp_endpoint: str
) -> None:
    broker = await start_broker(tcp_endpoint)
    worker = await start_worker(tcp_endpoint, "echo", echo)
    client = rfc.Client02(tcp_endpoint)
    assert await client.request(b"echo", b"1") == ([], [b"1"])
    await broker.stop()
    client.close()
    broker = await start_broker(tcp_endpoint)
    await eventually(lambda: len(broker.workers()) == 1, timeout=5)
    client = rfc.Client02(tcp_endpoint)
    assert await client.request(b"echo", b"2") == ([], [b"2"])
    assert worker.reconnects >= 1
    client.close()


async def test_adopts_the_brokers_heartbeat_interval(
    start_broker: StartBroker,
    start_worker: StartWorker,
    tcp_endpoint: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The broker expires workers after 3 x 0.1 s; a worker set to 1 s would be dropped
    between its heartbeats. It measures the broker's rate and takes it instead."""
    broker = await start_broker(tcp_endpoint, heartbeat_interval=0.1)
    caplog.set_level(logging.WARNING, "cordio.zmq.mdp.worker")
    worker = await start_worker(tcp_endpoint, "echo", echo, heartbeat_interval=1.0)
    await eventually(lambda: worker.heartbeat_interval < 0.2, timeout=3)
    expired_before = broker.disconnects["expired"]
    await eventually(lambda: len(broker.workers()) == 1)
    started = broker.workers()[0].identity
    client = rfc.Client01(tcp_endpoint)
    for n in range(5):  # stays registered, on one connection, for well past the expiry
        assert await client.request(b"echo", str(n).encode()) == [str(n).encode()]
        await asyncio.sleep(0.1)
    assert [w.identity for w in broker.workers()] == [started]
    assert broker.disconnects["expired"] == expired_before
    mismatches = [r for r in caplog.records if "heartbeats every" in r.getMessage()]
    assert len(mismatches) == 1
    assert "adopting" in mismatches[0].getMessage()
    client.close()


async def test_a_mismatch_is_logged_once_when_not_adopting(
    start_worker: StartWorker, tcp_endpoint: str, caplog: pytest.LogCaptureFixture
) -> None:
    broker = rfc.Broker(tcp_endpoint)
    caplog.set_level(logging.WARNING, "cordio.zmq.mdp.worker")
    worker = await start_worker(
        tcp_endpoint, "echo", echo, heartbeat_interval=0.2, adopt_heartbeat=False
    )
    identity = (await broker.recv())[0]
    for _ in range(6):  # the broker's side heartbeats every 0.05 s
        await asyncio.sleep(0.05)
        await broker.send(identity, b"", rfc.W01, rfc.W01_HEARTBEAT)
    await eventually(lambda: any("heartbeats every" in r.getMessage() for r in caplog.records))
    assert worker.heartbeat_interval == 0.2
    assert sum("heartbeats every" in r.getMessage() for r in caplog.records) == 1
    broker.close()


async def test_a_slow_heartbeating_broker_is_waited_for(
    start_worker: StartWorker, tcp_endpoint: str
) -> None:
    """A broker heartbeating every 0.3 s, a worker whose window is 3 x 0.05 s: the first
    connection hears nothing in time; the next ones wait longer, hear it, and adopt."""
    broker = rfc.Broker(tcp_endpoint)
    worker = await start_worker(tcp_endpoint, "echo", echo, heartbeat_interval=0.05)

    latest: list[bytes] = []

    async def listen() -> None:
        while True:
            frames = await broker.recv()
            if frames[3:] == [rfc.W01_READY, b"echo"]:
                latest.append(frames[0])

    async def heartbeat() -> None:
        while True:
            await asyncio.sleep(0.3)
            if latest:
                await broker.send(latest[-1], b"", rfc.W01, rfc.W01_HEARTBEAT)

    tasks = [asyncio.ensure_future(listen()), asyncio.ensure_future(heartbeat())]
    await eventually(lambda: worker.heartbeat_interval > 0.2, timeout=8)
    reconnects = worker.reconnects
    await asyncio.sleep(1.0)  # settled: no more new connections
    assert worker.reconnects == reconnects
    for task in tasks:
        task.cancel()
    broker.close()


async def test_stop_finishes_the_running_request(
    start_broker: StartBroker, start_worker: StartWorker, tcp_endpoint: str
) -> None:
    broker = await start_broker(tcp_endpoint)
    started = asyncio.Event()

    async def slow(job: Job) -> bytes:
        started.set()
        await asyncio.sleep(0.2)
        return b"finished"

    worker = await start_worker(tcp_endpoint, "slow", slow)
    client = rfc.Client01(tcp_endpoint)
    asked = asyncio.ensure_future(client.request(b"slow", b"x"))
    await asyncio.wait_for(started.wait(), 5)
    await worker.stop()
    assert await asked == [b"finished"]
    await eventually(lambda: broker.disconnects["disconnect"] == 1)
    assert broker.workers() == []
    client.close()


def test_service_names() -> None:
    with pytest.raises(ValueError, match="mmi"):
        MDPWorker("tcp://127.0.0.1:1", "mmi.service", echo)
    with pytest.raises(ValueError, match="empty"):
        MDPWorker("tcp://127.0.0.1:1", "", echo)
    with pytest.raises(ValueError, match="endpoint"):
        MDPWorker("localhost:1", "echo", echo)


async def test_stop_cancels_a_request_still_running_after_stop_grace(
    start_broker: StartBroker, start_worker: StartWorker, tcp_endpoint: str
) -> None:
    broker = await start_broker(tcp_endpoint)
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def stuck(job: Job) -> bytes:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return b"never"

    worker = await start_worker(tcp_endpoint, "stuck", stuck, stop_grace=0.2)
    client = rfc.Client01(tcp_endpoint)
    asked = asyncio.ensure_future(client.request(b"stuck", b"x"))
    await asyncio.wait_for(started.wait(), 5)
    await asyncio.wait_for(worker.stop(), 3)
    assert cancelled.is_set()
    await eventually(lambda: broker.disconnects["disconnect"] == 1)
    asked.cancel()
    client.close()


async def test_disconnect_while_busy_cancels_the_handler_and_reconnects(
    start_worker: StartWorker, tcp_endpoint: str
) -> None:
    broker = rfc.Broker(tcp_endpoint)
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def stuck(job: Job) -> bytes:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return b"never"

    worker = await start_worker(tcp_endpoint, "stuck", stuck)
    first = (await broker.recv())[0]
    await broker.send(first, b"", rfc.W01, rfc.W01_REQUEST, b"client", b"", b"x")
    await asyncio.wait_for(started.wait(), 5)
    await broker.send(first, b"", rfc.W01, rfc.W01_DISCONNECT)
    await asyncio.wait_for(cancelled.wait(), 5)
    second = (await broker.recv_skipping_heartbeats())[0]  # READY on a new socket
    assert second != first
    assert worker.reconnects == 1
    broker.close()
