"""The broker contract on the real NATS JetStream server (127.0.0.1:4222)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import pytest

from cordio.messaging import Broker
from cordio.messaging.nats import NatsBroker
from tests.conftest import need_server
from tests.messaging.contract import BrokerContract

URL = "nats://127.0.0.1:4222"


class TestNatsBroker(BrokerContract):
    @pytest.fixture
    async def broker(self) -> AsyncIterator[Broker]:
        need_server("NATS", "127.0.0.1", 4222)
        self.created: list[str] = []
        broker = NatsBroker(URL)
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
        for _ in range(100):
            if collector.seen:
                break
            await asyncio.sleep(0.05)
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
