"""Every failure of ``Publisher.publish`` and ``Publisher.request`` is one of cordio's errors,
naming the destination and the cause, on every broker (memory, RabbitMQ, NATS):

- ``InvalidMessage`` (a ``PublishError`` and a ``ValueError``): the caller's message cannot
  be published as given; never a dependency failure to policies;
- ``PublishError``: the broker is unreachable or closed, or refused or could not route the
  message; a dependency failure;
- ``RequestTimeout`` and ``RemoteError`` for requests.

Never a client library's exception (aio-pika, aiormq, nats-py): those are the ``__cause__``.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic_core import PydanticSerializationError

from cordio.messaging import (
    InvalidMessage,
    MemoryBroker,
    Message,
    Publisher,
    PublishError,
    RequestTimeout,
)
from cordio.messaging.settings import BrokerSettings
from cordio.policy.failures import is_caller_error, is_dependency_failure
from tests.conftest import need_server
from tests.eventually import eventually
from tests.messaging.proxy import proxy

AMQP = "amqp://guest:guest@127.0.0.1:5672/"
NATS = "nats://127.0.0.1:4222"
PORTS = {"amqp": 5672, "nats": 4222}


def make_broker(kind: str, url: str | None = None, **settings: Any) -> Any:
    """A broker of ``kind`` on which the app declared ``q`` (and each :func:`fresh` name)."""
    if kind == "memory":
        return MemoryBroker(settings=BrokerSettings(**settings), destinations={"q"})
    need_server({"amqp": "RabbitMQ", "nats": "NATS"}[kind], "127.0.0.1", PORTS[kind])
    url = url or {"amqp": AMQP, "nats": NATS}[kind]
    cfg = BrokerSettings(url=url, **settings)
    if kind == "amqp":
        from cordio.messaging.amqp import AmqpBroker

        return AmqpBroker(url, settings=cfg, reconnect_interval=0.2, destinations={"q"})
    from cordio.messaging.nats import NatsBroker

    return NatsBroker(url, settings=cfg, reconnect_wait=0.2, destinations={"q"})


@contextlib.asynccontextmanager
async def connected(kind: str, url: str | None = None, **settings: Any) -> AsyncIterator[Any]:
    """``(publisher, broker)`` on a connected broker; what it created is deleted at exit."""
    broker = make_broker(kind, url, **settings)
    await broker.connect()
    created: list[str] = []
    broker.created = created
    try:
        yield Publisher(broker, broker.max_message_bytes), broker
    finally:
        await broker.close()
        await delete(kind, created)


async def delete(kind: str, names: list[str]) -> None:
    if kind == "amqp" and names:
        import aio_pika

        connection = await aio_pika.connect(AMQP)
        async with connection:
            channel = await connection.channel()
            for name in names:
                await channel.queue_delete(name)
                await channel.exchange_delete(name)
    elif kind == "nats" and names:
        import nats

        nc = await nats.connect(NATS)
        js = nc.jetstream()
        for name in names:
            with contextlib.suppress(Exception):  # not every test creates each one
                await js.delete_stream(name)
        await nc.close()


def fresh(broker: Any, kind: str) -> str:
    """A destination nobody used, declared by the app; deleted at the end of the test."""
    name = "cordio.errors." + secrets.token_hex(4)
    broker.destinations.add(name)
    broker.created.append(name if kind == "amqp" else "CORDIO_" + name.replace(".", "_"))
    return name


def check(exc: BaseException, kind: type[BaseException], destination: str) -> None:
    """``exc`` is exactly cordio's ``kind``, names ``destination``, and counts (or not) as a
    dependency failure as its kind says."""
    assert type(exc) is kind, repr(exc)
    assert getattr(exc, "destination", None) == destination
    assert repr(destination) in str(exc)
    assert is_dependency_failure(exc) is (kind is not InvalidMessage)
    assert is_caller_error(exc) is (kind is InvalidMessage)


@pytest.mark.parametrize("kind", ["memory", "amqp", "nats"])
async def test_a_callers_bad_message_is_an_invalid_message_on_every_broker(kind: str) -> None:
    async with connected(kind, max_message_bytes=1000) as (publisher, broker):
        q = fresh(broker, kind)
        with pytest.raises(InvalidMessage, match="cannot be encoded as application/json") as e:
            await publisher.publish(q, {"when": object()})
        check(e.value, InvalidMessage, q)
        assert isinstance(e.value.__cause__, PydanticSerializationError)
        with pytest.raises(InvalidMessage, match="as application/msgpack: TypeError") as e:
            await publisher.publish(q, {"when": object()}, content_type="application/msgpack")
        check(e.value, InvalidMessage, q)
        with pytest.raises(InvalidMessage, match="NaN and infinite floats") as e:
            await publisher.publish(q, {"price": float("nan")})
        check(e.value, InvalidMessage, q)
        with pytest.raises(InvalidMessage, match="unsupported content type 'text/csv'") as e:
            await publisher.publish(q, {"a": 1}, content_type="text/csv")
        check(e.value, InvalidMessage, q)
        with pytest.raises(InvalidMessage, match=r"over the limit of 1000 \(broker\.max_") as e:
            await publisher.publish(q, "x" * 2000)
        check(e.value, InvalidMessage, q)
        with pytest.raises(InvalidMessage, match="header 'n': names and values must be") as e:
            await publisher.publish(q, 1, headers={"n": 1})  # type: ignore[dict-item]
        check(e.value, InvalidMessage, q)
        with pytest.raises(InvalidMessage, match="routing_key") as e:
            await publisher.publish(q, 1, routing_key="k")
        check(e.value, InvalidMessage, q)
        with pytest.raises(InvalidMessage, match="a queue, subject or exchange name") as e:
            await publisher.publish("", 1)
        check(e.value, InvalidMessage, "")
        with pytest.raises(InvalidMessage, match="cannot be encoded") as e:
            await publisher.request(q, {"when": object()}, timeout=1)
        check(e.value, InvalidMessage, q)
        # none of it broke the connection
        assert (await publisher.publish(q, {"ok": True})).body == b'{"ok":true}'


@pytest.mark.parametrize("kind", ["memory", "amqp", "nats"])
async def test_a_closed_broker_refuses_at_once(kind: str) -> None:
    async with connected(kind, publish_timeout=5) as (publisher, broker):
        q = fresh(broker, kind)
        await publisher.publish(q, 1)
    started = time.monotonic()
    with pytest.raises(PublishError, match="broker is closed; publish to") as e:
        await publisher.publish(q, 2)
    check(e.value, PublishError, q)
    with pytest.raises(PublishError, match="broker is closed") as e:
        await publisher.request(q, 2, timeout=5)
    check(e.value, PublishError, q)
    assert time.monotonic() - started < 1  # not after publish_timeout


@pytest.mark.parametrize("kind", ["amqp", "nats"])
async def test_a_broker_never_connected_refuses_at_once(kind: str) -> None:
    from cordio.messaging.amqp import AmqpBroker
    from cordio.messaging.nats import NatsBroker

    broker = AmqpBroker(AMQP) if kind == "amqp" else NatsBroker(NATS)
    with pytest.raises(PublishError, match=f"^{broker.server} broker is not connected$") as e:
        await broker.publish("q", Message(b"1"))
    assert type(e.value) is PublishError
    assert e.value.destination == "q"


@pytest.mark.parametrize("kind", ["amqp", "nats"])
async def test_an_unreachable_broker_raises_publish_error_within_publish_timeout(
    kind: str,
) -> None:
    need_server({"amqp": "RabbitMQ", "nats": "NATS"}[kind], "127.0.0.1", PORTS[kind])
    async with proxy(PORTS[kind]) as cut_off:
        url = (
            f"amqp://guest:guest@127.0.0.1:{cut_off.port}/"
            if kind == "amqp"
            else f"nats://127.0.0.1:{cut_off.port}"
        )
        async with connected(kind, url, publish_timeout=1) as (publisher, broker):
            known, new = fresh(broker, kind), fresh(broker, kind)
            await publisher.publish(known, 1)
            await cut_off.cut()
            started = time.monotonic()
            for destination in (known, new):  # new: RabbitMQ would declare it first
                with pytest.raises(PublishError, match=r"not confirmed within 1\.0 s") as e:
                    await publisher.publish(destination, 2)
                check(e.value, PublishError, destination)
            with pytest.raises(PublishError, match=r"not confirmed within 1\.0 s") as e:
                await publisher.request(new, 3, timeout=5)
            check(e.value, PublishError, new)
            assert time.monotonic() - started < 3 * 1 + 2
            await cut_off.restore()
            # the client reconnects; publishing works again
            await eventually(lambda: broker.is_connected, timeout=30, what="the reconnect")
            assert (await publisher.publish(new, 4)).body == b"4"


async def test_memory_disconnected_raises_publish_error_within_publish_timeout() -> None:
    async with connected("memory", publish_timeout=0.2) as (publisher, broker):
        broker.disconnect()
        started = time.monotonic()
        with pytest.raises(PublishError, match=r"memory broker is down; publish to 'q'") as e:
            await publisher.publish("q", 1)
        check(e.value, PublishError, "q")
        with pytest.raises(PublishError, match=r"not confirmed within 0\.2 s") as e:
            await publisher.request("q", 1, timeout=5)
        check(e.value, PublishError, "q")
        assert time.monotonic() - started < 2
        broker.reconnect()
        assert (await publisher.publish("q", 2)).body == b"2"
        assert [m.body for m in broker.take("q")] == [b"2"]


async def test_memory_unroutable_and_unanswered() -> None:
    settings = {"exchanges": {"events": {"type": "topic"}}}
    async with connected("memory", **settings) as (publisher, _):
        with pytest.raises(PublishError, match="no queue is bound to exchange 'events'") as e:
            await publisher.publish("events", 1, routing_key="order.created")
        check(e.value, PublishError, "events")
        with pytest.raises(RequestTimeout, match=r"no reply from 'q' within 0\.1 s") as t:
            await publisher.request("q", 1, timeout=0.1)  # declared, nobody consumes it
        assert (t.value.destination, t.value.timeout) == ("q", 0.1)
        assert is_dependency_failure(t.value)


async def test_rabbitmq_failure_modes() -> None:
    import aio_pika
    import aiormq

    gone = "cordio.errors.gone." + secrets.token_hex(3)
    topic = "cordio.errors.topic." + secrets.token_hex(3)
    exchanges = {gone: {"type": "direct"}, topic: {"type": "topic"}}
    async with connected("amqp", exchanges=exchanges, publish_timeout=2) as (publisher, broker):
        broker.created.extend([gone, topic])
        q = fresh(broker, "amqp")
        for name, why in (("amq.cordio", "reserved"), ("q" * 256, "1 to 255 bytes")):
            with pytest.raises(InvalidMessage, match=why) as e:
                await publisher.publish(name, 1)
            check(e.value, InvalidMessage, name)
        with pytest.raises(PublishError, match=f"exchange '{topic}', routing key 'no.one'") as e:
            await publisher.publish(topic, 1, routing_key="no.one")
        check(e.value, PublishError, topic)
        connection = await aio_pika.connect(AMQP)
        async with connection:
            await (await connection.channel()).exchange_delete(gone)
        with pytest.raises(PublishError, match=f"exchange '{gone}' does not exist") as e:
            await publisher.publish(gone, 1, routing_key="k")
        check(e.value, PublishError, gone)
        assert isinstance(e.value.__cause__, aiormq.exceptions.ChannelNotFoundEntity)
        # the server closed the channel; the next publish goes out on a new one
        assert (await publisher.publish(q, 1)).body == b"1"
        with pytest.raises(RequestTimeout, match=f"no reply from '{q}' within 0.2 s"):
            await publisher.request(q, 1, timeout=0.2)  # stored, but nobody consumes it


async def test_nats_failure_modes() -> None:
    import nats

    tag = secrets.token_hex(3)
    small, full = f"CORDIO_TEST_SMALL_{tag}", f"CORDIO_TEST_FULL_{tag}"
    nc = await nats.connect(NATS)
    js = nc.jetstream()
    await js.add_stream(name=small, subjects=[f"small{tag}"], max_msg_size=16)
    await js.add_stream(name=full, subjects=[f"full{tag}"], max_msgs=1, discard="new")
    settings = {"max_message_bytes": 2 * 1024 * 1024, "publish_timeout": 5}
    try:
        async with connected("nats", **settings) as (publisher, broker):
            q = fresh(broker, "nats")
            for subject, why in (
                ("orders created", "no whitespace"),
                ("orders..created", "cannot be empty"),
                ("orders.*", "wildcards"),
                ("orders.>", "wildcards"),
            ):
                with pytest.raises(InvalidMessage, match=why) as e:
                    await publisher.publish(subject, 1)
                check(e.value, InvalidMessage, subject)
            with pytest.raises(InvalidMessage, match="header 'a b': NATS header names") as e:
                await publisher.publish(q, 1, headers={"a b": "c"})
            check(e.value, InvalidMessage, q)
            with pytest.raises(InvalidMessage, match="cannot hold line breaks") as e:
                await publisher.publish(q, 1, headers={"a": "b\r\nNats-Rollup: all"})
            check(e.value, InvalidMessage, q)
            with pytest.raises(InvalidMessage, match="over the NATS server's max_payload") as e:
                await publisher.publish(q, b"x" * (1024 * 1024 + 1))
            check(e.value, InvalidMessage, q)
            subject = f"small{tag}"
            with pytest.raises(InvalidMessage, match=f"stream '{small}' refused .* size") as e:
                await publisher.publish(subject, "x" * 100)
            check(e.value, InvalidMessage, subject)
            subject = f"full{tag}"
            await publisher.publish(subject, 1)
            started = time.monotonic()
            with pytest.raises(PublishError, match="maximum messages exceeded") as e:
                await publisher.publish(subject, 2)
            check(e.value, PublishError, subject)
            assert time.monotonic() - started < 1  # a refusal, not retried until the timeout
            with pytest.raises(PublishError, match=f"no responder for '{q}'") as e:
                await publisher.request(q, 1, timeout=5)
            check(e.value, PublishError, q)
            silent = await nc.subscribe(q)  # a subscriber that never answers
            with pytest.raises(RequestTimeout, match=f"no reply from '{q}' within 0.2 s"):
                await publisher.request(q, 1, timeout=0.2)
            await silent.unsubscribe()
            assert (await publisher.publish(q, 1)).body == b"1"  # now a stream stores it
            with pytest.raises(RequestTimeout, match=f"no reply from '{q}' within 0.2 s"):
                await publisher.request(q, 1, timeout=0.2)  # stored, but nobody consumes it
    finally:
        for name in (small, full):
            await js.delete_stream(name)
        await nc.close()


async def test_a_retry_sends_again_after_a_publish_error_never_after_an_invalid_message() -> None:
    from cordio.policy import Retry

    async def no_sleep(seconds: float) -> None:
        return None

    calls: list[Any] = []
    async with connected("memory", max_message_bytes=10) as (publisher, broker):

        @Retry(attempts=3, on=(PublishError,), sleep=no_sleep)
        async def send(payload: Any) -> None:
            calls.append(payload)
            await publisher.publish("q", payload)

        with pytest.raises(InvalidMessage, match="over the limit of 10"):
            await send("x" * 100)
        assert len(calls) == 1  # the same message would be refused again
        await broker.close()
        with pytest.raises(PublishError, match="closed"):
            await send(1)
        assert len(calls) == 1 + 3
