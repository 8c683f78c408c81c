"""The in-memory broker (``memory://``): queues in the process, the same delivery semantics.

A destination is a queue, created on first use. Deliveries are round-robin over a queue's
subscriptions (competing consumers), at most ``prefetch`` unsettled per subscription;
unsettled deliveries of a cancelled subscription go back to the front of the queue,
marked redelivered.
"""

from __future__ import annotations

import asyncio
import collections
from dataclasses import dataclass, field

from cordio.messaging.broker import Handler
from cordio.messaging.message import Message, check_size
from cordio.messaging.rpc import Replies


@dataclass
class _Queue:
    name: str
    ready: collections.deque[Message] = field(default_factory=collections.deque)
    subscriptions: list[MemorySubscription] = field(default_factory=list)
    turn: int = 0


class MemoryDelivery:
    """A delivery of the memory broker."""

    def __init__(
        self, broker: MemoryBroker, queue: str, message: Message, subscription: MemorySubscription
    ) -> None:
        self.message = message
        self._broker = broker
        self._queue = queue
        self._subscription = subscription
        self.settled = False

    def _settle(self) -> None:
        if self.settled:
            raise RuntimeError(f"message {self.message.message_id} was settled before")
        self.settled = True
        self._subscription._unsettled.discard(self)
        self._broker._pump(self._queue)

    async def ack(self) -> None:
        self._settle()

    async def nack(self, *, delay: float = 0.0) -> None:
        self._settle()
        again = self.message.copy_for_redelivery()
        if delay > 0:
            asyncio.get_running_loop().call_later(delay, self._broker._put, self._queue, again)
        else:
            self._broker._put(self._queue, again)

    async def dead_letter(self, reason: str) -> None:
        self._settle()
        dead = self.message.dead_lettered(reason)
        self._broker._put(self._queue + self._broker.dead_letter_suffix, dead)


class MemorySubscription:
    """A consumer of one memory queue."""

    def __init__(self, broker: MemoryBroker, queue: str, handler: Handler, prefetch: int):
        self._broker = broker
        self._queue = queue
        self._handler = handler
        self.prefetch = prefetch
        self._unsettled: set[MemoryDelivery] = set()
        self.active = True

    @property
    def has_room(self) -> bool:
        return self.active and len(self._unsettled) < self.prefetch

    def _deliver(self, message: Message) -> None:
        delivery = MemoryDelivery(self._broker, self._queue, message, self)
        self._unsettled.add(delivery)
        task = asyncio.get_running_loop().create_task(self._handler(delivery))
        self._broker._tasks.add(task)
        task.add_done_callback(self._broker._tasks.discard)

    async def pause(self) -> None:
        self.active = False

    async def cancel(self) -> None:
        queue = self._broker._queue(self._queue)
        if self not in queue.subscriptions:
            return
        self.active = False
        queue.subscriptions.remove(self)
        for delivery in list(self._unsettled):
            delivery.settled = True
            queue.ready.appendleft(delivery.message.copy_for_redelivery())
        self._unsettled.clear()
        self._broker._pump(self._queue)


class MemoryBroker:
    """In-process queues with at-least-once delivery.

    Args:
        dead_letter_suffix: appended to a queue's name for its dead-letter queue.
        max_message_bytes: larger messages are refused by :meth:`publish`.
    """

    def __init__(
        self, *, dead_letter_suffix: str = ".dead-letter", max_message_bytes: int = 1 << 20
    ) -> None:
        self.dead_letter_suffix = dead_letter_suffix
        self.max_message_bytes = max_message_bytes
        self._queues: dict[str, _Queue] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.connected = False
        self.replies = Replies()

    def _queue(self, name: str) -> _Queue:
        queue = self._queues.get(name)
        if queue is None:
            queue = self._queues[name] = _Queue(name)
        return queue

    def _put(self, name: str, message: Message) -> None:
        self._queue(name).ready.append(message)
        self._pump(name)

    def _pump(self, name: str) -> None:
        queue = self._queue(name)
        while queue.ready:
            ready = [s for s in queue.subscriptions if s.has_room]
            if not ready:
                return
            subscription = ready[queue.turn % len(ready)]
            queue.turn += 1
            subscription._deliver(queue.ready.popleft())

    @property
    def is_connected(self) -> bool:
        return self.connected

    def depth(self, name: str) -> int:
        """Messages waiting in queue ``name`` (not delivered)."""
        return len(self._queue(name).ready)

    def take(self, name: str) -> list[Message]:
        """Remove and return every waiting message of queue ``name`` (for tests)."""
        queue = self._queue(name)
        messages = list(queue.ready)
        queue.ready.clear()
        return messages

    async def connect(self) -> None:
        self.connected = True

    async def close(self) -> None:
        for queue in list(self._queues.values()):
            for subscription in list(queue.subscriptions):
                await subscription.cancel()
        self.connected = False

    async def publish(self, destination: str, message: Message) -> None:
        if not self.connected:
            raise ConnectionError("memory broker is closed")
        check_size(message, self.max_message_bytes)
        self._put(destination, message)

    async def reply_address(self) -> str:
        return "memory.replies"

    async def reply(self, to: str, message: Message) -> None:
        if to == "memory.replies":
            self.replies.resolve(message)
        else:
            self._put(to, message)

    async def subscribe(
        self, source: str, handler: Handler, *, prefetch: int
    ) -> MemorySubscription:
        subscription = MemorySubscription(self, source, handler, prefetch)
        self._queue(source).subscriptions.append(subscription)
        self._pump(source)
        return subscription
