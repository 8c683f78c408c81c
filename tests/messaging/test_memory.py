"""The broker contract on the in-memory broker, and what only it has."""

from __future__ import annotations

import pytest

from cordio.messaging import Broker, MemoryBroker, Message
from tests.messaging.contract import BrokerContract


class TestMemoryBroker(BrokerContract):
    async def make_broker(self) -> Broker:
        broker = MemoryBroker()
        await broker.connect()
        return broker


async def test_closed_broker_refuses_and_size_limit() -> None:
    broker = MemoryBroker(max_message_bytes=10, destinations={"q"})
    with pytest.raises(ConnectionError):
        await broker.publish("q", Message(b"x"))
    await broker.connect()
    with pytest.raises(ValueError, match="over the limit"):
        await broker.publish("q", Message(b"x" * 11))
    await broker.publish("q", Message(b"ok"))
    assert broker.depth("q") == 1
