"""The broker contract on the real RabbitMQ server (127.0.0.1:5672)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import pytest

from cordio.messaging import Broker, Message
from cordio.messaging.amqp import AmqpBroker
from tests.conftest import need_server
from tests.messaging.contract import BrokerContract

URL = "amqp://guest:guest@127.0.0.1:5672/"


class TestAmqpBroker(BrokerContract):
    @pytest.fixture
    async def broker(self) -> AsyncIterator[Broker]:
        need_server("RabbitMQ", "127.0.0.1", 5672)
        self.created: list[str] = []
        broker = AmqpBroker(URL)
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
        return name


async def test_app_consumes_acks_and_dead_letters_on_rabbitmq() -> None:
    import asyncio

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
            async with asyncio.timeout(10):
                while len(done) < 2 or len(attempts) < 4:
                    await asyncio.sleep(0.02)
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
