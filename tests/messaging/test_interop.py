"""Interoperability with clients that know nothing of cordio, on the real servers.

Plain aio-pika and nats-py publishers, consumers, requesters and responders exchange
messages with cordio's consumers and ``Publisher`` both ways: JSON and MessagePack bodies
told apart by the content type, headers, message ids, request/reply; with the queues,
exchanges and streams declared by the other side first, and by cordio first.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import AsyncIterator
from typing import Any

import msgpack
import pytest
from pydantic import BaseModel

from cordio import App
from cordio.config import EnvSource
from cordio.messaging import Message, Publisher
from cordio.testing import TestApp
from tests.conftest import need_server

AMQP = "amqp://guest:guest@127.0.0.1:5672/"
NATS = "nats://127.0.0.1:4222"
MSGPACK = "application/msgpack"


class Item(BaseModel):
    n: int
    note: str = ""


class Add(BaseModel):
    a: int
    b: int


class Sum(BaseModel):
    total: int


def strict_json(body: bytes) -> Any:
    """JSON as RFC 8259 has it (Python's json accepts NaN and Infinity; others do not)."""

    def refuse(token: str) -> Any:
        raise ValueError(f"not JSON: {token}")

    return json.loads(body, parse_constant=refuse)


def app_for(url: str, **settings: str) -> App:
    environ = {"SVC__BROKER__URL": url, **{f"SVC__BROKER__{k}": v for k, v in settings.items()}}
    return App("svc", config=[EnvSource("svc", environ=environ)])


def publishing(app: App) -> App:
    """``app`` with its ``Publisher`` started, though no handler asks for it."""
    assert app.messaging is not None  # registers the broker and publisher resources
    app.dependency(Publisher)
    return app


class Seen:
    """What a cordio consumer received, with an event per expected count."""

    def __init__(self, count: int) -> None:
        self.messages: list[tuple[Item, Message]] = []
        self.count = count
        self.done = asyncio.Event()

    def add(self, item: Item, message: Message) -> None:
        self.messages.append((item, message))
        if len(self.messages) >= self.count:
            self.done.set()

    def by_id(self) -> dict[str, tuple[Item, Message]]:
        return {m.message_id: (item, m) for item, m in self.messages}


# -- RabbitMQ --------------------------------------------------------------------------


@pytest.fixture
async def amqp() -> AsyncIterator[Any]:
    """A plain aio-pika channel; queues and exchanges named in ``channel.created`` are
    deleted at the end."""
    need_server("RabbitMQ", "127.0.0.1", 5672)
    import aio_pika

    connection = await aio_pika.connect(AMQP)
    channel = await connection.channel()
    created: list[str] = []
    channel.created = created
    try:
        yield channel
    finally:
        cleanup = await connection.channel()
        for name in created:
            for suffix in ("", ".dead-letter", ".retry"):
                await cleanup.queue_delete(name + suffix)
            await cleanup.exchange_delete(name)
        await connection.close()


def amqp_name(channel: Any, what: str) -> str:
    name = f"cordio.interop.{what}.{secrets.token_hex(3)}"
    channel.created.append(name)
    return name


@pytest.mark.parametrize("declared_by", ["plain", "cordio"])
async def test_rabbitmq_plain_publisher_to_cordio_consumer(amqp: Any, declared_by: str) -> None:
    import aio_pika

    queue = amqp_name(amqp, "in")
    if declared_by == "plain":  # a quorum queue cordio's settings know nothing about
        await amqp.declare_queue(queue, durable=True, arguments={"x-queue-type": "quorum"})
    app = app_for(AMQP)
    seen = Seen(4)

    @app.consume(queue)
    async def handle(item: Item, message: Message) -> None:
        seen.add(item, message)

    async def send_all() -> None:
        sends = [
            (json.dumps({"n": 1}).encode(), "application/json", "plain-1"),
            (msgpack.packb({"n": 2, "note": "packed"}), MSGPACK, "plain-2"),
            (b'{"n": 3}', "application/json; charset=utf-8", "plain-3"),
            (b'{"n": 4}', None, "plain-4"),  # no content type: JSON
        ]
        for body, content_type, message_id in sends:
            await amqp.default_exchange.publish(
                aio_pika.Message(
                    body,
                    content_type=content_type,
                    message_id=message_id,
                    headers={"x-tenant": "acme", "x-count": 3, "x-raw": bytearray(b"bytes")},
                ),
                routing_key=queue,
            )

    if declared_by == "plain":
        await send_all()
    async with TestApp(app):
        if declared_by == "cordio":
            await send_all()
        await asyncio.wait_for(seen.done.wait(), 10)
    got = seen.by_id()
    assert {k: v[0] for k, v in got.items()} == {
        "plain-1": Item(n=1),
        "plain-2": Item(n=2, note="packed"),
        "plain-3": Item(n=3),
        "plain-4": Item(n=4),
    }
    headers = got["plain-1"][1].headers
    assert (headers["x-tenant"], headers["x-count"], headers["x-raw"]) == ("acme", "3", "bytes")
    assert got["plain-2"][1].content_type == MSGPACK


@pytest.mark.parametrize("declared_by", ["plain", "cordio"])
async def test_rabbitmq_cordio_publisher_to_plain_consumers(amqp: Any, declared_by: str) -> None:
    """To a queue by name, and to a topic exchange a plain client bound its queue to."""
    import aio_pika

    queue, exchange, bound = (amqp_name(amqp, w) for w in ("out", "events", "bound"))
    environ = {"SVC__BROKER__URL": AMQP, f"SVC__BROKER__EXCHANGES__{exchange}__TYPE": "topic"}
    app = publishing(App("svc", config=[EnvSource("svc", environ=environ)]))
    app.publishes(queue, Item)

    async def plain_side() -> tuple[Any, Any]:
        events = await amqp.declare_exchange(exchange, aio_pika.ExchangeType.TOPIC, durable=True)
        by_name = await amqp.declare_queue(queue, durable=True)
        by_topic = await amqp.declare_queue(bound, durable=True)
        await by_topic.bind(events, routing_key="order.#")
        return by_name, by_topic

    if declared_by == "plain":
        by_name, by_topic = await plain_side()
    async with TestApp(app):
        publisher = app.get(Publisher)
        if declared_by == "cordio":
            await publisher.publish(queue, Item(n=0), message_id="first")  # declares it
        if declared_by == "cordio":
            by_name, by_topic = await plain_side()
        await publisher.publish(
            queue, Item(n=1), headers={"x-tenant": "acme"}, message_id="cordio-1"
        )
        await publisher.publish(
            exchange,
            Item(n=2, note="packed"),
            routing_key="order.created",
            content_type=MSGPACK,
            message_id="cordio-2",
        )
    if declared_by == "cordio":
        first = await by_name.get(timeout=5)
        await first.ack()
        assert first.message_id == "first"
    one = await by_name.get(timeout=5)
    await one.ack()
    two = await by_topic.get(timeout=5)
    await two.ack()
    assert (one.content_type, one.message_id, one.headers) == (
        "application/json",
        "cordio-1",
        {"x-tenant": "acme"},
    )
    assert one.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert strict_json(one.body) == {"n": 1, "note": ""}
    assert (two.content_type, two.message_id, two.routing_key) == (
        MSGPACK,
        "cordio-2",
        "order.created",
    )
    assert msgpack.unpackb(two.body) == {"n": 2, "note": "packed"}


@pytest.mark.parametrize("reply_queue", ["exclusive", "direct reply-to"])
async def test_rabbitmq_plain_request_to_cordio_handler(amqp: Any, reply_queue: str) -> None:
    import aio_pika

    source = amqp_name(amqp, "rpc")
    app = app_for(AMQP)

    @app.consume(source)
    async def add(request: Add) -> Sum:
        return Sum(total=request.a + request.b)

    replies: asyncio.Queue[Any] = asyncio.Queue()
    if reply_queue == "exclusive":
        inbox = await amqp.declare_queue(exclusive=True, auto_delete=True)
        address = inbox.name
    else:  # RabbitMQ's pseudo-queue; consumed with no_ack before publishing
        inbox = await amqp.get_queue("amq.rabbitmq.reply-to", ensure=False)
        address = "amq.rabbitmq.reply-to"
    await inbox.consume(replies.put, no_ack=True)
    async with TestApp(app):
        for correlation_id, content_type, body in (
            ("c-json", "application/json", b'{"a": 2, "b": 3}'),
            ("c-pack", MSGPACK, msgpack.packb({"a": 4, "b": 5})),
        ):
            await amqp.default_exchange.publish(
                aio_pika.Message(
                    body, content_type=content_type, correlation_id=correlation_id, reply_to=address
                ),
                routing_key=source,
            )
        first = await asyncio.wait_for(replies.get(), 10)
        second = await asyncio.wait_for(replies.get(), 10)
    by_id = {r.correlation_id: r for r in (first, second)}
    assert by_id["c-json"].content_type == "application/json"
    assert strict_json(by_id["c-json"].body) == {"total": 5}
    assert by_id["c-pack"].content_type == MSGPACK
    assert msgpack.unpackb(by_id["c-pack"].body) == {"total": 9}


async def test_rabbitmq_cordio_request_to_plain_responder(amqp: Any) -> None:
    import aio_pika

    source = amqp_name(amqp, "responder")
    queue = await amqp.declare_queue(source, durable=True)

    async def respond(request: Any) -> None:
        async with request.process():
            numbers = msgpack.unpackb(request.body)
            packed = request.headers.get("x-packed") == "yes"
            total = {"total": numbers["a"] + numbers["b"]}
            await amqp.default_exchange.publish(
                aio_pika.Message(
                    msgpack.packb(total) if packed else json.dumps(total).encode(),
                    content_type=MSGPACK if packed else None,  # none: JSON
                    correlation_id=request.correlation_id,
                ),
                routing_key=request.reply_to,
            )

    await queue.consume(respond)
    app = publishing(app_for(AMQP))
    async with TestApp(app):
        publisher = app.get(Publisher)
        packed = await publisher.request(
            source, Add(a=1, b=2), returns=Sum, headers={"x-packed": "yes"}, content_type=MSGPACK
        )
        plain = await publisher.request(source, Add(a=3, b=4), content_type=MSGPACK)
    assert packed == Sum(total=3)
    assert plain == {"total": 7}


# -- NATS --------------------------------------------------------------------------------


@pytest.fixture
async def js() -> AsyncIterator[Any]:
    """A plain nats-py JetStream context; streams named in ``js.created`` are deleted at the
    end, and so are cordio's streams for the subjects in ``js.subjects``."""
    need_server("NATS", "127.0.0.1", 4222)
    import nats

    nc = await nats.connect(NATS)
    context = nc.jetstream()
    context.nc = nc
    context.created = []
    context.subjects = []
    try:
        yield context
    finally:
        names = list(context.created)
        for subject in context.subjects:
            names += ["CORDIO_" + (subject + s).replace(".", "_") for s in ("", ".dead-letter")]
        for name in names:
            with contextlib.suppress(Exception):  # not every test creates each one
                await context.delete_stream(name)
        await nc.close()


def nats_subject(js: Any, what: str) -> str:
    subject = f"cordio.interop.{what}.{secrets.token_hex(3)}"
    js.subjects.append(subject)
    return subject


async def plain_stream(js: Any, subject: str) -> str:
    """A stream created by the plain client, storing the subject's whole namespace."""
    name = "EXT_" + secrets.token_hex(4)
    js.created.append(name)
    await js.add_stream(name=name, subjects=[subject.rsplit(".", 1)[0] + ".>"])
    return name


@pytest.mark.parametrize("declared_by", ["plain", "cordio"])
async def test_nats_plain_publisher_to_cordio_consumer(js: Any, declared_by: str) -> None:
    subject = nats_subject(js, "in")
    if declared_by == "plain":
        await plain_stream(js, subject)
    app = app_for(NATS)
    seen = Seen(4)

    @app.consume(subject)
    async def handle(item: Item, message: Message) -> None:
        seen.add(item, message)

    async def send_all() -> None:
        sends = [
            (b'{"n": 1}', {"Content-Type": "application/json", "x-tenant": "acme"}),
            (msgpack.packb({"n": 2, "note": "packed"}), {"Content-Type": MSGPACK}),
            (msgpack.packb({"n": 3}), {"content-type": MSGPACK}),  # another spelling
            (b'{"n": 4}', {}),  # no headers at all: JSON, an id from the stream sequence
        ]
        for i, (body, headers) in enumerate(sends, 1):
            if headers:
                headers["Nats-Msg-Id"] = f"plain-{i}"
            await js.publish(subject, body, headers=headers or None)

    if declared_by == "plain":
        await send_all()
    async with TestApp(app):
        if declared_by == "cordio":
            await send_all()
        await asyncio.wait_for(seen.done.wait(), 10)
    items = {m.message_id: item for item, m in seen.messages}
    unnamed = [key for key in items if not key.startswith("plain-")]
    assert len(unnamed) == 1
    assert unnamed[0].endswith(":4")  # <stream>:<sequence>
    assert {k: items[k] for k in ("plain-1", "plain-2", "plain-3")} == {
        "plain-1": Item(n=1),
        "plain-2": Item(n=2, note="packed"),
        "plain-3": Item(n=3),
    }
    assert items[unnamed[0]] == Item(n=4)
    headers = seen.by_id()["plain-1"][1].headers
    assert headers == {"x-tenant": "acme"}  # transport headers are not the handler's


@pytest.mark.parametrize("declared_by", ["plain", "cordio"])
async def test_nats_cordio_publisher_to_plain_consumers(js: Any, declared_by: str) -> None:
    """A plain JetStream pull consumer and a plain core subscriber both get cordio's
    messages: body, Content-Type, Nats-Msg-Id, the publisher's headers."""
    subject = nats_subject(js, "out")
    if declared_by == "plain":
        await plain_stream(js, subject)
    core = await js.nc.subscribe(subject)
    app = publishing(app_for(NATS))
    app.publishes(subject, Item)
    async with TestApp(app):
        publisher = app.get(Publisher)
        await publisher.publish(subject, Item(n=1), headers={"x-tenant": "acme"}, message_id="c-1")
        await publisher.publish(
            subject, Item(n=2, note="packed"), content_type=MSGPACK, message_id="c-2"
        )
    pull = await js.pull_subscribe(subject, durable="plain")  # the stream, whoever made it
    stored = await pull.fetch(2, timeout=5)
    live = [await core.next_msg(timeout=5) for _ in range(2)]
    for one, two in (stored, live):
        assert one.headers["Content-Type"] == "application/json"
        assert (one.headers["Nats-Msg-Id"], one.headers["x-tenant"]) == ("c-1", "acme")
        assert strict_json(one.data) == {"n": 1, "note": ""}
        assert (two.headers["Content-Type"], two.headers["Nats-Msg-Id"]) == (MSGPACK, "c-2")
        assert msgpack.unpackb(two.data) == {"n": 2, "note": "packed"}
    for msg in stored:
        await msg.ack()


@pytest.mark.parametrize("declared_by", ["plain", "cordio"])
async def test_nats_plain_request_to_cordio_handler(js: Any, declared_by: str) -> None:
    """The plain requester publishes to the stream with Reply-To (its inbox) and
    Correlation-Id headers; the reply comes back there with the same Correlation-Id."""
    subject = nats_subject(js, "rpc")
    if declared_by == "plain":
        await plain_stream(js, subject)
    app = app_for(NATS)

    @app.consume(subject)
    async def add(request: Add) -> Sum:
        return Sum(total=request.a + request.b)

    inbox = js.nc.new_inbox()
    replies = await js.nc.subscribe(inbox)
    async with TestApp(app):
        await js.publish(
            subject,
            msgpack.packb({"a": 2, "b": 3}),
            headers={"Reply-To": inbox, "Correlation-Id": "c-1", "Content-Type": MSGPACK},
        )
        await js.publish(subject, b'{"a": 4, "b": 5}', headers={"Reply-To": inbox})
        first = await replies.next_msg(timeout=10)
        second = await replies.next_msg(timeout=10)
    by_body = {msg.headers.get("Correlation-Id"): msg for msg in (first, second)}
    assert by_body["c-1"].headers["Content-Type"] == MSGPACK
    assert msgpack.unpackb(by_body["c-1"].data) == {"total": 5}
    assert by_body[None].headers["Content-Type"] == "application/json"
    assert strict_json(by_body[None].data) == {"total": 9}


async def test_nats_cordio_request_to_plain_responders(js: Any) -> None:
    """Core NATS responders on a subject no stream stores (``msg.respond`` with no headers:
    JSON; MessagePack with a Content-Type header), and a plain JetStream consumer answering
    to the Reply-To header without a Correlation-Id."""
    json_subject, packed_subject = nats_subject(js, "core"), nats_subject(js, "packed")
    stored_subject = nats_subject(js, "stored")

    async def respond_json(msg: Any) -> None:
        numbers = json.loads(msg.data)
        await msg.respond(json.dumps({"total": numbers["a"] + numbers["b"]}).encode())

    async def respond_packed(msg: Any) -> None:
        numbers = json.loads(msg.data)
        body = msgpack.packb({"total": numbers["a"] - numbers["b"]})
        await js.nc.publish(msg.reply, body, headers={"Content-Type": MSGPACK})

    await js.nc.subscribe(json_subject, cb=respond_json)
    await js.nc.subscribe(packed_subject, cb=respond_packed)
    await plain_stream(js, stored_subject)
    pull = await js.pull_subscribe(stored_subject, durable="plain")

    async def answer_stored() -> None:
        (msg,) = await pull.fetch(1, timeout=10)
        numbers = json.loads(msg.data)
        await js.nc.publish(
            msg.headers["Reply-To"],
            msgpack.packb({"total": numbers["a"] * numbers["b"]}),
            headers={"Content-Type": MSGPACK},
        )
        await msg.ack()

    app = publishing(app_for(NATS))
    async with TestApp(app):
        publisher = app.get(Publisher)
        assert await publisher.request(json_subject, Add(a=1, b=2), returns=Sum) == Sum(total=3)
        assert await publisher.request(packed_subject, Add(a=5, b=2)) == {"total": 3}
        answering = asyncio.ensure_future(answer_stored())
        stored = await publisher.request(stored_subject, Add(a=3, b=4), returns=Sum)
        await answering
    assert stored == Sum(total=12)
