"""cordio.testing for consumers: the in-memory broker in place of the configured one,
publishing through the app, and waiting until everything published was handled."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from cordio import App, StartupError
from cordio.config import EnvSource
from cordio.messaging import Publisher
from cordio.testing import TestApp


class Order(BaseModel):
    id: int


def make_app() -> tuple[App, list[int]]:
    # configured for a RabbitMQ server that does not exist: the test must not need it
    environ = {
        "SHOP__BROKER__URL": "amqp://guest:guest@127.0.0.1:1/",
        "SHOP__BROKER__REQUEUE_DELAY": "0.01",
        "SHOP__BROKER__MAX_ATTEMPTS": "2",
    }
    app = App("shop", config=[EnvSource("shop", environ=environ)])
    handled: list[int] = []

    @app.consume("orders")
    async def take(order: Order) -> None:
        if order.id < 0:
            raise ValueError("negative id")
        handled.append(order.id)

    return app, handled


async def test_memory_broker_replaces_the_configured_one_and_drained_waits() -> None:
    app, handled = make_app()
    async with TestApp(app, memory_broker=True) as client:
        for i in range(1, 4):
            await client.publish("orders", Order(id=i))
        await client.publish("orders", {"id": -1})  # fails twice, then dead-lettered
        await client.publish("orders", {"id": "x"})  # poison
        await client.drained()
        assert handled == [1, 2, 3]
        dead = client.broker.take("orders.dead-letter")
        assert len(dead) == 2


async def test_without_memory_broker_the_configured_broker_is_used() -> None:
    app, _ = make_app()
    with pytest.raises(StartupError, match=r"^resource 'broker' failed to start: ") as caught:
        async with TestApp(app):
            pass
    # the configured RabbitMQ (port 1, nothing listens) was tried, not the memory broker
    assert isinstance(caught.value.__cause__, ConnectionError)
    assert "'127.0.0.1', 1" in str(caught.value.__cause__)


async def test_drained_times_out_while_a_handler_is_stuck() -> None:
    import asyncio

    app = App("stuck")
    release = asyncio.Event()

    @app.consume("q")
    async def wait(n: int) -> None:
        await release.wait()

    async with TestApp(app) as client:
        await client.publish("q", 1)
        with pytest.raises(TimeoutError):
            await client.drained(timeout=0.1)
        release.set()
        await client.drained()


async def test_memory_broker_for_an_app_that_only_publishes() -> None:
    """No consumer, no ``app.messaging``: an HTTP handler asking for ``Publisher`` is enough."""
    environ = {"SHOP__BROKER__URL": "amqp://guest:guest@127.0.0.1:1/"}
    app = App("shop", config=[EnvSource("shop", environ=environ)])

    @app.http.post("/orders")
    async def create(order: Order, publisher: Publisher) -> dict[str, int]:
        await publisher.publish("orders", order, declare=True)
        return {"id": order.id}

    async with TestApp(app, memory_broker=True) as client:
        assert (await client.post("/orders", json={"id": 7})).json() == {"id": 7}
        assert [m.body for m in client.broker.take("orders")] == [b'{"id":7}']
    assert "broker" not in app.overrides  # nothing of the test's broker stays behind


async def test_readiness_follows_the_memory_broker_in_place_of_the_configured_one() -> None:
    app, _ = make_app()
    async with TestApp(app, memory_broker=True) as client:
        assert (await client.get("/health/ready")).status_code == 200
        client.broker.disconnect()
        down = await client.get("/health/ready")
        assert down.status_code == 503
        assert down.json()["resources"]["broker"]["status"] == "down"
        client.broker.reconnect()
        assert (await client.get("/health/ready")).status_code == 200
    assert app.resources["broker"].factory == app.messaging.broker  # the app's own again
