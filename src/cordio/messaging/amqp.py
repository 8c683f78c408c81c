"""The RabbitMQ broker (``amqp://``, ``amqps://``) on aio-pika, with the contract's semantics.

- A destination is a durable queue of that name on the default exchange, declared on first
  use; messages are persistent and every publish waits for the publisher confirm.
- Each subscription has its own channel with ``prefetch`` as its QoS.
- ``nack(delay)`` publishes the next attempt to ``<queue>.retry`` — a queue whose messages
  expire after ``delay`` and dead-letter back into ``<queue>`` (TTL + dead-letter exchange,
  RabbitMQ's documented delayed-retry pattern) — then acks the original; with no delay the
  next attempt goes straight back to ``<queue>``.
- ``dead_letter`` publishes to ``<queue><suffix>`` with the reason, then acks the original.
- ``pause`` cancels the consumer (no new deliveries); ``cancel`` closes the channel, so
  RabbitMQ delivers what was not acked again, marked redelivered.
- The connection is aio-pika's robust connection: it reconnects and restores consumers.
"""

from __future__ import annotations

import logging
from typing import Any

from cordio.errors import require_extra
from cordio.messaging.broker import Handler
from cordio.messaging.message import ATTEMPT, Message, check_size
from cordio.messaging.rpc import Replies

log = logging.getLogger("cordio.messaging")


def _aio_pika() -> Any:
    return require_extra("aio_pika", feature="RabbitMQ", extra="amqp")


def _to_amqp(message: Message, **extra: Any) -> Any:
    aio_pika = _aio_pika()
    return aio_pika.Message(
        body=message.body,
        headers={**message.headers, ATTEMPT: str(message.attempt)},
        message_id=message.message_id,
        content_type=message.content_type,
        reply_to=message.reply_to,
        correlation_id=message.correlation_id,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        **extra,
    )


def _from_amqp(incoming: Any) -> Message:
    headers = {
        str(k): v if isinstance(v, str) else str(v) for k, v in (incoming.headers or {}).items()
    }
    raw_attempt = headers.get(ATTEMPT, "1")
    attempt = int(raw_attempt) if raw_attempt.isdigit() and int(raw_attempt) > 0 else 1
    return Message(
        body=incoming.body,
        headers=headers,
        message_id=incoming.message_id or "",
        content_type=incoming.content_type or "application/json",
        reply_to=incoming.reply_to,
        correlation_id=incoming.correlation_id,
        redelivered=bool(incoming.redelivered) or attempt > 1,
        attempt=attempt,
    )


class AmqpDelivery:
    """A delivery from RabbitMQ."""

    def __init__(self, broker: AmqpBroker, queue: str, incoming: Any) -> None:
        self.message = _from_amqp(incoming)
        self._broker = broker
        self._queue = queue
        self._incoming = incoming

    async def ack(self) -> None:
        await self._incoming.ack()

    async def nack(self, *, delay: float = 0.0) -> None:
        again = self.message.copy_for_redelivery()
        if delay > 0:
            retry_queue = await self._broker._declare_retry(self._queue)
            await self._broker._publish_raw(retry_queue, _to_amqp(again, expiration=delay))
        else:
            await self._broker._publish_raw(self._queue, _to_amqp(again))
        await self._incoming.ack()

    async def dead_letter(self, reason: str) -> None:
        dead = self.message.dead_lettered(reason)
        target = self._queue + self._broker.dead_letter_suffix
        await self._broker._declare(target)
        await self._broker._publish_raw(target, _to_amqp(dead))
        await self._incoming.ack()


class AmqpSubscription:
    """A consumer on its own channel."""

    def __init__(self, channel: Any, queue: Any, tag: str) -> None:
        self._channel = channel
        self._queue = queue
        self._tag = tag
        self._paused = False

    async def pause(self) -> None:
        if not self._paused and not self._channel.is_closed:
            self._paused = True
            await self._queue.cancel(self._tag)

    async def cancel(self) -> None:
        await self.pause()
        if not self._channel.is_closed:
            await self._channel.close()  # unacked deliveries go back to the queue


class AmqpBroker:
    """RabbitMQ through aio-pika.

    Args:
        url: ``amqp://user:password@host:port/vhost`` (or ``amqps://``).
        dead_letter_suffix: appended to a queue's name for its dead-letter queue.
        max_message_bytes: larger messages are refused by :meth:`publish`.
    """

    def __init__(
        self,
        url: str,
        *,
        dead_letter_suffix: str = ".dead-letter",
        max_message_bytes: int = 1 << 20,
    ) -> None:
        self.url = url
        self.dead_letter_suffix = dead_letter_suffix
        self.max_message_bytes = max_message_bytes
        self._connection: Any = None
        self._channel: Any = None
        self._declared: set[str] = set()
        self._subscriptions: list[AmqpSubscription] = []
        self.replies = Replies()
        self._reply_queue: str | None = None

    @property
    def is_connected(self) -> bool:
        """Whether the (robust) connection is up now; false while it reconnects."""
        connection = self._connection
        return (
            connection is not None
            and not connection.is_closed
            and bool(
                getattr(connection, "connected", None) is None or connection.connected.is_set()
            )
        )

    async def connect(self) -> None:
        aio_pika = _aio_pika()
        self._connection = await aio_pika.connect_robust(self.url, timeout=10)
        self._channel = await self._connection.channel(publisher_confirms=True)

    async def close(self) -> None:
        for subscription in self._subscriptions:
            try:
                await subscription.cancel()
            except Exception:  # the connection may be gone already
                log.debug("closing a subscription failed", exc_info=True)
        self._subscriptions.clear()
        if self._connection is not None:
            await self._connection.close()
            self._connection = None

    async def _declare(self, name: str) -> None:
        if name not in self._declared:
            await self._channel.declare_queue(name, durable=True)
            self._declared.add(name)

    async def _declare_retry(self, name: str) -> str:
        retry = f"{name}.retry"
        if retry not in self._declared:
            await self._channel.declare_queue(
                retry,
                durable=True,
                arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": name},
            )
            self._declared.add(retry)
        return retry

    async def _publish_raw(self, queue: str, message: Any) -> None:
        if self._channel is None:
            raise ConnectionError("RabbitMQ broker is not connected")
        await self._channel.default_exchange.publish(message, routing_key=queue, timeout=10)

    async def publish(self, destination: str, message: Message) -> None:
        check_size(message, self.max_message_bytes)
        await self._declare(destination)
        await self._publish_raw(destination, _to_amqp(message))

    async def reply_address(self) -> str:
        if self._reply_queue is None:
            queue = await self._channel.declare_queue(exclusive=True, auto_delete=True)

            async def on_reply(incoming: Any) -> None:
                self.replies.resolve(_from_amqp(incoming))

            await queue.consume(on_reply, no_ack=True)
            self._reply_queue = queue.name
        return self._reply_queue

    async def reply(self, to: str, message: Message) -> None:
        await self._publish_raw(to, _to_amqp(message))

    async def subscribe(self, source: str, handler: Handler, *, prefetch: int) -> AmqpSubscription:
        channel = await self._connection.channel()
        await channel.set_qos(prefetch_count=prefetch)
        queue = await channel.declare_queue(source, durable=True)

        async def on_message(incoming: Any) -> None:
            await handler(AmqpDelivery(self, source, incoming))

        tag = await queue.consume(on_message, no_ack=False)
        subscription = AmqpSubscription(channel, queue, tag)
        self._subscriptions.append(subscription)
        return subscription
