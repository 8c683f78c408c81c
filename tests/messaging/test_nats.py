"""The broker contract on the real NATS JetStream server (127.0.0.1:4222)."""

from __future__ import annotations

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
