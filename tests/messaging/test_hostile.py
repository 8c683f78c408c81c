"""Hostile input from raw clients on the real brokers: headers of every AMQP type, a forged
attempt header, an unknown content type, an oversized body, a reply address that goes
nowhere. Each is handled or dead-lettered with the reason; the consumer keeps serving."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import pytest
from pydantic import BaseModel

from cordio import App
from cordio.config import EnvSource
from cordio.messaging import Message
from cordio.messaging.message import DEATH_REASON
from cordio.testing import TestApp
from tests.conftest import need_server
from tests.eventually import eventually
from tests.messaging.test_processes import URLS, delete_source, make_broker


class Item(BaseModel):
    n: int


@pytest.fixture(params=["amqp", "nats"])
def kind(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    need_server(name, "127.0.0.1", {"amqp": 5672, "nats": 4222}[name])
    return name


async def send_raw(kind: str, source: str, body: bytes, **props: Any) -> None:
    """Publish as a foreign client would (not through cordio)."""
    if kind == "amqp":
        import aio_pika

        connection = await aio_pika.connect(URLS[kind])
        async with connection:
            channel = await connection.channel()
            await channel.declare_queue(source, durable=True)
            await channel.default_exchange.publish(
                aio_pika.Message(body, **props), routing_key=source
            )
    else:
        import nats

        nc = await nats.connect(URLS[kind])
        js = nc.jetstream()
        headers = {k: str(v) for k, v in props.get("headers", {}).items()}
        if "content_type" in props:
            headers["Content-Type"] = props["content_type"]
        if "reply_to" in props:
            headers["Reply-To"] = props["reply_to"]
        await js.publish(source, body, headers=headers or None)
        await nc.close()


async def test_hostile_input_is_handled_or_dead_lettered_and_serving_goes_on(kind: str) -> None:
    source = "cordio.hostile." + secrets.token_hex(4)
    environ = {"H__BROKER__URL": URLS[kind], "H__BROKER__MAX_MESSAGE_BYTES": "1024"}
    app = App("h", config=[EnvSource("h", environ=environ)])
    seen: list[tuple[int, dict[str, str], int]] = []

    @app.consume(source)
    async def handle(item: Item, message: Message) -> Item:
        seen.append((item.n, message.headers, message.attempt))
        return item  # a reply, when one was asked for

    publisher = make_broker(kind)
    await publisher.connect()
    await publisher.publish(source, Message(b'{"n": 0}'), declare=True)  # creates the stream
    await publisher.close()
    hostile_headers = {
        "x-int": 5,
        "x-bytes": bytearray(b"\xff\xfe raw"),
        "x-nested": {"a": [1, 2, {"b": None}]},
        "x-none": None,
        "x-bool": True,
        "x-cordio-attempt": "99999999999999999999999",
        "x-delivery-count": "99",  # only RabbitMQ's own count, on a redelivery, is believed
    }
    await send_raw(kind, source, b'{"n": 1}', headers=hostile_headers)
    await send_raw(kind, source, b"n=2", content_type="text/plain")
    await send_raw(kind, source, b'{"n": 3, "pad": "' + b"x" * 2000 + b'"}')
    await send_raw(kind, source, b'{"n": 4}', reply_to="cordio.nowhere." + secrets.token_hex(3))
    await send_raw(kind, source, b'{"n": 5}')
    try:
        async with TestApp(app):
            await eventually(
                lambda: {n for n, _, _ in seen} >= {0, 1, 4, 5},
                timeout=30,
                what="messages 0, 1, 4 and 5 handled",
            )
        by_n = {n: (headers, attempt) for n, headers, attempt in seen}
        headers, attempt = by_n[1]
        assert attempt == 1  # a forged attempt number is not believed
        assert all(isinstance(v, str) for v in headers.values())
        assert headers["x-int"] == "5"
        dead = await drain_dead(kind, source, 2)
        reasons = sorted(m.headers[DEATH_REASON] for m in dead)
        assert "content-type 'text/plain'" in reasons[0] + reasons[1]
        assert "over the limit of 1024" in reasons[0] + reasons[1]
    finally:
        await delete_source(kind, source)


async def drain_dead(kind: str, source: str, expect: int) -> list[Message]:
    from tests.messaging.contract import Collector

    broker = make_broker(kind)
    await broker.connect()
    try:
        collector = Collector(count=expect)
        await broker.subscribe(source + ".dead-letter", collector, prefetch=10)
        await asyncio.wait_for(collector.done.wait(), 10)
        return collector.seen
    finally:
        await broker.close()
