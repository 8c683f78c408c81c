"""Real processes killed with -9: a worker in the middle of a request (the client's retry
gets the answer from another worker) and the broker under load (workers register again,
clients retry, no request waits forever); and 10,000 requests queued while no worker is up,
then served."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import zmq
from cordio.zmq.mdp import ClientOptions, Job, MDPClient, MDPWorker
from tests.eventually import eventually
from tests.zmq import rfc_peers as rfc
from tests.zmq.conftest import StartBroker, StartWorker
from tests.zmq.processes import command, environment

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]


@pytest.fixture
def spawn() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Start processes with ``spawn.append(subprocess.Popen(...))``; all are killed after."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def start(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        command(*args), env=environment(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )


async def test_a_worker_killed_mid_request(
    start_broker: StartBroker,
    spawn: list[subprocess.Popen[bytes]],
    tcp_endpoint: str,
    tmp_path: Path,
) -> None:
    # the broker would requeue only after 3 x 1 s; the client retries after 0.5 s
    broker = await start_broker(tcp_endpoint, heartbeat_interval=1.0)
    claim = tmp_path / "claim"
    workers = [start("worker", tcp_endpoint, "work", "1.0", str(claim)) for _ in range(2)]
    spawn.extend(workers)
    await eventually(lambda: len(broker.workers()) == 2, timeout=20, what="two workers")
    async with MDPClient(tcp_endpoint, ClientOptions(timeout=0.5, retries=4)) as client:
        asked = asyncio.ensure_future(client.request("work", b"claim"))
        claimed = await eventually(lambda: claim.exists() and claim.read_text(), what="claim")
        victim = next(w for w in workers if str(w.pid) == claimed)
        survivor = next(w for w in workers if w is not victim)
        os.kill(victim.pid, signal.SIGKILL)
        answer = await asyncio.wait_for(asked, 10)
        assert answer == [str(survivor.pid).encode()]
        assert client.retried >= 1
    assert victim.wait(timeout=5) == -signal.SIGKILL


async def test_the_broker_killed_and_restarted_under_load(
    start_worker: StartWorker, spawn: list[subprocess.Popen[bytes]], tcp_endpoint: str
) -> None:
    spawn.append(first := start("broker", tcp_endpoint, "0.2"))
    assert first.stdout is not None
    assert first.stdout.readline() == b"ready\n"

    async def echo(job: Job) -> list[bytes]:
        await asyncio.sleep(0.01)  # 50 requests on 2 connections take a while
        return list(job.body)

    worker: MDPWorker = await start_worker(
        tcp_endpoint, "echo", echo, heartbeat_interval=0.2, concurrency=2
    )
    options = ClientOptions(timeout=0.5, retries=20)
    async with MDPClient(tcp_endpoint, options) as client:
        assert await client.request("echo", b"before") == [b"before"]
        load = [asyncio.ensure_future(client.request("echo", b"%d" % n)) for n in range(50)]
        await eventually(lambda: sum(f.done() for f in load) >= 10)
        first.kill()  # with requests queued and in the workers' hands
        first.wait(timeout=5)
        spawn.append(second := start("broker", tcp_endpoint, "0.2"))
        done = await asyncio.wait_for(asyncio.gather(*load), 15)  # none waits forever
        assert done == [[b"%d" % n] for n in range(50)]
        assert await client.request("echo", b"after") == [b"after"]
        await eventually(lambda: worker.reconnects >= 2)  # both connections registered again
    assert second.poll() is None


async def test_ten_thousand_requests_queued_then_served(
    start_broker: StartBroker, start_worker: StartWorker, short_dir: str
) -> None:
    endpoint = f"ipc://{short_dir}/many.sock"
    count = 10_000
    broker = await start_broker(endpoint, max_queued=count, request_ttl=60)
    client = rfc.Peer(endpoint, zmq.DEALER)
    for n in range(count):
        await client.send(rfc.C02, rfc.C02_REQUEST, b"later", b"%d" % n)
    await eventually(lambda: broker.services() and broker.services()[0].queued == count)

    async def echo(job: Job) -> list[bytes]:
        return list(job.body)

    await start_worker(endpoint, "later", echo, concurrency=4, heartbeat_interval=1.0)
    seen = set()
    for _ in range(count):
        frames = await client.recv(timeout=10)
        assert frames[:3] == [rfc.C02, rfc.C02_FINAL, b"later"]
        seen.add(frames[3])
    assert seen == {b"%d" % n for n in range(count)}
    # the queue is empty (the service itself may be gone: a worker a loaded machine starved
    # of heartbeats expires, and a service with no worker and no queue is forgotten)
    assert all(service.queued == 0 for service in broker.services()), broker.services()
    assert not broker.drops
    assert not broker.failed
    client.close()
