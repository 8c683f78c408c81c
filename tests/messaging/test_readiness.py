"""Readiness follows the broker connection on every broker: ``/health/ready`` answers 503
(the ``broker`` resource down) while the connection is lost, 200 once it is back."""

from __future__ import annotations

import pytest

from cordio import App
from cordio.config import EnvSource
from cordio.messaging import Publisher
from cordio.testing import TestApp
from tests.conftest import need_server
from tests.eventually import eventually
from tests.messaging.proxy import proxy

SERVERS = {"amqp": ("RabbitMQ", 5672), "nats": ("NATS", 4222)}


@pytest.mark.parametrize("kind", ["amqp", "nats"])
async def test_readiness_follows_the_connection_on_real_brokers(kind: str) -> None:
    """``/health/ready`` answers 503 (broker down) while the connection is cut, 200 again
    once the client reconnected: as on the memory broker."""
    need_server(SERVERS[kind][0], "127.0.0.1", SERVERS[kind][1])
    async with proxy(SERVERS[kind][1]) as cut_off:
        url = (
            f"amqp://guest:guest@127.0.0.1:{cut_off.port}/"
            if kind == "amqp"
            else f"nats://127.0.0.1:{cut_off.port}"
        )
        environ = {"R__BROKER__URL": url, "R__BROKER__RECONNECT_MAX_DELAY": "0.5"}
        app = App("r", config=[EnvSource("r", environ=environ)])
        assert app.messaging is not None  # registers the broker and publisher resources
        app.dependency(Publisher)  # the broker runs, though no handler asks for it

        async def answers(expected: int) -> bool:
            return bool((await client.get("/health/ready")).status_code == expected)

        async with TestApp(app) as client:
            assert await answers(200)
            await cut_off.cut()
            await eventually(lambda: answers(503), what="readiness 503 while cut")
            down = await client.get("/health/ready")
            assert down.json()["resources"]["broker"]["status"] == "down"
            await cut_off.restore()
            await eventually(lambda: answers(200), what="readiness 200 once back")
