"""Consumers on the memory broker: ack, requeue, dead-letter, poison, shutdown."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from pydantic import BaseModel, Field

from cordio import App, Context
from cordio.config import EnvSource
from cordio.messaging import MemoryBroker, Message, MessageContext, Publisher
from cordio.messaging.message import DEATH_ATTEMPTS, DEATH_REASON
from cordio.testing import TestApp
from tests.eventually import eventually
from tests.messaging.contract import Collector


class OrderCreated(BaseModel):
    order_id: int = Field(ge=1)
    item: str


def make_app(**settings: str) -> App:
    environ = {"SVC__BROKER__REQUEUE_DELAY": "0", "SVC__BROKER__MAX_ATTEMPTS": "3"}
    environ.update({f"SVC__{k}": v for k, v in settings.items()})
    return App("svc", config=[EnvSource("svc", environ=environ)])


async def test_handled_messages_are_acked_with_context() -> None:
    app = make_app()
    seen: list[tuple[int, str, int, bool]] = []

    @app.consume("orders.created")
    async def fulfil(event: OrderCreated, ctx: Context, raw: Message) -> None:
        assert isinstance(ctx, MessageContext)
        seen.append((event.order_id, event.item, ctx.attempt, raw is ctx.message))

    @app.http.post("/publish")
    async def publish(publisher: Publisher) -> str:
        message = await publisher.publish(
            "orders.created", OrderCreated(order_id=7, item="tea"), headers={"k": "v"}
        )
        return message.message_id

    async with TestApp(app) as client:
        response = await client.post("/publish")
        assert response.status_code == 200
        await eventually(lambda: len(seen) == 1)
        broker: MemoryBroker = app.get("broker")
        assert broker.depth("orders.created") == 0
        assert broker.depth("orders.created.dead-letter") == 0
    assert seen == [(7, "tea", 1, True)]


async def test_failures_are_retried_then_dead_lettered_with_reason() -> None:
    app = make_app()
    attempts: list[int] = []

    @app.consume("jobs")
    async def job(payload: dict[str, Any], ctx: Context) -> None:
        attempts.append(ctx.attempt)
        raise RuntimeError("downstream said no")

    async with TestApp(app):
        broker: MemoryBroker = app.get("broker")
        await app.get(Publisher).publish("jobs", {"n": 1})
        await eventually(lambda: broker.depth("jobs.dead-letter") == 1)
        (dead,) = broker.take("jobs.dead-letter")
    assert attempts == [1, 2, 3]
    assert dead.headers[DEATH_ATTEMPTS] == "3"
    assert "failed 3 times: RuntimeError: downstream said no" in dead.headers[DEATH_REASON]


@pytest.mark.parametrize(
    ("body", "content_type", "reason"),
    [
        (b"{not json", "application/json", "invalid payload"),
        (b'{"order_id": 0, "item": "x"}', "application/json", "order_id: Input should be"),
        (b'{"order_id": 1, "item": "x"}', "text/csv", "unsupported content-type"),
        (b"\xc1", "application/msgpack", "undecodable MessagePack"),
        (b'{"order_id": 1, "item": "' + b"x" * 2000 + b'"}', "application/json", "over the limit"),
    ],
)
async def test_poison_messages_are_dead_lettered_at_once(
    body: bytes, content_type: str, reason: str
) -> None:
    app = make_app(BROKER__MAX_MESSAGE_BYTES="1000")
    good: list[int] = []

    @app.consume("orders")
    async def handle(event: OrderCreated) -> None:
        good.append(event.order_id)

    async with TestApp(app):
        broker: MemoryBroker = app.get("broker")
        broker.max_message_bytes = 10_000  # let the oversized one reach the consumer
        await broker.publish("orders", Message(body, content_type=content_type))
        await app.get(Publisher).publish("orders", OrderCreated(order_id=2, item="ok"))
        await eventually(lambda: good == [2] and broker.depth("orders.dead-letter") == 1)
        (dead,) = broker.take("orders.dead-letter")
    assert dead.headers[DEATH_REASON].startswith("poison: ")
    assert reason in dead.headers[DEATH_REASON]
    assert dead.headers[DEATH_ATTEMPTS] == "1"


async def test_msgpack_payloads() -> None:
    app = make_app()
    got: list[OrderCreated] = []

    @app.consume("orders")
    async def handle(event: OrderCreated) -> None:
        got.append(event)

    async with TestApp(app):
        await app.get(Publisher).publish(
            "orders", OrderCreated(order_id=3, item="tea"), content_type="application/msgpack"
        )
        await eventually(lambda: len(got) == 1)
    assert got[0] == OrderCreated(order_id=3, item="tea")


async def test_one_at_a_time_in_order_and_bounded_concurrency() -> None:
    app = make_app(BROKER__PREFETCH="50")
    order: list[int] = []
    running = 0
    peak = {"ordered": 0, "parallel": 0}

    @app.consume("ordered")
    async def ordered(n: int) -> None:
        nonlocal running
        running += 1
        peak["ordered"] = max(peak["ordered"], running)
        await asyncio.sleep(0)
        order.append(n)
        running -= 1

    parallel_running = 0
    parallel_done: list[int] = []

    @app.consume("parallel", max_concurrency=4)
    async def parallel(n: int) -> None:
        nonlocal parallel_running
        parallel_running += 1
        peak["parallel"] = max(peak["parallel"], parallel_running)
        await asyncio.sleep(0.01)
        parallel_running -= 1
        parallel_done.append(n)

    async with TestApp(app):
        publisher = app.get(Publisher)
        for n in range(20):
            await publisher.publish("ordered", n)
            await publisher.publish("parallel", n)
        await eventually(lambda: len(order) == 20 and len(parallel_done) == 20)
    assert order == list(range(20))
    assert sorted(parallel_done) == list(range(20))
    assert peak == {"ordered": 1, "parallel": 4}


async def test_shutdown_past_grace_never_acks_a_cancelled_handler() -> None:
    app = make_app(SHUTDOWN__GRACE="0.05")
    entered = asyncio.Event()

    @app.consume("slow")
    async def slow(n: int) -> None:
        entered.set()
        await asyncio.Event().wait()

    client = TestApp(app)
    await client.__aenter__()
    broker: MemoryBroker = app.get("broker")
    await app.get(Publisher).publish("slow", 1)
    await entered.wait()
    assert client.runtime is not None
    clean = await client.runtime.stop()
    await client.aclose()
    assert clean is False
    (back,) = broker.take("slow")  # returned to the queue, marked for redelivery
    assert back.redelivered
    assert back.body == b"1"


async def test_publisher_refuses_bad_input() -> None:
    app = make_app(BROKER__MAX_MESSAGE_BYTES="100")

    @app.consume("q")
    async def handle(n: int) -> None:
        return None

    async with TestApp(app):
        publisher = app.get(Publisher)
        with pytest.raises(ValueError, match="over the limit of 100"):
            await publisher.publish("q", "x" * 200)
        with pytest.raises(ValueError, match="must be strings"):
            await publisher.publish("q", 1, headers={"n": 1})  # type: ignore[dict-item]


async def test_unsupported_broker_url_fails_start_naming_the_setting() -> None:
    from cordio import ConfigError

    app = make_app(BROKER__URL="kafka://localhost")

    @app.consume("q")
    async def handle(n: int) -> None:
        return None

    with pytest.raises(ConfigError, match=r"broker: .*unsupported broker url scheme 'kafka'"):
        async with TestApp(app):
            pass


def test_each_broker_url_scheme_makes_its_broker() -> None:
    from cordio.messaging.amqp import AmqpBroker
    from cordio.messaging.nats import NatsBroker
    from cordio.messaging.settings import BrokerSettings
    from cordio.messaging.transport import make_broker

    kinds = {
        "memory://": MemoryBroker,
        "amqp://guest:guest@h/": AmqpBroker,
        "amqps://h/": AmqpBroker,
        "nats://h:4222": NatsBroker,
        "tls://h:4222": NatsBroker,
    }
    for url, kind in kinds.items():
        cfg = BrokerSettings(url=url)
        broker = make_broker(cfg, {"q"})
        assert type(broker) is kind
        assert broker.settings is cfg  # type: ignore[attr-defined]
        assert broker.destinations == {"q"}
    # a URL that skipped the settings' check (a copy): the memory broker
    unchecked = BrokerSettings().model_copy(update={"url": "kafka://h"})
    assert type(make_broker(unchecked)) is MemoryBroker


async def test_on_error_decides_ack_dead_letter_or_requeue() -> None:
    from cordio.policy import OnError, fallback, respond

    class Invalid(Exception):
        pass

    class Busy(Exception):
        pass

    class Stale(Exception):
        pass

    app = make_app()
    app.on_error({Stale: fallback(None), Busy: respond(503)})
    attempts: dict[str, list[int]] = {"invalid": [], "busy": [], "stale": []}

    @app.consume("work")
    @OnError({Invalid: respond(422)})
    async def work(kind: str, ctx: Context) -> None:
        attempts[kind].append(ctx.attempt)
        raise {"invalid": Invalid, "busy": Busy, "stale": Stale}[kind](kind)

    async with TestApp(app):
        broker: MemoryBroker = app.get("broker")
        publisher = app.get(Publisher)
        for kind in attempts:
            await publisher.publish("work", kind)
        await eventually(
            lambda: broker.depth("work.dead-letter") == 2 and len(attempts["busy"]) == 3
        )
        dead = {m.body: m.headers[DEATH_REASON] for m in broker.take("work.dead-letter")}
    assert attempts == {"invalid": [1], "busy": [1, 2, 3], "stale": [1]}
    assert dead[b'"invalid"'].startswith("rejected 422: Invalid")
    assert dead[b'"busy"'] == "failed 3 times: Busy: busy"


async def test_readiness_follows_the_broker_connection() -> None:
    app = make_app()

    @app.consume("q")
    async def handle(n: int) -> None:
        return None

    async with TestApp(app) as client:
        assert (await client.get("/health/ready")).json()["resources"]["broker"]["status"] == "up"
        broker: MemoryBroker = app.get("broker")
        broker.disconnect()  # as while a real client reconnects
        down = await client.get("/health/ready")
        assert down.status_code == 503
        assert down.json()["resources"]["broker"]["status"] == "down"
        broker.reconnect()
        assert (await client.get("/health/ready")).status_code == 200


async def test_shutdown_never_starts_a_received_message_and_returns_it() -> None:
    """Messages received but waiting for a free slot when shutdown begins are not started:
    the running one finishes and is acked, the others go back to the queue."""
    app = make_app()
    started: list[int] = []
    release = asyncio.Event()

    @app.consume("jobs", max_concurrency=1, prefetch=5)
    async def job(n: int) -> None:
        started.append(n)
        await release.wait()

    client = TestApp(app)
    await client.__aenter__()
    broker: MemoryBroker = app.get("broker")
    for n in range(3):
        await broker.publish("jobs", Message(str(n).encode()))
    consumer = next(s for s in app.runtime.services if getattr(s, "name", "") == "job")
    await eventually(lambda: started == [0])
    stopping = asyncio.ensure_future(client.__aexit__(None, None, None))
    await eventually(lambda: consumer._stopping, what="the consumer stopping")
    release.set()
    await stopping
    assert started == [0]
    assert consumer.acked == 1
    assert [m.body for m in broker.take("jobs")] == [b"1", b"2"]


async def test_a_message_that_never_gets_settled_is_dead_lettered_before_running_again() -> None:
    """A handler that crashes its process every time (here: the subscription is cancelled
    while the message is held) must not loop forever: past max_attempts deliveries the
    message is dead-lettered without running the handler."""
    broker = MemoryBroker(destinations={"jobs"})
    await broker.connect()
    await broker.publish("jobs", Message(b"1", message_id="crasher"))
    for _ in range(3):  # max_attempts is 3 in make_app
        holder = Collector("hold")
        subscription = await broker.subscribe("jobs", holder, prefetch=1)
        await asyncio.wait_for(holder.done.wait(), 1)
        await subscription.cancel()  # the process died before settling
    app = make_app()
    runs: list[int] = []

    @app.consume("jobs")
    async def job(n: int) -> None:
        runs.append(n)

    async with TestApp(app, overrides={"broker": broker}) as client:
        await client.drained()
    assert runs == []
    (dead,) = broker.take("jobs.dead-letter")
    assert "delivered 4 times without being settled" in dead.headers[DEATH_REASON]


class Gone(Exception):
    pass


def _delivery_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith("cordio") and "Gone" in r.getMessage()]


@pytest.mark.parametrize("where", ["handler", "app"])
async def test_one_line_per_failed_attempt_and_the_rule_stack_honoured(
    where: str, caplog: pytest.LogCaptureFixture
) -> None:
    from cordio.policy import OnError, record

    app = make_app()
    rule = {Gone: record(logging.WARNING, stack=False)}
    if where == "app":
        app.on_error(rule)

    async def job(payload: dict[str, Any]) -> None:
        raise Gone("no such notification")

    app.consume("jobs")(OnError(rule)(job) if where == "handler" else job)
    caplog.set_level(logging.DEBUG, logger="cordio")
    async with TestApp(app) as client:
        broker: MemoryBroker = app.get("broker")
        sent = await app.get(Publisher).publish("jobs", {"n": 1})
        await client.drained()
        assert broker.depth("jobs.dead-letter") == 1
    lines = [r for r in _delivery_lines(caplog) if r.levelno >= logging.INFO]
    assert [r.getMessage().replace(sent.message_id, "M") for r in lines] == [
        "job: message M failed (attempt 1 of 3), again in 0.0 s: Gone: no such notification",
        "job: message M failed (attempt 2 of 3), again in 0.0 s: Gone: no such notification",
        "job: message M failed 3 times, dead-lettered: Gone: no such notification",
    ]
    assert [r.levelno for r in lines] == [logging.WARNING] * 3
    assert [r.exc_info for r in lines] == [None, None, None]


@pytest.mark.parametrize("rule", [False, True])
async def test_the_dead_letter_line_has_the_exception_own_stack(
    rule: bool, caplog: pytest.LogCaptureFixture
) -> None:
    from cordio.policy import respond

    app = make_app()
    if rule:  # a 5xx answer fails like any other; its traceback is Gone's, not a chain
        app.on_error({Gone: respond(503, stack=True)})

    @app.consume("jobs")
    async def job(payload: dict[str, Any]) -> None:
        raise Gone("no such notification")

    async with TestApp(app) as client:
        await app.get(Publisher).publish("jobs", {"n": 1})
        await client.drained()
    lines = _delivery_lines(caplog)
    levels = [logging.ERROR] * 3 if rule else [logging.WARNING, logging.WARNING, logging.ERROR]
    assert [r.levelno for r in lines] == levels
    assert "dead-lettered" in lines[-1].getMessage()
    last = lines[-1].exc_info
    assert last is not None
    assert type(last[1]) is Gone
    assert last[1].__cause__ is None


async def test_a_retry_in_the_handler_logs_one_line_per_attempt(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from cordio.policy import Retry

    app = make_app(BROKER__MAX_ATTEMPTS="1")
    calls: list[int] = []

    @app.consume("jobs")
    @Retry(attempts=3, initial_delay=0, on=(Gone,))
    async def job(payload: dict[str, Any]) -> None:
        calls.append(1)
        raise Gone("no such notification")

    async with TestApp(app) as client:
        await app.get(Publisher).publish("jobs", {"n": 1})
        await client.drained()
    lines = [r for r in _delivery_lines(caplog) if r.levelno >= logging.INFO]
    assert len(calls) == 3
    assert len(lines) == 3, [r.getMessage() for r in lines]  # two retries, one dead-letter
    assert "failed 1 times, dead-lettered" in lines[-1].getMessage()
