"""A handler settles its message itself: Ack, Nack(requeue, delay), Reject(reason)."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from cordio import App, Context
from cordio.config import EnvSource
from cordio.messaging import Ack, MemoryBroker, Nack, Publisher, Reject
from cordio.messaging.message import DEATH_REASON
from cordio.policy import OnError, fallback
from cordio.testing import TestApp


def make_app() -> App:
    environ = {"SVC__BROKER__REQUEUE_DELAY": "0", "SVC__BROKER__MAX_ATTEMPTS": "5"}
    return App("svc", config=[EnvSource("svc", environ=environ)])


async def test_raised_or_returned_signals_settle_the_message(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = make_app()
    attempts: dict[str, list[int]] = {}

    @app.consume("work")
    @OnError({Exception: fallback(None)})  # a signal is no error: no rule turns it into an ack
    async def work(kind: str, ctx: Context) -> Any:
        attempts.setdefault(kind, []).append(ctx.attempt)
        if kind == "ack":
            raise Ack()
        if kind == "reject":
            return Reject("no such customer")
        if kind == "nack-dead":
            raise Nack(requeue=False, reason="gave up")
        if kind == "nack" and ctx.attempt < 3:
            raise Nack(delay=0)
        return None

    app.on_error({Exception: fallback(None)})
    caplog.set_level(logging.INFO)
    async with TestApp(app, memory_broker=True) as client:
        for kind in ("ack", "reject", "nack", "nack-dead"):
            await client.publish("work", kind)
        await client.drained()
        broker: MemoryBroker = client.broker
        dead = {m.body: m.headers[DEATH_REASON] for m in broker.take("work.dead-letter")}
        assert client.runtime is not None
        consumer = next(s for s in client.runtime.services if getattr(s, "name", "") == "work")
        assert (consumer.acked, consumer.dead_lettered, consumer.requeued) == (2, 2, 2)
    assert attempts == {"ack": [1], "reject": [1], "nack": [1, 2, 3], "nack-dead": [1]}
    assert dead == {b'"reject"': "rejected: no such customer", b'"nack-dead"': "rejected: gave up"}
    assert "rejected by the handler, dead-lettered: no such customer" in caplog.text
    assert "nacked by the handler, again in 0.0 s" in caplog.text
    assert "Traceback" not in caplog.text


async def test_a_rejected_request_gets_an_error_reply_and_an_acked_one_null() -> None:
    from cordio.messaging import RemoteError

    app = make_app()

    @app.consume("lookup")
    async def lookup(name: str) -> Any:
        if name == "ghost":
            raise Reject("unknown name")
        raise Ack()

    async with TestApp(app, memory_broker=True):
        publisher = app.get(Publisher)
        assert await publisher.request("lookup", "alice", timeout=2) is None
        with pytest.raises(RemoteError, match="unknown name") as caught:
            await publisher.request("lookup", "ghost", timeout=2)
    assert caught.value.status == 422


def test_a_nack_delay_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        Nack(delay=-1)
