"""Delivery with real processes on the real brokers: kill -9, broker restarts, SIGTERM during
an outage, competing replicas, publishing while the broker is down, slow handlers, JetStream
de-duplication, a poison message among good ones.

Consumers run as ``cordio run tests.messaging.worker_app:app`` processes, which append
each handled message id to a file before the ack; the files are the ground truth.
"""

from __future__ import annotations

import asyncio
import collections
import secrets
import signal
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from cordio.messaging import Message
from cordio.messaging.connection import PublishError
from cordio.messaging.message import DEATH_REASON
from cordio.messaging.settings import BrokerSettings
from tests.conftest import free_port, need_server
from tests.eventually import eventually
from tests.examples.service_process import ServiceProcess
from tests.messaging.servers import outage

URLS = {"amqp": "amqp://guest:guest@127.0.0.1:5672/", "nats": "nats://127.0.0.1:4222"}
PORTS = {"amqp": 5672, "nats": 4222}


def make_broker(kind: str, **settings: Any) -> Any:
    cfg = BrokerSettings(url=URLS[kind], **settings)
    if kind == "amqp":
        from cordio.messaging.amqp import AmqpBroker

        return AmqpBroker(cfg.url, settings=cfg)
    from cordio.messaging.nats import NatsBroker

    return NatsBroker(cfg.url, settings=cfg)


async def delete_source(kind: str, source: str) -> None:
    if kind == "amqp":
        import aio_pika

        connection = await aio_pika.connect(URLS[kind])
        async with connection:
            channel = await connection.channel()
            for suffix in ("", ".dead-letter", ".retry"):
                await channel.queue_delete(source + suffix)
    else:
        import nats

        nc = await nats.connect(URLS[kind])
        for suffix in ("", ".dead-letter"):
            try:
                await nc.jetstream().delete_stream("CORDIO_" + (source + suffix).replace(".", "_"))
            except Exception:
                pass
        await nc.close()


@pytest.fixture(params=["amqp", "nats"])
def kind(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    need_server({"amqp": "RabbitMQ", "nats": "NATS"}[name], "127.0.0.1", PORTS[name])
    return name


@pytest.fixture
async def source(kind: str) -> AsyncIterator[str]:
    name = "cordio.proc." + secrets.token_hex(4)
    yield name
    await delete_source(kind, name)


async def publish_ids(kind: str, source: str, ids: list[str], window: int = 200) -> None:
    broker = make_broker(kind, publish_timeout=60)
    await broker.connect()
    try:
        for start in range(0, len(ids), window):
            await asyncio.gather(
                *(
                    broker.publish(source, Message(b"{}", message_id=i), declare=True)
                    for i in ids[start : start + window]
                )
            )
    finally:
        await broker.close()


class Workers:
    """Worker processes writing handled ids under ``tmp``."""

    def __init__(self, kind: str, source: str, tmp: Path, **env: str) -> None:
        self.kind, self.source, self.tmp = kind, source, tmp
        self.env = env
        self.count = 0
        self.running: list[ServiceProcess] = []

    def start(self) -> ServiceProcess:
        self.count += 1
        port = free_port()
        env = {
            "WORKER__BROKER__URL": URLS[self.kind],
            "WORKER__BROKER__ACK_WAIT": "2",  # a killed worker's messages come back soon
            "WORKER__HTTP__PORT": str(port),
            "WORKER__ADMIN__PORT": str(port),  # no HTTP routes: only the admin server
            "WORKER__SHUTDOWN__GRACE": "3",
            "WORKER_SOURCE": self.source,
            "WORKER_OUT": str(self.tmp / f"handled-{self.count}.txt"),
            **self.env,
        }
        worker = ServiceProcess("tests.messaging.worker_app:app", self.tmp, port, env)
        worker.start(wait=False)
        worker.wait_ready(60)
        self.running.append(worker)
        return worker

    def handled(self) -> list[str]:
        lines: list[str] = []
        for path in sorted(self.tmp.glob("handled-*.txt")):
            lines.extend(line for line in path.read_text().splitlines() if line)
        return lines

    def per_worker(self) -> list[int]:
        return [len(p.read_text().splitlines()) for p in sorted(self.tmp.glob("handled-*.txt"))]

    async def until_handled(self, predicate: Any, timeout: float = 120) -> None:
        try:
            await eventually(lambda: predicate(self.handled()), timeout=timeout, interval=0.05)
        except AssertionError:
            logs = "\n".join(w.output()[-3000:] for w in self.running)
            raise AssertionError(
                f"not handled in {timeout} s: {len(self.handled())}\n{logs}"
            ) from None

    def stop_all(self) -> list[int]:
        return [worker.stop() for worker in self.running]


@pytest.fixture
def workers(kind: str, source: str, tmp_path: Path) -> Iterator[Workers]:
    group = Workers(kind, source, tmp_path)
    yield group
    group.stop_all()


async def test_kill_9_three_times_loses_nothing(
    kind: str, source: str, workers: Workers, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = [f"m{i}" for i in range(10_000)]
    await publish_ids(kind, source, ids)
    for mark in (2_500, 5_000, 7_500):
        worker = workers.start()
        await workers.until_handled(lambda seen, mark=mark: len(seen) >= mark)
        worker.signal(signal.SIGKILL)
        worker.wait(10)
    workers.start()
    await workers.until_handled(lambda seen: set(seen) >= set(ids))
    assert workers.stop_all()[-1] == 0
    seen = workers.handled()
    duplicates = len(seen) - len(set(seen))
    with capsys.disabled():
        print(
            f"\n[{kind}] 10,000 messages, 3 x kill -9: {len(set(seen))} handled,"
            f" {duplicates} duplicates"
        )
    assert set(seen) == set(ids)
    # at most what each killed worker held unacked: the broker delivers a consumer at most
    # ``prefetch`` messages it has not had an ack for
    assert duplicates <= 3 * BrokerSettings().prefetch


async def test_competing_replicas_share_the_queue_each_message_once(
    kind: str, source: str, workers: Workers
) -> None:
    for _ in range(3):
        workers.start()
    ids = [f"c{i}" for i in range(3_000)]
    await publish_ids(kind, source, ids)
    await workers.until_handled(lambda seen: len(seen) >= len(ids), timeout=60)
    assert workers.stop_all() == [0, 0, 0]
    seen = workers.handled()
    assert sorted(seen) == sorted(ids)  # each once: no process died
    assert all(n > 0 for n in workers.per_worker()), workers.per_worker()


async def test_broker_restart_while_publishing_with_confirms(
    kind: str, source: str, workers: Workers
) -> None:
    workers.start()
    broker = make_broker(kind, publish_timeout=90)
    await broker.connect()
    confirmed: list[str] = []
    try:
        with outage(kind) as control:

            async def publish_all() -> None:
                for i in range(2_000):
                    message_id = f"r{i}"
                    await broker.publish(
                        source, Message(b"{}", message_id=message_id), declare=True
                    )
                    confirmed.append(message_id)

            publishing = asyncio.ensure_future(publish_all())
            await eventually(lambda: len(confirmed) >= 500, timeout=60, what="500 confirms")
            await asyncio.to_thread(control.stop)
            await eventually(lambda: not broker.is_connected, what="the broker seen as down")
            await asyncio.sleep(1)  # the outage lasts a while
            await asyncio.to_thread(control.start)
            await asyncio.wait_for(publishing, 120)
    finally:
        await broker.close()
    assert len(confirmed) == 2_000  # every publish returned confirmed, none raised
    await workers.until_handled(lambda seen: set(seen) >= set(confirmed))
    assert workers.stop_all() == [0]


async def test_sigterm_while_the_broker_is_down_exits_within_grace(
    kind: str, source: str, workers: Workers
) -> None:
    """Nothing is in flight and nothing is lost, so the shutdown is clean: exit code 0."""
    worker = workers.start()
    with outage(kind) as control:
        await asyncio.to_thread(control.stop)
        await eventually(
            lambda: "broker disconnected" in worker.output(), timeout=30, what="the disconnect"
        )
        started = time.monotonic()
        worker.signal(signal.SIGTERM)
        code = await asyncio.to_thread(worker.wait, 20)
        took = time.monotonic() - started
    output = worker.output()
    assert took < 3 + 5, f"exit took {took:.1f} s"
    assert code == 0, output
    assert output.rstrip().endswith("worker stopped"), output[-3000:]


async def test_publish_with_the_broker_stopped_raises_and_drops_nothing_silently(
    kind: str, source: str
) -> None:
    broker = make_broker(kind, publish_timeout=1.5)
    await broker.connect()
    await broker.publish(source, Message(b"{}", message_id="before"), declare=True)
    try:
        with outage(kind) as control:
            await asyncio.to_thread(control.stop)
            started = time.monotonic()
            results = await asyncio.gather(
                *(
                    broker.publish(source, Message(b"{}", message_id=f"x{i}"), declare=True)
                    for i in range(20)
                ),
                return_exceptions=True,
            )
            took = time.monotonic() - started
    finally:
        await broker.close()
    assert [type(r) for r in results] == [PublishError] * 20, results
    assert all("not confirmed within 1.5 s" in str(r) for r in results), results
    assert took < 5
    # the broker has what was confirmed and nothing that raised
    stored = await drain(kind, source, 1)
    assert [m.message_id for m in stored] == ["before"]


async def drain(kind: str, source: str, expect: int, wait: float = 1.0) -> list[Message]:
    """The messages on ``source``: ``expect`` of them, then any more that arrive within
    ``wait`` seconds (a wait for an absence: no event says nothing more will come)."""
    from tests.messaging.contract import Collector

    broker = make_broker(kind)
    await broker.connect()
    try:
        collector = Collector(count=expect)
        await broker.subscribe(source, collector, prefetch=100)
        await asyncio.wait_for(collector.done.wait(), 30)
        await asyncio.sleep(wait)
        return list(collector.seen)
    finally:
        await broker.close()


async def test_poison_message_among_1000_is_dead_lettered_the_rest_handled(
    kind: str, source: str
) -> None:
    from pydantic import BaseModel

    from cordio import App
    from cordio.config import EnvSource
    from cordio.testing import TestApp

    class Item(BaseModel):
        n: int

    app = App("p", config=[EnvSource("p", environ={"P__BROKER__URL": URLS[kind]})])
    handled: set[int] = set()

    @app.consume(source, max_concurrency=16, prefetch=100)
    async def handle(item: Item) -> None:
        handled.add(item.n)

    publisher = make_broker(kind)
    await publisher.connect()
    try:
        for n in range(1_000):
            if n == 500:
                await publisher.publish(source, Message(b'{"n": "not a number"}'), declare=True)
            await publisher.publish(source, Message(b'{"n": %d}' % n), declare=True)
    finally:
        await publisher.close()
    async with TestApp(app):
        await eventually(lambda: len(handled) >= 1_000, timeout=60, what="1000 handled")
    assert handled == set(range(1_000))
    (dead,) = await drain(kind, source + ".dead-letter", 1, wait=0.2)
    assert dead.body == b'{"n": "not a number"}'
    assert dead.headers[DEATH_REASON].startswith(
        "poison: invalid payload: n: Input should be a valid integer"
    )


async def test_nats_handler_slower_than_ack_wait_is_not_redelivered(source: str) -> None:
    need_server("NATS", "127.0.0.1", 4222)
    from cordio import App
    from cordio.config import EnvSource
    from cordio.testing import TestApp

    environ = {"S__BROKER__URL": URLS["nats"], "S__BROKER__ACK_WAIT": "1"}
    app = App("s", config=[EnvSource("s", environ=environ)])
    attempts: collections.Counter[str] = collections.Counter()

    @app.consume(source, max_concurrency=100, prefetch=100)
    async def slow(message: Message) -> None:
        attempts[message.message_id] += 1
        await asyncio.sleep(2.5)  # 2.5 x ack_wait

    await publish_ids("nats", source, [f"s{i}" for i in range(100)])
    async with TestApp(app):
        consumer = next(s for s in app.runtime.services if getattr(s, "name", "") == "slow")
        await eventually(lambda: consumer.acked >= 100, timeout=30, what="100 acks")
        await asyncio.sleep(1.5)  # a wait for an absence: a redelivery would show up now
    assert len(attempts) == 100
    assert max(attempts.values()) == 1, "redelivered while still being handled"


async def test_jetstream_drops_re_sent_duplicates(source: str) -> None:
    need_server("NATS", "127.0.0.1", 4222)
    import nats

    ids = [f"d{i}" for i in range(10_000)]
    await publish_ids("nats", source, ids + ids)
    nc = await nats.connect(URLS["nats"])
    try:
        info = await nc.jetstream().stream_info("CORDIO_" + source.replace(".", "_"))
    finally:
        await nc.close()
    assert info.state.messages == 10_000
