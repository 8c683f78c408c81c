"""The broker contract: one suite, run against every implementation (subclass it).

A subclass provides ``make_broker()`` returning a connected broker and ``queue_name()``
returning a fresh, empty source name.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import pytest

from cordio.messaging import Broker, Delivery, Message
from cordio.messaging.message import DEATH_ATTEMPTS, DEATH_REASON
from tests.eventually import eventually


class Collector:
    """A handler recording deliveries; settles them as told."""

    def __init__(self, settle: str = "ack", count: int = 1) -> None:
        self.settle = settle
        self.seen: list[Message] = []
        self.done = asyncio.Event()
        self.count = count
        self.held: list[Delivery] = []

    async def __call__(self, delivery: Delivery) -> None:
        self.seen.append(delivery.message)
        if self.settle == "ack":
            await delivery.ack()
        elif self.settle == "nack-once" and delivery.message.attempt == 1:
            await delivery.nack()
        elif self.settle == "nack-once":
            await delivery.ack()
        elif self.settle == "dead":
            await delivery.dead_letter("test reason")
        else:
            self.held.append(delivery)
        if len(self.seen) >= self.count:
            self.done.set()


class BrokerContract:
    async def make_broker(self) -> Broker:
        raise NotImplementedError

    declared: set[str]

    def queue_name(self) -> str:
        """A fresh queue name, declared by the app (in the broker's ``destinations``)."""
        name = "contract." + secrets.token_hex(4)
        self.declared.add(name)
        return name

    @pytest.fixture
    async def broker(self) -> AsyncIterator[Broker]:
        broker = await self.make_broker()
        self.declared = broker.destinations
        yield broker
        await broker.close()

    async def test_publish_then_consume_with_headers_and_id(self, broker: Broker) -> None:
        queue = self.queue_name()
        await broker.publish(queue, Message(b'{"a": 1}', headers={"k": "v"}, message_id="m1"))
        collector = Collector()
        await broker.subscribe(queue, collector, prefetch=10)
        await asyncio.wait_for(collector.done.wait(), 5)
        (got,) = collector.seen
        assert (got.body, got.headers["k"], got.message_id, got.redelivered, got.attempt) == (
            b'{"a": 1}',
            "v",
            "m1",
            False,
            1,
        )

    async def test_nack_delivers_again_marked_redelivered(self, broker: Broker) -> None:
        queue = self.queue_name()
        await broker.publish(queue, Message(b"x"))
        collector = Collector("nack-once", count=2)
        await broker.subscribe(queue, collector, prefetch=1)
        await asyncio.wait_for(collector.done.wait(), 5)
        first, second = collector.seen
        assert (first.attempt, second.attempt) == (1, 2)
        assert second.redelivered
        assert second.message_id == first.message_id
        assert (first.body, second.body) == (b"x", b"x")

    async def test_dead_letter_keeps_reason_and_attempts(self, broker: Broker) -> None:
        queue = self.queue_name()
        await broker.publish(queue, Message(b"poison"))
        await broker.subscribe(queue, Collector("dead"), prefetch=1)
        dead = Collector()
        await broker.subscribe(queue + ".dead-letter", dead, prefetch=1)
        await asyncio.wait_for(dead.done.wait(), 5)
        (got,) = dead.seen
        assert got.body == b"poison"
        assert got.headers[DEATH_REASON] == "test reason"
        assert got.headers[DEATH_ATTEMPTS] == "1"

    async def test_prefetch_bounds_unsettled_deliveries(self, broker: Broker) -> None:
        queue = self.queue_name()
        for i in range(5):
            await broker.publish(queue, Message(str(i).encode()))
        holder = Collector("hold", count=2)
        await broker.subscribe(queue, holder, prefetch=2)
        await asyncio.wait_for(holder.done.wait(), 5)
        # a wait for an absence: a broken broker would over-deliver in this time
        await asyncio.sleep(0.05)
        assert len(holder.seen) == 2
        await holder.held[0].ack()
        await eventually(lambda: len(holder.seen) >= 3, timeout=5, what="a third delivery")
        assert [m.body for m in holder.seen] == [b"0", b"1", b"2"]

    async def test_backlog_counts_the_messages_waiting(self, broker: Broker) -> None:
        queue = self.queue_name()
        for i in range(5):
            await broker.publish(queue, Message(str(i).encode()))
        holder = Collector("hold", count=1)
        subscription = await broker.subscribe(queue, holder, prefetch=1)
        await asyncio.wait_for(holder.done.wait(), 5)

        async def waiting() -> bool:
            return await subscription.backlog() == 4  # one in hand, four waiting

        await eventually(waiting, timeout=5, what="a backlog of 4")
        for delivery in holder.held:
            await delivery.ack()

    async def test_unsettled_deliveries_come_back_after_cancel(self, broker: Broker) -> None:
        queue = self.queue_name()
        await broker.publish(queue, Message(b"keep me"))
        holder = Collector("hold")
        subscription = await broker.subscribe(queue, holder, prefetch=1)
        await asyncio.wait_for(holder.done.wait(), 5)
        await subscription.cancel()
        again = Collector()
        await broker.subscribe(queue, again, prefetch=1)
        await asyncio.wait_for(again.done.wait(), 5)
        (kept,) = holder.seen
        (back,) = again.seen
        assert (back.body, back.message_id) == (b"keep me", kept.message_id)
        assert back.redelivered

    async def test_competing_consumers_share_a_queue(self, broker: Broker) -> None:
        queue = self.queue_name()
        a, b = Collector(count=1000), Collector(count=1000)
        await broker.subscribe(queue, a, prefetch=5)
        await broker.subscribe(queue, b, prefetch=5)
        for i in range(100):
            await broker.publish(queue, Message(str(i).encode()))
        await eventually(
            lambda: len(a.seen) + len(b.seen) >= 100, timeout=10, what="100 deliveries"
        )
        bodies = sorted(int(m.body) for m in a.seen + b.seen)
        assert bodies == list(range(100))
        assert a.seen
        assert b.seen
