"""Connection state: hooks, readiness, and the publish gate while the broker is down
(on the memory broker's simulated outage; the real servers are restarted in
tests/messaging/test_processes.py)."""

from __future__ import annotations

import asyncio

import pytest

from cordio import App
from cordio.messaging import MemoryBroker, Message, Publisher
from cordio.messaging.connection import ConnectionState, PublishError
from cordio.messaging.settings import BrokerSettings
from cordio.testing import TestApp
from tests.eventually import eventually
from tests.messaging.contract import Collector


async def test_publish_while_down_waits_for_the_connection_then_is_delivered() -> None:
    broker = MemoryBroker(destinations={"q"})
    await broker.connect()
    broker.disconnect()
    waiting = asyncio.ensure_future(broker.publish("q", Message(b"kept")))
    await eventually(lambda: broker.state.waiting == 1, what="the publish waiting")
    assert not waiting.done()
    broker.reconnect()
    await waiting
    assert [m.body for m in broker.take("q")] == [b"kept"]


async def test_publish_buffer_full_raises_at_once_naming_the_setting() -> None:
    broker = MemoryBroker(
        settings=BrokerSettings(publish_buffer=2, publish_timeout=30), destinations={"q"}
    )
    await broker.connect()
    broker.disconnect()
    waiting = [asyncio.ensure_future(broker.publish("q", Message(b"%d" % i))) for i in range(2)]
    await eventually(lambda: broker.state.waiting == 2, what="two publishes waiting")
    with pytest.raises(PublishError, match=r"2 publishes already wait \(broker.publish_buffer\)"):
        await broker.publish("q", Message(b"over"))
    broker.reconnect()
    await asyncio.gather(*waiting)
    assert len(broker.take("q")) == 2  # the refused one is not stored; the others are


async def test_publish_raises_after_publish_timeout_while_down() -> None:
    broker = MemoryBroker(settings=BrokerSettings(publish_timeout=0.2), destinations={"q"})
    await broker.connect()
    broker.disconnect()
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(PublishError, match=r"broker is down.*within 0.2 s"):
        await broker.publish("q", Message(b"x"))
    assert loop.time() - started < 1.0
    broker.reconnect()
    assert broker.take("q") == []  # it raised, so it must not have been stored either


async def test_publish_after_close_raises() -> None:
    broker = MemoryBroker(destinations={"q"})
    await broker.connect()
    await broker.close()
    with pytest.raises(PublishError, match="closed"):
        await broker.publish("q", Message(b"x"))


async def test_interrupted_publish_is_sent_again_until_confirmed() -> None:
    state = ConnectionState("test", publish_timeout=5)
    state.changed(True)
    calls = 0

    async def attempt() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            state.changed(False)
            asyncio.get_running_loop().call_later(0.05, state.changed, True)
            raise ConnectionResetError("dropped before the confirm")

    await state.send(attempt, "q")
    assert calls == 2


async def test_a_refusal_is_not_retried() -> None:
    state = ConnectionState("test")
    state.changed(True)
    calls = 0

    async def attempt() -> None:
        nonlocal calls
        calls += 1
        raise PublishError("refused")

    with pytest.raises(PublishError, match="refused"):
        await state.send(attempt, "q")
    assert calls == 1


async def test_unsettled_deliveries_come_back_after_an_outage() -> None:
    broker = MemoryBroker(destinations={"q"})
    await broker.connect()
    holder = Collector("hold", count=2)
    await broker.subscribe("q", holder, prefetch=10)
    await broker.publish("q", Message(b"a"))
    await broker.publish("q", Message(b"b"))
    await asyncio.wait_for(holder.done.wait(), 1)
    broker.disconnect()
    with pytest.raises(ConnectionError, match="connection it came on is gone"):
        await holder.held[0].ack()
    holder.count, holder.done = 4, asyncio.Event()
    broker.reconnect()
    await asyncio.wait_for(holder.done.wait(), 1)
    again = holder.seen[2:]
    assert [m.body for m in again] == [b"a", b"b"]
    assert all(m.redelivered for m in again)


async def test_hooks_see_each_state_and_readiness_follows() -> None:
    app = App("svc")
    seen: list[str] = []
    reconnects = asyncio.Event()

    @app.on_broker()
    def every(state: str) -> None:
        seen.append(state)

    @app.on_broker("reconnected")
    async def resync(state: str) -> None:
        reconnects.set()

    @app.on_broker("disconnected")
    def broken(state: str) -> None:
        raise RuntimeError("a failing hook is logged, never raised into the broker")

    @app.consume("q")
    async def handle(n: int) -> None:
        return None

    async with TestApp(app) as client:
        broker: MemoryBroker = app.get("broker")
        broker.disconnect()
        assert (await client.get("/health/ready")).status_code == 503
        broker.reconnect()
        await asyncio.wait_for(reconnects.wait(), 1)
        assert (await client.get("/health/ready")).status_code == 200
    assert seen == ["connected", "disconnected", "reconnected"]  # no "disconnected" at stop


def test_unknown_hook_state_is_refused() -> None:
    app = App("svc")
    with pytest.raises(ValueError, match="unknown connection states"):
        app.on_broker("gone")


async def test_publisher_passes_routing_key_to_exchanges() -> None:
    settings = BrokerSettings(
        exchanges={"events": {"type": "direct"}},
        queues={"billing": {"bindings": [{"exchange": "events", "routing_key": "paid"}]}},
    )
    broker = MemoryBroker(settings=settings)
    await broker.connect()
    publisher = Publisher(broker, settings.max_message_bytes)
    await publisher.publish("events", {"order": 1}, routing_key="paid")
    assert [m.body for m in broker.take("billing")] == [b'{"order":1}']


async def test_an_app_that_only_publishes_gets_its_publisher() -> None:
    """Asking for ``Publisher`` is enough; no ``app.consume`` or ``app.messaging`` needed."""
    app = App("svc")

    @app.http.post("/send")
    async def send(publisher: Publisher) -> dict[str, bool]:
        await publisher.publish("q", {"a": 1}, declare=True)
        return {"sent": True}

    async with TestApp(app) as client:
        assert (await client.post("/send")).json() == {"sent": True}
        broker: MemoryBroker = app.get("broker")
        assert [m.body for m in broker.take("q")] == [b'{"a":1}']


async def test_reconnect_attempts_back_off_with_jitter_and_reset_when_up() -> None:
    state = ConnectionState("test")
    state.changed(True)
    applied: list[float] = []
    slept: list[float] = []
    up_after = 6
    gate = asyncio.Event()

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) == up_after:
            state.changed(True)
            gate.set()
        await asyncio.sleep(0)

    state.backoff(applied.append, initial=0.5, cap=4.0, sleep=fake_sleep)
    assert applied == [0.5]
    state.changed(False)
    await asyncio.wait_for(gate.wait(), 1)
    await eventually(lambda: applied[-1] == 0.5, what="the first interval applied again")
    assert slept == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    for delay, interval in zip(slept, applied[1:], strict=False):
        assert delay / 2 <= interval <= delay
    assert applied[-1] == 0.5  # back to the first interval once connected
