"""RabbitMQ consumers: a delivery and what its consumer decides about it (ack, nack with a
delay through the ``<queue>.retry`` queue, dead-letter), and a consumer on its own channel
(``pause`` cancels it, ``cancel`` closes its channel so unacked deliveries go back).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cordio.messaging.amqp.wire import from_amqp, to_amqp

if TYPE_CHECKING:
    from cordio.messaging.amqp.broker import AmqpBroker


class AmqpDelivery:
    """A delivery from RabbitMQ."""

    def __init__(self, broker: AmqpBroker, queue: str, incoming: Any) -> None:
        self.message = from_amqp(incoming)
        self._broker = broker
        self._queue = queue
        self._incoming = incoming

    async def ack(self) -> None:
        await self._incoming.ack()

    async def nack(self, *, delay: float = 0.0) -> None:
        again = self.message.copy_for_redelivery()
        if delay > 0:
            retry_queue = await self._broker._declare_retry(self._queue)
            await self._broker._send(retry_queue, to_amqp(again, expiration=delay))
        else:
            await self._broker._send(self._queue, to_amqp(again))
        await self._incoming.ack()

    async def dead_letter(self, reason: str) -> None:
        dead = self.message.dead_lettered(reason)
        target = self._queue + self._broker.dead_letter_suffix
        await self._broker._declare(target)
        await self._broker._send(target, to_amqp(dead))
        await self._incoming.ack()


class AmqpSubscription:
    """A consumer on its own channel."""

    def __init__(self, channel: Any, queue: Any, tag: str, connection: Any = None) -> None:
        self._channel = channel
        self._queue = queue
        self._tag = tag
        self._paused = False
        self._connection = connection

    async def backlog(self) -> int | None:
        """The queue's ready messages (``queue.declare`` passive, AMQP 0-9-1 section
        1.7.2.1), asked on a channel of its own: a queue gone meanwhile closes that one, not
        the consumer's."""
        if self._connection is None:
            return None
        try:
            async with self._connection.channel() as channel:
                queue = await channel.declare_queue(self._queue.name, passive=True)
                return int(queue.declaration_result.message_count)
        except Exception:
            return None

    async def pause(self) -> None:
        if not self._paused and not self._channel.is_closed:
            self._paused = True
            await self._queue.cancel(self._tag)

    async def cancel(self) -> None:
        await self.pause()
        if not self._channel.is_closed:
            await self._channel.close()  # unacked deliveries go back to the queue
