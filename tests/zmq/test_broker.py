"""The broker against clients and workers written from the RFCs (tests/zmq/rfc_peers.py):
round trips in both versions on every transport, MMI, malformed input, expiry, requeues,
queue bounds and the ROUTER_MANDATORY send outcomes."""

from __future__ import annotations

import asyncio

import pytest
import zmq.asyncio

from tests.eventually import eventually
from tests.zmq import rfc_peers as rfc
from tests.zmq.conftest import StartBroker

pytestmark = pytest.mark.timeout(30)


async def test_round_trip_mdp01(start_broker: StartBroker, endpoint: str) -> None:
    broker = await start_broker(endpoint)
    client = rfc.Client01(endpoint)
    worker = rfc.Worker(endpoint, b"echo", "0.1")
    async with rfc.serving(worker, heartbeat=0.1):
        assert await client.request(b"echo", b"hello", b"world") == [b"hello", b"world"]
        assert await client.request(b"echo", b"again") == [b"again"]
    client.close()
    assert broker.replies == 2
    assert not broker.drops


async def test_a_worker_is_listed_with_the_address_it_connected_from(
    start_broker: StartBroker, endpoint: str
) -> None:
    """``workers()`` names each worker's host: its IP address over tcp, the local process
    over ipc, none over inproc (no address)."""
    broker = await start_broker(endpoint)
    worker = rfc.Worker(endpoint, b"echo", "0.1")
    async with rfc.serving(worker, heartbeat=0.1):
        await eventually(lambda: len(broker.workers()) == 1)
        (listed,) = broker.workers()
        assert listed.service == "echo"
        if endpoint.startswith("tcp://"):
            assert listed.host == "127.0.0.1"
        elif endpoint.startswith("ipc://"):
            assert listed.host is not None
            assert listed.host.startswith("localhost:")
        else:
            assert listed.host is None
        assert not listed.busy


async def test_round_trip_mdp02_with_partials(start_broker: StartBroker, endpoint: str) -> None:
    broker = await start_broker(endpoint)
    client = rfc.Client02(endpoint)
    worker = rfc.Worker(endpoint, b"stream", "0.2")
    await worker.ready()
    await client.send(rfc.C02, rfc.C02_REQUEST, b"stream", b"count")
    address, body = await worker.next_request()
    assert body == [b"count"]
    for part in (b"1", b"2"):
        await worker.reply(address, part, partial=True)
    await worker.reply(address, b"done")
    frames = [await client.recv() for _ in range(3)]
    assert frames == [
        [rfc.C02, rfc.C02_PARTIAL, b"stream", b"1"],
        [rfc.C02, rfc.C02_PARTIAL, b"stream", b"2"],
        [rfc.C02, rfc.C02_FINAL, b"stream", b"done"],
    ]
    client.close()
    worker.close()
    assert broker.replies == 1


async def test_versions_mix(start_broker: StartBroker, tcp_endpoint: str) -> None:
    """An MDP/0.1 client of an MDP/0.2 worker gets the FINAL as its REPLY (PARTIALs are
    dropped and counted); an MDP/0.2 client of an MDP/0.1 worker gets the REPLY as FINAL."""
    broker = await start_broker(tcp_endpoint)
    w02 = rfc.Worker(tcp_endpoint, b"new", "0.2")
    w01 = rfc.Worker(tcp_endpoint, b"old", "0.1")
    await w02.ready()
    await w01.ready()
    c01, c02 = rfc.Client01(tcp_endpoint), rfc.Client02(tcp_endpoint)

    asked = asyncio.ensure_future(c01.request(b"new", b"q"))
    address, _ = await w02.next_request()
    await w02.reply(address, b"progress", partial=True)
    await w02.reply(address, b"answer")
    assert await asked == [b"answer"]
    assert broker.drops["partial_to_v01_client"] == 1

    asked2 = asyncio.ensure_future(c02.request(b"old", b"q"))
    address, _ = await w01.next_request()
    await w01.reply(address, b"answer")
    assert await asked2 == ([], [b"answer"])
    for peer in (w01, w02, c01, c02):
        peer.close()


MALFORMED = [
    ([b""], "too_few_frames"),
    ([b"", b"MDPC01", b"echo"], "too_few_frames"),
    ([b"", b"MDPW01", b"\x04", b"extra"], "too_many_frames"),
    ([b"HELLO", b"MDP"], "unknown_header"),
    ([b"", b"MDPX01", b"echo", b"x"], "unknown_header"),
    ([b"", b"MDPW01", b"\x07"], "unknown_command"),
    ([b"MDPW02", b"\x09"], "unknown_command"),
    ([b"MDPC02", b"\x07", b"echo", b"x"], "unknown_command"),
    ([b"MDPC02", b"\x03", b"echo", b"x"], "unexpected_command"),
    ([b"junk", b"MDPC01", b"echo", b"x"], "nonempty_delimiter"),
    ([b"MDPW02", b"\x04", b"client", b"junk", b"x"], "nonempty_delimiter"),
    ([b"", b"MDPC01", b"", b"x"], "empty_service"),
    ([b"MDPW02", b"\x03", b"", b"", b"x"], "empty_address"),
]


async def test_malformed_messages_are_dropped_and_counted(
    start_broker: StartBroker, endpoint: str
) -> None:
    broker = await start_broker(endpoint)
    client = rfc.Client01(endpoint)
    worker = rfc.Worker(endpoint, b"echo", "0.1")
    hostile = rfc.Peer(endpoint, zmq.DEALER)
    async with rfc.serving(worker, heartbeat=0.1):
        for frames, reason in MALFORMED:
            before = broker.drops[reason]
            await hostile.send(*frames)
            await eventually(lambda r=reason, b=before: broker.drops[r] == b + 1, what=reason)
            assert await client.request(b"echo", b"still there") == [b"still there"]
        assert await hostile.silent(0.05)  # nothing is sent back to a malformed peer
    assert sum(broker.drops.values()) == len(MALFORMED)
    hostile.close()
    client.close()


async def test_a_registered_worker_that_sends_garbage_is_removed(
    start_broker: StartBroker, tcp_endpoint: str
) -> None:
    broker = await start_broker(tcp_endpoint)
    worker = rfc.Worker(tcp_endpoint, b"echo", "0.1")
    await worker.ready()
    await eventually(lambda: len(broker.workers()) == 1)
    await worker.send(b"", b"MDPW01", b"\x04", b"extra")
    name, _ = await worker.next_command()
    assert name == "DISCONNECT"
    assert broker.disconnects["malformed"] == 1
    assert broker.workers() == []
    worker.close()


async def test_reply_from_an_unknown_worker(start_broker: StartBroker, tcp_endpoint: str) -> None:
    broker = await start_broker(tcp_endpoint)
    stranger = rfc.Worker(tcp_endpoint, b"echo", "0.2")
    await stranger.reply(b"somebody", b"unasked")
    name, _ = await stranger.next_command()
    assert name == "DISCONNECT"
    assert broker.drops["reply_from_unknown_worker"] == 1
    assert broker.disconnects["unknown_worker"] == 1
    assert broker.services() == []
    stranger.close()


@pytest.mark.parametrize("version", ["0.1", "0.2"])
async def test_unexpected_commands_get_disconnect(
    start_broker: StartBroker, tcp_endpoint: str, version: str
) -> None:
    broker = await start_broker(tcp_endpoint)
    # a second READY
    worker = rfc.Worker(tcp_endpoint, b"echo", version)
    await worker.ready()
    await worker.ready()
    assert (await worker.next_command())[0] == "DISCONNECT"
    worker.close()
    # a REQUEST from a worker
    worker = rfc.Worker(tcp_endpoint, b"echo", version)
    await worker.ready()
    await worker.command("REQUEST", b"client", b"", b"x")
    assert (await worker.next_command())[0] == "DISCONNECT"
    worker.close()
    # a reply when it holds no request
    worker = rfc.Worker(tcp_endpoint, b"echo", version)
    await worker.ready()
    await worker.reply(b"client", b"x")
    assert (await worker.next_command())[0] == "DISCONNECT"
    worker.close()
    # HEARTBEAT before READY
    worker = rfc.Worker(tcp_endpoint, b"echo", version)
    await worker.heartbeat()
    assert (await worker.next_command())[0] == "DISCONNECT"
    worker.close()
    assert broker.disconnects["unexpected_command"] == 3
    assert broker.disconnects["unknown_worker"] == 1
    assert broker.drops["unexpected_reply"] == 1
    await eventually(lambda: broker.workers() == [] and broker.services() == [])


async def test_mmi(start_broker: StartBroker, endpoint: str) -> None:
    broker = await start_broker(endpoint)
    client = rfc.Client01(endpoint)
    assert await client.request(b"mmi.service", b"echo") == [b"404"]
    worker = rfc.Worker(endpoint, b"echo", "0.1")
    async with rfc.serving(worker, heartbeat=0.1):
        await eventually(lambda: len(broker.workers()) == 1)
        assert await client.request(b"mmi.service", b"echo") == [b"200"]
        assert await client.request(b"mmi.service", b"other") == [b"404"]
        assert await client.request(b"mmi.echo", b"x") == [b"501"]
    await worker_gone(broker)
    assert await client.request(b"mmi.service", b"echo") == [b"404"]
    c02 = rfc.Client02(endpoint)
    assert await c02.request(b"mmi.nothing", b"x") == ([], [b"501"])
    # a worker may not register in the mmi. namespace
    intruder = rfc.Worker(endpoint, b"mmi.service", "0.2")
    await intruder.ready()
    assert (await intruder.next_command())[0] == "DISCONNECT"
    assert broker.disconnects["mmi_namespace"] == 1
    assert await client.request(b"mmi.service", b"mmi.service") == [b"404"]
    for peer in (client, c02, intruder):
        peer.close()


async def worker_gone(broker: object) -> None:
    await eventually(lambda: broker.workers() == [], timeout=5)  # type: ignore[attr-defined]


async def test_every_expired_worker_is_purged(start_broker: StartBroker, tcp_endpoint: str) -> None:
    """The zguide broker stops purging at the first live worker in its waiting list; here the
    live one registered first, then three that go silent (one of them busy)."""
    broker = await start_broker(tcp_endpoint)
    live = rfc.Worker(tcp_endpoint, b"echo", "0.1")
    async with rfc.serving(live, heartbeat=0.05):
        await eventually(lambda: len(broker.workers()) == 1)
        silent = [rfc.Worker(tcp_endpoint, name, "0.1") for name in (b"echo", b"a", b"b")]
        for worker in silent:
            await worker.ready()
        await eventually(lambda: len(broker.workers()) == 4)
        # make one silent worker busy: the live one is idle longest, so it gets the first
        # request and the silent echo worker the second (sent while the first is held)
        client_a = rfc.Client02(tcp_endpoint)
        await client_a.send(rfc.C02, rfc.C02_REQUEST, b"a", b"held")
        await silent[1].next_request()
        await eventually(lambda: broker.drops == {} and len(broker.workers()) == 1, timeout=3)
        assert broker.disconnects["expired"] == 3
        assert {s.name: (s.workers, s.queued) for s in broker.services()} == {
            "echo": (1, 0),
            "a": (0, 1),  # the held request went back to its queue, once
        }
        assert broker.requeued == 1
        client = rfc.Client01(tcp_endpoint)
        assert await client.request(b"mmi.service", b"b") == [b"404"]
        assert await client.request(b"echo", b"x") == [b"x"]
        client.close()
        client_a.close()
    for worker in silent:
        worker.close()


async def test_disconnect_from_a_busy_worker(start_broker: StartBroker, tcp_endpoint: str) -> None:
    broker = await start_broker(tcp_endpoint)
    first = rfc.Worker(tcp_endpoint, b"echo", "0.2")
    await first.ready()
    await eventually(lambda: len(broker.workers()) == 1)
    client = rfc.Client02(tcp_endpoint)
    asked = asyncio.ensure_future(client.request(b"echo", b"job"))
    await first.next_request()
    await first.disconnect()  # busy, and leaving
    await eventually(lambda: broker.disconnects["disconnect"] == 1)
    second = rfc.Worker(tcp_endpoint, b"echo", "0.2")
    async with rfc.serving(second, heartbeat=0.1):
        assert await asked == ([], [b"job"])
    assert broker.requeued == 1
    first.close()
    client.close()


async def test_a_request_lost_twice_fails_fast(
    start_broker: StartBroker, tcp_endpoint: str
) -> None:
    broker = await start_broker(tcp_endpoint)
    client = rfc.Client01(tcp_endpoint)
    asked = asyncio.ensure_future(client.request(b"echo", b"job"))
    for _ in range(2):
        worker = rfc.Worker(tcp_endpoint, b"echo", "0.1")
        await worker.ready()
        await worker.next_request()
        await worker.disconnect()
        worker.close()
    reply = await asked
    assert reply[:2] == [b"mdp.error", b"502"], reply
    assert broker.failed["worker_lost"] == 1
    await eventually(lambda: broker.services() == [])
    client.close()


async def test_longest_idle_worker_first(start_broker: StartBroker, tcp_endpoint: str) -> None:
    broker = await start_broker(tcp_endpoint, heartbeat_interval=5)  # no heartbeats here
    a, b = rfc.Worker(tcp_endpoint, b"echo", "0.1"), rfc.Worker(tcp_endpoint, b"echo", "0.1")
    await a.ready()
    await eventually(lambda: len(broker.workers()) == 1)
    await b.ready()
    await eventually(lambda: len(broker.workers()) == 2)
    client = rfc.Peer(tcp_endpoint, zmq.DEALER)
    order = []
    for n in range(4):
        await client.send(b"", rfc.C01, b"echo", str(n).encode())
        waits = {
            asyncio.ensure_future(w.next_request()): (name, w) for name, w in (("a", a), ("b", b))
        }
        done, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        (first,) = done
        name, worker = waits[first]
        order.append(name)
        await worker.reply(*first.result()[:1], *first.result()[1])
        await client.recv()
    assert order == ["a", "b", "a", "b"]
    for peer in (a, b, client):
        peer.close()


async def test_queue_bound_and_ttl(start_broker: StartBroker, tcp_endpoint: str) -> None:
    broker = await start_broker(tcp_endpoint, max_queued=3, request_ttl=0.3)
    client = rfc.Peer(tcp_endpoint, zmq.DEALER)
    for n in range(5):
        await client.send(rfc.C02, rfc.C02_REQUEST, b"nobody", str(n).encode())
    for _ in range(2):  # at once: over the bound
        reply = await client.recv(timeout=0.25)
        assert reply[:4] == [rfc.C02, rfc.C02_FINAL, b"nobody", b"mdp.error"]
        assert reply[4] == b"503", reply
    assert broker.services()[0].queued == 3
    for _ in range(3):  # after the TTL
        reply = await client.recv(timeout=2)
        assert reply[4] == b"504", reply
    assert broker.failed == {"queue_full": 2, "expired": 3}
    assert broker.services() == []  # nothing stale
    client.close()


async def test_heartbeats_to_quiet_workers(start_broker: StartBroker, tcp_endpoint: str) -> None:
    await start_broker(tcp_endpoint, heartbeat_interval=0.1)
    worker = rfc.Worker(tcp_endpoint, b"echo", "0.2")
    await worker.ready()
    loop = asyncio.get_running_loop()
    start = loop.time()
    beats = []
    for _ in range(3):
        name, _ = await worker.next_command(timeout=1)
        assert name == "HEARTBEAT"
        beats.append(loop.time() - start)
        await worker.heartbeat()
    gaps = [later - earlier for earlier, later in zip([0.0, *beats], beats, strict=False)]
    assert all(0.08 <= gap < 0.3 for gap in gaps), gaps
    worker.close()


async def test_reply_to_a_client_that_left_is_counted(
    start_broker: StartBroker, tcp_endpoint: str
) -> None:
    broker = await start_broker(tcp_endpoint)
    worker = rfc.Worker(tcp_endpoint, b"echo", "0.1")
    await worker.ready()
    client = rfc.Peer(tcp_endpoint, zmq.DEALER)
    await client.send(b"", rfc.C01, b"echo", b"x")
    address, body = await worker.next_request()
    client.close()
    # libzmq drops a closed peer's pipe in its I/O thread, and says nothing: give it time
    await asyncio.sleep(0.2)
    await worker.reply(address, *body)
    await eventually(lambda: broker.drops["client_unreachable"] == 1)
    # the worker is idle again and serves the next client
    other = rfc.Client01(tcp_endpoint)
    asked = asyncio.ensure_future(other.request(b"echo", b"y"))
    address, body = await worker.next_request()
    await worker.reply(address, *body)
    assert await asked == [b"y"]
    other.close()
    worker.close()


async def test_backpressure_then_drop(start_broker: StartBroker, short_dir: str) -> None:
    """A client that does not read: its replies wait at the high-water mark, then the broker
    drops them (counted) after send_timeout and keeps serving others."""
    endpoint = f"inproc://mdp-backpressure-{id(short_dir)}"
    broker = await start_broker(endpoint, send_hwm=1, send_timeout=0.2)
    worker = rfc.Worker(endpoint, b"echo", "0.1")
    slow = rfc.Peer(endpoint, zmq.DEALER, receive_hwm=1)
    async with rfc.serving(worker, heartbeat=0.05):
        for n in range(20):
            await slow.send(b"", rfc.C01, b"echo", str(n).encode())
        await eventually(lambda: broker.drops["backpressure"] > 0, timeout=5)
        other = rfc.Client01(endpoint)
        assert await other.request(b"echo", b"fine") == [b"fine"]
        other.close()
    received = 0
    while not await slow.silent(0.05):
        await slow.recv()
        received += 1
    assert received + broker.drops["backpressure"] == 20
    slow.close()


async def test_oversized_messages(start_broker: StartBroker, tcp_endpoint: str) -> None:
    broker = await start_broker(tcp_endpoint, max_message_size=1000)
    worker = rfc.Worker(tcp_endpoint, b"echo", "0.1")
    async with rfc.serving(worker, heartbeat=0.1):
        greedy = rfc.Peer(tcp_endpoint, zmq.DEALER)
        await greedy.send(b"", rfc.C01, b"echo", b"x" * 600, b"y" * 600)  # together too big
        await eventually(lambda: broker.drops["too_large"] == 1)
        await greedy.send(b"", rfc.C01, b"echo", b"x" * 5000)  # one frame: libzmq hangs up
        client = rfc.Client01(tcp_endpoint)
        assert await client.request(b"echo", b"small") == [b"small"]
        assert await greedy.silent(0.2)
        client.close()
        greedy.close()


async def test_stop_disconnects_workers(start_broker: StartBroker, tcp_endpoint: str) -> None:
    broker = await start_broker(tcp_endpoint)
    worker = rfc.Worker(tcp_endpoint, b"echo", "0.1")
    await worker.ready()
    await eventually(lambda: len(broker.workers()) == 1)
    await broker.stop()
    assert (await worker.next_command())[0] == "DISCONNECT"
    assert broker.disconnects["stopping"] == 1
    await broker.stop()  # twice is fine
    worker.close()
