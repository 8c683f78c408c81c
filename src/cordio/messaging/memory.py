"""The in-memory broker (``memory://``): queues in the process, the same delivery semantics.

A destination is a queue or an exchange from ``broker.exchanges`` (``direct``, ``topic`` and
``fanout`` route to the queues bound under ``broker.queues``, as RabbitMQ does; a message no
queue is bound for raises :class:`PublishError`, as a mandatory publish does). A queue exists
once something subscribed to it or a message was put in it; publishing creates one only for a
name under ``broker.queues``, in :attr:`MemoryBroker.destinations`, or with ``declare=True``:
any other name raises :class:`PublishError`, as on RabbitMQ and NATS.

Deliveries are round-robin over a queue's subscriptions (competing consumers; only the first
when the queue is ``single_active_consumer``), at most ``prefetch`` unsettled per
subscription; unsettled deliveries of a cancelled subscription go back to the front of the
queue, marked redelivered (a quorum queue's ``delivery_limit`` dead-letters them past the
limit).

For tests, :meth:`MemoryBroker.disconnect` and :meth:`MemoryBroker.reconnect` simulate an
outage: unsettled deliveries go back to their queues, settling them raises
:class:`ConnectionError`, publishes wait in the publish gate, and the connection listeners
see ``disconnected`` and ``reconnected``.
"""

from __future__ import annotations

import asyncio
import collections
from dataclasses import dataclass, field

from cordio.messaging.broker import Handler, unknown_destination
from cordio.messaging.connection import ConnectionState
from cordio.messaging.errors import InvalidMessage, PublishError
from cordio.messaging.message import Message, check_size
from cordio.messaging.rpc import Replies, request_reply
from cordio.messaging.settings import BrokerSettings, topic_matches

DELIVERY_COUNT = "x-delivery-count"  # as RabbitMQ's quorum queues count returned deliveries


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
        self.epoch = broker._epoch
        broker._sequence += 1
        self.sequence = broker._sequence

    def _settle(self) -> None:
        if self.epoch != self._broker._epoch:
            raise ConnectionError(
                f"message {self.message.message_id}: the connection it came on is gone"
            )
        if self.settled:
            raise RuntimeError(f"message {self.message.message_id} was settled before")
        self.settled = True
        self._subscription._unsettled.discard(self)
        self._broker._pump(self._queue)
        self._broker._changed.set()

    async def ack(self) -> None:
        self._settle()

    async def nack(self, *, delay: float = 0.0) -> None:
        self._settle()
        again = self.message.copy_for_redelivery()
        if delay > 0:
            self._broker._later(delay, self._queue, again)
        else:
            self._broker._put(self._queue, again)

    async def dead_letter(self, reason: str) -> None:
        self._settle()
        self._broker._dead_letter(self._queue, self.message, reason)


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

    async def backlog(self) -> int | None:
        """Messages waiting in the queue (not delivered)."""
        return self._broker.depth(self._queue)

    def _deliver(self, message: Message) -> None:
        delivery = MemoryDelivery(self._broker, self._queue, message, self)
        self._unsettled.add(delivery)
        task = asyncio.get_running_loop().create_task(self._handler(delivery))
        self._broker._tasks.add(task)
        task.add_done_callback(self._broker._tasks.discard)

    def _give_back(self) -> None:
        """Return every unsettled delivery to the front of the queue, redelivered."""
        for delivery in sorted(self._unsettled, key=lambda d: d.sequence, reverse=True):
            delivery.settled = True
            self._broker._requeue(self._queue, delivery.message)
        self._unsettled.clear()

    async def pause(self) -> None:
        self.active = False

    async def cancel(self) -> None:
        queue = self._broker._queue(self._queue)
        if self not in queue.subscriptions:
            return
        self.active = False
        queue.subscriptions.remove(self)
        self._give_back()
        self._broker._pump(self._queue)


class MemoryBroker:
    """In-process queues with at-least-once delivery.

    Args:
        settings: the ``broker`` section (dead-letter suffix, size limit, publish gate,
            exchanges and queue options); defaults when omitted.
        max_message_bytes: overrides ``settings.max_message_bytes``.
        destinations: names the app publishes to or consumes from: publishing to them
            creates the queue (as ``declare=True`` does). Default: none.
    """

    def __init__(
        self,
        *,
        settings: BrokerSettings | None = None,
        max_message_bytes: int | None = None,
        destinations: set[str] | None = None,
    ) -> None:
        self.settings = settings or BrokerSettings()
        self.destinations: set[str] = set(destinations or ())
        self.dead_letter_suffix = self.settings.dead_letter_suffix
        self.max_message_bytes = max_message_bytes or self.settings.max_message_bytes
        self.state = ConnectionState.for_broker("memory", self.settings)
        self._queues: dict[str, _Queue] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._epoch = 0
        self._sequence = 0
        self._scheduled = 0
        self._changed = asyncio.Event()
        self._closed = False
        self.replies = Replies()

    @classmethod
    def from_settings(
        cls, settings: BrokerSettings, destinations: set[str] | None = None
    ) -> MemoryBroker:
        """A memory broker with ``settings`` (``broker.url`` is ``memory://``)."""
        return cls(settings=settings, destinations=destinations)

    def _queue(self, name: str) -> _Queue:
        queue = self._queues.get(name)
        if queue is None:
            queue = self._queues[name] = _Queue(name)
        return queue

    def _put(self, name: str, message: Message) -> None:
        self._queue(name).ready.append(message)
        self._pump(name)
        self._changed.set()

    def _later(self, delay: float, name: str, message: Message) -> None:
        """Put ``message`` in ``name`` after ``delay`` seconds (a delayed redelivery)."""
        self._scheduled += 1

        def put() -> None:
            self._scheduled -= 1
            self._put(name, message)

        asyncio.get_running_loop().call_later(delay, put)

    @property
    def idle(self) -> bool:
        """Nothing left to do: no message waits in a queue someone consumes, none is being
        handled, no redelivery is scheduled."""
        return self._scheduled == 0 and all(
            not (queue.subscriptions and queue.ready)
            and not any(s._unsettled for s in queue.subscriptions)
            for queue in self._queues.values()
        )

    async def drained(self, timeout: float = 5.0) -> None:
        """Wait until :attr:`idle` (for tests: every published message was handled).

        Raises:
            TimeoutError: still busy after ``timeout`` seconds.
        """
        async with asyncio.timeout(timeout):
            while not self.idle:
                self._changed.clear()
                await self._changed.wait()

    def _requeue(self, name: str, message: Message) -> None:
        count = message.headers.get(DELIVERY_COUNT, "0")
        returned = (int(count) if count.isdigit() else 0) + 1
        limit = self.settings.queue(name).delivery_limit
        if limit is not None and returned > limit:
            self._dead_letter(name, message, f"delivery limit of {limit} reached")
            return
        again = message.copy_for_redelivery(**{DELIVERY_COUNT: str(returned)})
        self._queue(name).ready.appendleft(again)

    def _dead_letter(self, name: str, message: Message, reason: str) -> None:
        self._put(name + self.dead_letter_suffix, message.dead_lettered(reason))

    def _pump(self, name: str) -> None:
        if not self.state.is_connected:
            return
        queue = self._queue(name)
        single = self.settings.queue(name).single_active_consumer
        while queue.ready:
            if single:
                first = queue.subscriptions[:1]
                ready = [s for s in first if s.has_room]
            else:
                ready = [s for s in queue.subscriptions if s.has_room]
            if not ready:
                return
            subscription = ready[queue.turn % len(ready)]
            queue.turn += 1
            subscription._deliver(queue.ready.popleft())

    @property
    def is_connected(self) -> bool:
        return self.state.is_connected

    def depth(self, name: str) -> int:
        """Messages waiting in queue ``name`` (not delivered; 0 if it does not exist)."""
        queue = self._queues.get(name)
        return len(queue.ready) if queue is not None else 0

    def take(self, name: str) -> list[Message]:
        """Remove and return every waiting message of queue ``name`` (for tests)."""
        queue = self._queues.get(name)
        if queue is None:
            return []
        messages = list(queue.ready)
        queue.ready.clear()
        return messages

    async def connect(self) -> None:
        for name, exchange in self.settings.exchanges.items():
            if exchange.type == "headers":
                raise ValueError(
                    f"broker.exchanges.{name}: headers exchanges need RabbitMQ; the memory"
                    " broker routes direct, topic and fanout"
                )
        self._closed = False
        self.state.changed(True)

    def disconnect(self) -> None:
        """Simulate losing the connection (for tests; see the module docstring)."""
        self._epoch += 1
        for queue in self._queues.values():
            for subscription in queue.subscriptions:
                subscription._give_back()
        self.state.changed(False)

    def reconnect(self) -> None:
        """Simulate the connection coming back: deliveries resume."""
        self.state.changed(True)
        for name in list(self._queues):
            self._pump(name)

    async def close(self) -> None:
        for queue in list(self._queues.values()):
            for subscription in list(queue.subscriptions):
                await subscription.cancel()
        self._closed = True
        self.state.closed()

    def _route(self, exchange: str, routing_key: str) -> list[str]:
        kind = self.settings.exchanges[exchange].type
        return [
            queue
            for queue, options in self.settings.queues.items()
            for binding in options.bindings
            if binding.exchange == exchange
            and (
                kind == "fanout"
                or (kind == "direct" and binding.routing_key == routing_key)
                or (kind == "topic" and topic_matches(binding.routing_key, routing_key))
            )
        ]

    async def publish(
        self,
        destination: str,
        message: Message,
        *,
        routing_key: str | None = None,
        declare: bool = False,
    ) -> None:
        if self._closed:
            raise self.state.closed_error(destination)
        check_size(message, self.max_message_bytes, destination)
        if destination in self.settings.exchanges:
            targets = self._route(destination, routing_key or "")
            if not targets:
                raise PublishError(
                    f"no queue is bound to exchange {destination!r} for routing key"
                    f" {routing_key!r}; the message was not stored",
                    destination=destination,
                )
        elif routing_key is not None:
            raise InvalidMessage(
                f"routing_key given, but {destination!r} is not an exchange under broker.exchanges",
                destination=destination,
            )
        elif not (
            declare
            or destination in self._queues
            or destination in self.settings.queues
            or destination in self.destinations
        ):
            raise unknown_destination(destination)
        else:
            targets = [destination]

        async def put() -> None:
            for target in targets:
                self._put(target, message)

        await self.state.send(put, destination)

    async def request(self, destination: str, message: Message, *, timeout: float) -> Message:
        return await request_reply(self, destination, message, timeout)

    async def reply_address(self) -> str:
        return "memory.replies"

    async def reply(self, to: str, message: Message) -> None:
        if to == "memory.replies":
            self.replies.resolve(message)
        else:
            self._put(to, message)

    async def subscribe(
        self, source: str, handler: Handler, *, prefetch: int, concurrency: int | None = None
    ) -> MemorySubscription:
        subscription = MemorySubscription(self, source, handler, prefetch)
        self._queue(source).subscriptions.append(subscription)
        self._pump(source)
        return subscription
