"""Publishing goes only to destinations the app declared (``broker.queues``,
``broker.exchanges``, ``broker.streams``, ``app.publishes``), consumes, or that exist on the
broker; any other name (a typo) raises ``PublishError`` and creates nothing, on every broker.
``declare=True`` creates it."""

from __future__ import annotations

import asyncio
import contextlib
import secrets

import pytest

from cordio import App
from cordio.config import EnvSource
from cordio.messaging import MemoryBroker, Message, Publisher, PublishError
from cordio.messaging.settings import BrokerSettings
from cordio.testing import TestApp
from tests.conftest import need_server

URLS = {
    "memory": "memory://",
    "amqp": "amqp://guest:guest@127.0.0.1:5672/",
    "nats": "nats://127.0.0.1:4222",
}
SERVERS = {"amqp": ("RabbitMQ", 5672), "nats": ("NATS", 4222)}


def refusal(kind: str, name: str) -> str:
    """The error message (a regular expression) for a publish to ``name`` nobody declared."""
    if kind == "nats":
        return (
            rf"no stream stores subject '{name}'; declare it in broker\.streams \(or with"
            r" app\.publishes\) or pass declare=True"
        )
    return (
        rf"no queue or exchange named '{name}'; declare it in broker\.queues \(or with"
        r" app\.publishes\) or pass declare=True"
    )


async def on_server(kind: str, name: str) -> bool:
    """Whether the server has a queue named ``name`` (NATS: a stream storing it)."""
    if kind == "amqp":
        import aio_pika
        import aiormq

        connection = await aio_pika.connect(URLS["amqp"])
        async with connection:
            channel = await connection.channel()
            try:
                await channel.declare_queue(name, passive=True)
            except aiormq.exceptions.ChannelNotFoundEntity:
                return False
            return True
    import nats
    from nats.js.errors import NotFoundError

    nc = await nats.connect(URLS["nats"])
    try:
        await nc.jetstream().find_stream_name_by_subject(name)
    except NotFoundError:
        return False
    finally:
        await nc.close()
    return True


async def create_plainly(kind: str, name: str) -> None:
    """Create a queue (NATS: a stream) for ``name`` with a plain client, not cordio."""
    if kind == "amqp":
        import aio_pika

        connection = await aio_pika.connect(URLS["amqp"])
        async with connection:
            channel = await connection.channel()
            await channel.declare_queue(name, durable=True)
        return
    import nats

    nc = await nats.connect(URLS["nats"])
    await nc.jetstream().add_stream(name="PLAIN_" + name.replace(".", "_"), subjects=[name])
    await nc.close()


async def clean_up(kind: str, names: list[str]) -> None:
    if kind == "amqp":
        import aio_pika

        connection = await aio_pika.connect(URLS["amqp"])
        async with connection:
            channel = await connection.channel()
            for name in names:
                for suffix in ("", ".dead-letter", ".retry"):
                    await channel.queue_delete(name + suffix)
    elif kind == "nats":
        import nats

        nc = await nats.connect(URLS["nats"])
        js = nc.jetstream()
        for name in names:
            for prefix in ("CORDIO_", "PLAIN_"):
                with contextlib.suppress(Exception):  # not every name has both
                    await js.delete_stream(prefix + name.replace(".", "_"))
        await nc.close()


@pytest.mark.parametrize("kind", ["memory", "amqp", "nats"])
async def test_a_mistyped_destination_raises_and_creates_nothing(kind: str) -> None:
    if kind in SERVERS:
        need_server(SERVERS[kind][0], "127.0.0.1", SERVERS[kind][1])
    tag = secrets.token_hex(4)
    consumed, declared, typo, forced, theirs = (
        f"cordio.dest.{word}.{tag}" for word in ("consumed", "declared", "typo", "forced", "theirs")
    )
    app = App("d", config=[EnvSource("d", environ={"D__BROKER__URL": URLS[kind]})])
    received = asyncio.Event()

    @app.consume(consumed)
    async def handle(n: int) -> None:
        received.set()

    app.publishes(declared, int)
    try:
        async with TestApp(app):
            publisher = app.get(Publisher)
            for _ in range(2):  # the refused publish created nothing: the next is refused too
                with pytest.raises(PublishError, match=refusal(kind, typo)) as refused:
                    await publisher.publish(typo, 1)
                assert type(refused.value) is PublishError
                assert refused.value.destination == typo
            if kind in SERVERS:
                assert not await on_server(kind, typo)
            await publisher.publish(consumed, 1)  # what the app consumes
            await asyncio.wait_for(received.wait(), 10)
            # declared with app.publishes: created, though nobody consumes it yet
            assert (await publisher.publish(declared, 2)).body == b"2"
            assert (await publisher.publish(forced, 3, declare=True)).body == b"3"
            assert (await publisher.publish(forced, 4)).body == b"4"  # it exists now
            if kind in SERVERS:
                assert await on_server(kind, declared)
                await create_plainly(kind, theirs)  # declared by another service
                assert (await publisher.publish(theirs, 5)).body == b"5"
    finally:
        await clean_up(kind, [consumed, declared, forced, theirs])


async def test_memory_queues_and_exchanges_under_broker_settings_are_declared() -> None:
    settings = BrokerSettings(
        exchanges={"events": {"type": "fanout"}},
        queues={"listed": {}, "bound": {"bindings": [{"exchange": "events"}]}},
    )
    broker = MemoryBroker(settings=settings)
    await broker.connect()
    await broker.publish("listed", Message(b"1"))
    await broker.publish("events", Message(b"2"))
    with pytest.raises(PublishError, match=refusal("memory", "lsited")):
        await broker.publish("lsited", Message(b"3"))
    assert [m.body for m in broker.take("listed")] == [b"1"]
    assert [m.body for m in broker.take("bound")] == [b"2"]
    await broker.close()


async def test_a_nats_source_with_wildcards_declares_the_subjects_it_matches() -> None:
    need_server("NATS", "127.0.0.1", 4222)
    from cordio.messaging.nats import NatsBroker

    tag = secrets.token_hex(4)
    broker = NatsBroker(URLS["nats"], destinations={f"cordio.wild{tag}.*"})
    await broker.connect()
    try:
        await broker.publish(f"cordio.wild{tag}.a", Message(b"1"))
        with pytest.raises(PublishError, match=refusal("nats", f"cordio.tame{tag}.a")):
            await broker.publish(f"cordio.tame{tag}.a", Message(b"2"))
    finally:
        await broker.close()
        await clean_up("nats", [f"cordio.wild{tag}.a"])
