"""Topology from settings: exchanges, bindings and queue options, on the memory broker and
on the real RabbitMQ server (the same routing, the same errors)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from pydantic import ValidationError

from cordio.messaging import MemoryBroker, Message
from cordio.messaging.connection import PublishError
from cordio.messaging.settings import BrokerSettings, topic_matches
from tests.conftest import need_server
from tests.messaging.contract import Collector

AMQP = "amqp://guest:guest@127.0.0.1:5672/"


def topology(prefix: str) -> dict[str, Any]:
    return {
        "exchanges": {
            f"{prefix}.events": {"type": "topic"},
            f"{prefix}.direct": {"type": "direct"},
            f"{prefix}.all": {"type": "fanout"},
        },
        "queues": {
            f"{prefix}.eu": {
                "bindings": [
                    {"exchange": f"{prefix}.events", "routing_key": "order.*.eu"},
                    {"exchange": f"{prefix}.all"},
                ]
            },
            f"{prefix}.audit": {
                "bindings": [
                    {"exchange": f"{prefix}.events", "routing_key": "#"},
                    {"exchange": f"{prefix}.direct", "routing_key": "audit"},
                    {"exchange": f"{prefix}.all"},
                ]
            },
        },
    }


async def _cleanup_amqp(prefix: str, settings: BrokerSettings) -> None:
    import aio_pika

    connection = await aio_pika.connect(AMQP)
    async with connection:
        channel = await connection.channel()
        for name in settings.queues:
            for suffix in ("", ".dead-letter", ".retry"):
                await channel.queue_delete(name + suffix)
        for name in settings.exchanges:
            await channel.exchange_delete(name)


@pytest.fixture(params=["memory", "amqp"])
async def make(request: pytest.FixtureRequest) -> AsyncIterator[Callable[..., Any]]:
    made: list[tuple[Any, str, BrokerSettings]] = []

    async def factory(**options: Any) -> tuple[Any, str]:
        prefix = "cordio.topo." + secrets.token_hex(3)
        options = {**topology(prefix), **options} if not options.get("bare") else {}
        if request.param == "memory":
            settings = BrokerSettings(**options)
            broker: Any = MemoryBroker(settings=settings)
        else:
            need_server("RabbitMQ", "127.0.0.1", 5672)
            from cordio.messaging.amqp import AmqpBroker

            settings = BrokerSettings(url=AMQP, **options)
            broker = AmqpBroker(AMQP, settings=settings)
        await broker.connect()
        made.append((broker, prefix, settings))
        return broker, prefix

    yield factory
    for broker, prefix, settings in made:
        await broker.close()
        if request.param == "amqp":
            await _cleanup_amqp(prefix, settings)


async def drain(broker: Any, queue: str, expect: int) -> list[Message]:
    collector = Collector(count=expect)
    subscription = await broker.subscribe(queue, collector, prefetch=10)
    if expect:
        await asyncio.wait_for(collector.done.wait(), 5)
    else:
        await asyncio.sleep(0.3)  # a negative: nothing may arrive in this time
    await subscription.cancel()
    return collector.seen


async def test_exchanges_route_by_binding(make: Callable[..., Any]) -> None:
    broker, p = await make()
    await broker.publish(f"{p}.events", Message(b"1"), routing_key="order.created.eu")
    await broker.publish(f"{p}.events", Message(b"2"), routing_key="order.created.us")
    await broker.publish(f"{p}.direct", Message(b"3"), routing_key="audit")
    await broker.publish(f"{p}.all", Message(b"4"))
    eu = await drain(broker, f"{p}.eu", 2)
    audit = await drain(broker, f"{p}.audit", 4)
    assert sorted(m.body for m in eu) == [b"1", b"4"]
    assert sorted(m.body for m in audit) == [b"1", b"2", b"3", b"4"]


async def test_unroutable_message_raises_instead_of_vanishing(make: Callable[..., Any]) -> None:
    broker, p = await make()
    with pytest.raises(PublishError, match="routing key 'nobody'"):
        await broker.publish(f"{p}.direct", Message(b"x"), routing_key="nobody")


async def test_routing_key_for_a_queue_is_refused(make: Callable[..., Any]) -> None:
    broker, p = await make()
    with pytest.raises(ValueError, match="not an exchange"):
        await broker.publish(f"{p}.eu", Message(b"x"), routing_key="k")


async def test_single_active_consumer_gets_everything_until_it_goes(
    make: Callable[..., Any],
) -> None:
    q = "cordio.topo.sac." + secrets.token_hex(3)
    broker, _ = await make(queues={q: {"single_active_consumer": True, "type": "quorum"}})
    first, second = Collector(count=5), Collector(count=5)
    sub1 = await broker.subscribe(q, first, prefetch=10)
    await broker.subscribe(q, second, prefetch=10)
    for i in range(5):
        await broker.publish(q, Message(str(i).encode()))
    await asyncio.wait_for(first.done.wait(), 5)
    assert [m.body for m in first.seen] == [b"0", b"1", b"2", b"3", b"4"]
    assert second.seen == []
    await sub1.cancel()
    for i in range(5):
        await broker.publish(q, Message(str(i).encode()))
    await asyncio.wait_for(second.done.wait(), 5)
    assert len(second.seen) == 5


async def test_quorum_delivery_limit_dead_letters_a_message_that_never_settles(
    make: Callable[..., Any],
) -> None:
    """A message whose consumer goes away before settling it (a crash) is delivered again;
    past the delivery limit the broker dead-letters it."""
    q = "cordio.topo.limit." + secrets.token_hex(3)
    broker, _ = await make(queues={q: {"type": "quorum", "delivery_limit": 2}})
    await broker.publish(q, Message(b"crashes-the-consumer"))
    for _ in range(3):  # 1 delivery + 2 allowed returns
        holder = Collector("hold")
        sub = await broker.subscribe(q, holder, prefetch=1)
        await asyncio.wait_for(holder.done.wait(), 5)
        await sub.cancel()
    dead = await drain(broker, q + ".dead-letter", 1)
    assert dead[0].body == b"crashes-the-consumer"
    assert await drain(broker, q, 0) == []


def test_settings_errors_name_the_key() -> None:
    with pytest.raises(ValidationError, match="delivery_limit needs type = 'quorum'"):
        BrokerSettings(queues={"q": {"delivery_limit": 3}})
    with pytest.raises(ValidationError, match=r"queues\.q\.bindings: exchange 'nope'"):
        BrokerSettings(queues={"q": {"bindings": [{"exchange": "nope"}]}})
    with pytest.raises(ValidationError, match="type"):
        BrokerSettings(exchanges={"e": {"type": "bogus"}})
    with pytest.raises(ValidationError, match="Extra inputs"):
        BrokerSettings(queues={"q": {"delivery_limt": 3}})


@pytest.mark.parametrize(
    ("pattern", "key", "matches"),
    [
        ("order.*", "order.created", True),
        ("order.*", "order.created.eu", False),
        ("order.#", "order", True),
        ("order.#", "order.a.b", True),
        ("#.eu", "order.created.eu", True),
        ("*.created.*", "order.created.eu", True),
        ("a.#.z", "a.z", True),
        ("a.#.z", "a.b.c", False),
        ("#", "", True),
    ],
)
def test_topic_patterns(pattern: str, key: str, matches: bool) -> None:
    assert topic_matches(pattern, key) is matches


async def test_existing_queue_with_other_options_stops_start_naming_the_setting() -> None:
    need_server("RabbitMQ", "127.0.0.1", 5672)
    import aio_pika

    from cordio.messaging.amqp import AmqpBroker

    q = "cordio.topo.clash." + secrets.token_hex(3)
    connection = await aio_pika.connect(AMQP)
    async with connection:
        channel = await connection.channel()
        await channel.declare_queue(q, durable=True)  # classic
        try:
            settings = BrokerSettings(url=AMQP, queues={q: {"type": "quorum"}})
            broker = AmqpBroker(AMQP, settings=settings)
            with pytest.raises(ValueError, match=rf"broker\.queues\.{q}"):
                await broker.connect()
            await broker.close()
        finally:
            channel = await connection.channel()
            await channel.queue_delete(q)


async def test_returned_deliveries_count_as_attempts_on_quorum_queues(
    make: Callable[..., Any],
) -> None:
    """RabbitMQ's quorum queues count deliveries returned unsettled (``x-delivery-count``);
    the attempt number includes them, as the memory broker's does, so a message that crashes
    its consumer every time reaches ``max_attempts``."""
    q = "cordio.topo.count." + secrets.token_hex(3)
    broker, _ = await make(queues={q: {"type": "quorum"}})
    await broker.publish(q, Message(b"x"))
    attempts = []
    for _ in range(3):
        holder = Collector("hold")
        sub = await broker.subscribe(q, holder, prefetch=1)
        await asyncio.wait_for(holder.done.wait(), 5)
        attempts.append(holder.seen[0].attempt)
        await sub.cancel()
    assert attempts == [1, 2, 3]
