"""The broker contract on the real RabbitMQ server (127.0.0.1:5672)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import pytest

from cordio.messaging import Broker, Message
from cordio.messaging.amqp import AmqpBroker
from tests.conftest import need_server
from tests.eventually import eventually
from tests.messaging.contract import BrokerContract

URL = "amqp://guest:guest@127.0.0.1:5672/"


class TestAmqpBroker(BrokerContract):
    @pytest.fixture
    async def broker(self) -> AsyncIterator[Broker]:
        need_server("RabbitMQ", "127.0.0.1", 5672)
        self.created: list[str] = []
        broker = AmqpBroker(URL)
        self.declared = broker.destinations
        await broker.connect()
        yield broker
        await broker.close()
        import aio_pika

        connection = await aio_pika.connect(URL)
        async with connection:
            channel = await connection.channel()
            for name in self.created:
                for suffix in ("", ".dead-letter", ".retry"):
                    await channel.queue_delete(name + suffix)

    def queue_name(self) -> str:
        name = "cordio.contract." + secrets.token_hex(4)
        self.created.append(name)
        self.declared.add(name)
        return name


async def test_app_consumes_acks_and_dead_letters_on_rabbitmq() -> None:
    import aio_pika
    from pydantic import BaseModel

    from cordio import App
    from cordio.config import EnvSource
    from cordio.messaging import Publisher
    from cordio.messaging.message import DEATH_REASON
    from cordio.testing import TestApp

    need_server("RabbitMQ", "127.0.0.1", 5672)
    queue = "cordio.app." + secrets.token_hex(4)

    class Job(BaseModel):
        n: int

    environ = {
        "SVC__BROKER__URL": URL,
        "SVC__BROKER__REQUEUE_DELAY": "0.05",
        "SVC__BROKER__MAX_ATTEMPTS": "2",
    }
    app = App("svc", config=[EnvSource("svc", environ=environ)])
    done: list[int] = []
    attempts: list[int] = []

    @app.consume(queue)
    async def work(job: Job, msg: Message) -> None:
        attempts.append(msg.attempt)
        if job.n < 0:
            raise ValueError("negative")
        done.append(job.n)

    try:
        async with TestApp(app):
            publisher = app.get(Publisher)
            for n in (1, -1, 2):
                await publisher.publish(queue, Job(n=n))
            await eventually(
                lambda: len(done) >= 2 and len(attempts) >= 4, what="2 jobs done in 4 attempts"
            )
        connection = await aio_pika.connect(URL)
        async with connection:
            channel = await connection.channel()
            dlq = await channel.declare_queue(queue + ".dead-letter", durable=True)
            dead = await dlq.get(timeout=5)
            await dead.ack()
            assert dead.body == b'{"n":-1}'
            assert "failed 2 times: ValueError: negative" in dead.headers[DEATH_REASON]
    finally:
        connection = await aio_pika.connect(URL)
        async with connection:
            channel = await connection.channel()
            for suffix in ("", ".dead-letter", ".retry"):
                await channel.queue_delete(queue + suffix)
    assert sorted(done) == [1, 2]
    assert sorted(attempts) == [1, 1, 1, 2]


async def test_connection_state_is_exposed() -> None:
    need_server("RabbitMQ", "127.0.0.1", 5672)
    broker = AmqpBroker(URL)
    assert not broker.is_connected
    await broker.connect()
    assert broker.is_connected
    await broker.close()
    assert not broker.is_connected


async def test_queue_deleted_under_a_running_consumer_is_declared_and_consumed_again() -> None:
    """RabbitMQ cancels the consumer when its queue is deleted; within 5 s the queue is back
    and messages published to it are consumed."""
    need_server("RabbitMQ", "127.0.0.1", 5672)
    import asyncio

    import aio_pika

    from tests.messaging.contract import Collector

    queue = "cordio.deleted." + secrets.token_hex(4)
    broker = AmqpBroker(URL)
    await broker.connect()
    connection = await aio_pika.connect(URL)
    try:
        collector = Collector(count=2)
        await broker.subscribe(queue, collector, prefetch=5)
        await broker.publish(queue, Message(b"before"))
        channel = await connection.channel()
        await eventually(lambda: collector.seen, what="the first delivery")
        await channel.queue_delete(queue)

        async def restored() -> bool:  # the queue is declared again by the restored consumer
            try:
                probe = await connection.channel()
                declared = await probe.declare_queue(queue, passive=True)
            except aio_pika.exceptions.ChannelNotFoundEntity:
                return False
            return bool(declared.declaration_result.consumer_count == 1)

        await eventually(restored, timeout=5, interval=0.1, what="the consumer restored")
        await broker.publish(queue, Message(b"after"))
        await asyncio.wait_for(collector.done.wait(), 5)
        assert [m.body for m in collector.seen] == [b"before", b"after"]
    finally:
        await broker.close()
        channel = await connection.channel()
        await channel.queue_delete(queue)
        await connection.close()
