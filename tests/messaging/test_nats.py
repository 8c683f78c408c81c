"""The broker contract on the real NATS JetStream server (127.0.0.1:4222)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import pytest

from cordio.messaging import Broker
from cordio.messaging.nats import NatsBroker
from tests.conftest import need_server
from tests.eventually import eventually
from tests.messaging.contract import BrokerContract

URL = "nats://127.0.0.1:4222"


class TestNatsBroker(BrokerContract):
    @pytest.fixture
    async def broker(self) -> AsyncIterator[Broker]:
        need_server("NATS", "127.0.0.1", 4222)
        self.created: list[str] = []
        broker = NatsBroker(URL)
        self.declared = broker.destinations
        await broker.connect()
        yield broker
        await broker.close()
        import nats

        nc = await nats.connect(URL)
        js = nc.jetstream()
        for name in self.created:
            for suffix in ("", ".dead-letter"):
                try:
                    await js.delete_stream("CORDIO_" + (name + suffix).replace(".", "_"))
                except Exception:
                    pass
        await nc.close()

    def queue_name(self) -> str:
        name = "cordio.contract." + secrets.token_hex(4)
        self.created.append(name)
        self.declared.add(name)
        return name


async def test_connection_state_is_exposed() -> None:
    need_server("NATS", "127.0.0.1", 4222)
    broker = NatsBroker(URL)
    assert not broker.is_connected
    await broker.connect()
    assert broker.is_connected
    await broker.close()
    assert not broker.is_connected


async def test_streams_from_settings_store_matching_subjects() -> None:
    need_server("NATS", "127.0.0.1", 4222)
    import nats

    from cordio.messaging import Message
    from cordio.messaging.settings import BrokerSettings
    from tests.messaging.contract import Collector

    tag = secrets.token_hex(3)
    name = f"CORDIO_TEST_{tag}"
    settings = BrokerSettings(
        url=URL, streams={name: {"subjects": [f"shop{tag}.>"], "max_msgs": 100}}
    )
    broker = NatsBroker(URL, settings=settings)
    await broker.connect()
    try:
        await broker.publish(f"shop{tag}.orders.created", Message(b"1"))
        await broker.publish(f"shop{tag}.orders.paid", Message(b"2"))
        nc = await nats.connect(URL)
        info = await nc.jetstream().stream_info(name)
        await nc.close()
        assert (info.state.messages, info.config.max_msgs) == (2, 100)
        collector = Collector()
        await broker.subscribe(f"shop{tag}.orders.paid", collector, prefetch=5)
        await asyncio.wait_for(collector.done.wait(), 5)
        assert [m.body for m in collector.seen] == [b"2"]
    finally:
        await broker.close()
        nc = await nats.connect(URL)
        await nc.jetstream().delete_stream(name)
        await nc.close()


async def test_exchanges_are_refused_on_nats_naming_the_setting() -> None:
    from cordio.messaging.settings import BrokerSettings

    broker = NatsBroker(URL, settings=BrokerSettings(url=URL, exchanges={"e": {}}))
    with pytest.raises(ValueError, match=r"broker\.exchanges"):
        await broker.connect()


async def test_a_deleted_consumer_is_created_again() -> None:
    """The server loses the durable consumer (deleted by an operator): cordio subscribes
    again within seconds and delivers what is published after."""
    need_server("NATS", "127.0.0.1", 4222)
    import nats

    from cordio.messaging import Message
    from tests.messaging.contract import Collector

    subject = "cordio.gone." + secrets.token_hex(3)
    stream = "CORDIO_" + subject.replace(".", "_")
    broker = NatsBroker(URL)
    await broker.connect()
    try:
        collector = Collector(count=3)
        await broker.subscribe(subject, collector, prefetch=5)
        await broker.publish(subject, Message(b"before"))
        nc = await nats.connect(URL)
        js = nc.jetstream()
        await eventually(lambda: collector.seen, what="the first delivery")
        await js.delete_consumer(stream, "cordio_" + subject.replace(".", "_"))
        await broker.publish(subject, Message(b"after"))
        await asyncio.wait_for(collector.done.wait(), 10)
        await nc.close()
        bodies = [m.body for m in collector.seen]
        # the new consumer starts at the stream's first message: duplicates, never a loss
        assert bodies[0] == b"before"
        assert b"after" in bodies
    finally:
        await broker.close()
        nc = await nats.connect(URL)
        await nc.jetstream().delete_stream(stream)
        await nc.close()


async def test_publishing_into_a_stream_cordio_did_not_create() -> None:
    """A stream created first by another client stores the subject: cordio publishes to it
    and its consumer reads from it, and the stream is neither changed nor duplicated."""
    need_server("NATS", "127.0.0.1", 4222)
    import nats
    from pydantic import BaseModel

    from cordio import App
    from cordio.config import EnvSource
    from cordio.messaging import Publisher
    from cordio.testing import TestApp

    class Order(BaseModel):
        order_id: int

    tag = secrets.token_hex(3)
    stream, subject = f"ORDERS_EXT_{tag}", f"ext{tag}.orders.created"
    nc = await nats.connect(URL)
    js = nc.jetstream()
    await js.add_stream(name=stream, subjects=[f"ext{tag}.orders.>"], max_msgs=1000)
    before = (await js.stream_info(stream)).config
    app = App("svc", config=[EnvSource("svc", environ={"SVC__BROKER__URL": URL})])
    got: list[Order] = []
    arrived = asyncio.Event()

    @app.consume(subject)
    async def fulfil(order: Order) -> None:
        got.append(order)
        arrived.set()

    try:
        async with TestApp(app):
            await app.get(Publisher).publish(subject, Order(order_id=7))
            await asyncio.wait_for(arrived.wait(), 10)
            consumer = await js.consumer_info(stream, "cordio_" + subject.replace(".", "_"))
        assert got == [Order(order_id=7)]
        assert consumer.config.filter_subject == subject
        info = await js.stream_info(stream)
        assert info.config == before  # not updated
        assert info.state.messages == 1
        names = [s.config.name for s in await js.streams_info()]
        assert not [n for n in names if tag in n and n != stream]  # not duplicated
    finally:
        await js.delete_stream(stream)
        await nc.close()


async def test_a_stream_created_by_another_client_after_first_use_is_found() -> None:
    """The subject moved: cordio's own stream was deleted and another client's stream
    stores the subject now; the next publish finds it instead of recreating its own."""
    need_server("NATS", "127.0.0.1", 4222)
    import nats

    from cordio.messaging import Message

    tag = secrets.token_hex(3)
    subject = f"moved{tag}.orders"
    own, theirs = "CORDIO_" + subject.replace(".", "_"), f"THEIRS_{tag}"
    broker = NatsBroker(URL, destinations={subject})  # the app declared it
    await broker.connect()
    nc = await nats.connect(URL)
    js = nc.jetstream()
    try:
        await broker.publish(subject, Message(b"1"))  # creates cordio's own stream
        await js.delete_stream(own)
        await js.add_stream(name=theirs, subjects=[f"moved{tag}.>"])
        await broker.publish(subject, Message(b"2"))
        assert (await js.stream_info(theirs)).state.messages == 1
        names = [s.config.name for s in await js.streams_info()]
        assert own not in names
    finally:
        await broker.close()
        await js.delete_stream(theirs)
        await nc.close()
