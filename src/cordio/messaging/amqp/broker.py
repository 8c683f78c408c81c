"""The RabbitMQ broker: the robust connection and its state, publishing through the publish
gate with publisher confirms (every failure a :class:`~cordio.messaging.errors.PublishError`),
request/reply, and subscribing (see :mod:`cordio.messaging.amqp` for the semantics).
"""

from __future__ import annotations

import logging
from typing import Any

from cordio.errors import require_extra
from cordio.messaging.amqp.subscriber import AmqpDelivery, AmqpSubscription
from cordio.messaging.amqp.topology import AmqpTopology
from cordio.messaging.amqp.wire import check_name, from_amqp, require_aio_pika, to_amqp
from cordio.messaging.broker import Handler, ServerBroker, unknown_destination
from cordio.messaging.errors import InvalidMessage, PublishError
from cordio.messaging.message import Message, check_size
from cordio.messaging.rpc import request_reply
from cordio.messaging.settings import BrokerSettings

log = logging.getLogger("cordio.messaging")


class AmqpBroker(ServerBroker, AmqpTopology):
    """RabbitMQ through aio-pika.

    Args:
        url: ``amqp://user:password@host:port/vhost`` (or ``amqps://``).
        settings: the ``broker`` section (topology, dead-letter suffix, size limit, publish
            gate); defaults when omitted.
        reconnect_interval: seconds before the first reconnect attempt (default 1); later
            ones back off up to ``broker.reconnect_max_delay``.
        destinations: queues the app publishes to or consumes from: publishing to them
            declares them if missing (as ``declare=True`` does). Default: none.
    """

    server = "RabbitMQ"

    def __init__(
        self,
        url: str,
        *,
        settings: BrokerSettings | None = None,
        reconnect_interval: float = 1.0,
        destinations: set[str] | None = None,
    ) -> None:
        super().__init__(url, settings=settings, destinations=destinations)
        self.reconnect_interval = reconnect_interval
        self._connection: Any = None
        self._channel: Any = None
        self._declared: set[str] = set()
        self._subscriptions: list[AmqpSubscription] = []
        self._reply_queue: str | None = None
        self._errors: Any = None
        self._transient: tuple[type[BaseException], ...] = (ConnectionError,)

    async def connect(self) -> None:
        aio_pika = require_aio_pika()
        self._errors = require_extra("aiormq.exceptions", feature="RabbitMQ", extra="amqp")
        # connection trouble (aiormq's connection errors are ConnectionErrors); a channel
        # that is closed while the robust connection restores it
        self._transient = (ConnectionError, self._errors.ChannelInvalidStateError)
        self._connection = await aio_pika.connect_robust(
            self.url, timeout=10, reconnect_interval=self.reconnect_interval
        )
        self._connection.close_callbacks.add(self._on_close)
        self._connection.reconnect_callbacks.add(lambda *_: self.state.changed(True))
        connection = self._connection

        def interval(seconds: float) -> None:
            connection.reconnect_interval = seconds

        self.state.backoff(
            interval, initial=self.reconnect_interval, cap=self.settings.reconnect_max_delay
        )
        self._channel = await self._connection.channel(
            publisher_confirms=True, on_return_raises=True
        )
        await self._declare_topology()
        self.state.changed(True)

    def _on_close(self, *_: Any) -> None:
        if not self._closing:  # a drop, not our own close
            self.state.changed(False)

    async def close(self) -> None:
        self._closing = True
        self.state.closed()
        for subscription in self._subscriptions:
            try:
                await subscription.cancel()
            except Exception:  # the connection may be gone already
                log.debug("closing a subscription failed", exc_info=True)
        self._subscriptions.clear()
        if self._connection is not None:
            await self._connection.close()
            self._connection = None

    # -- publishing -------------------------------------------------------------------

    async def _send(
        self,
        queue: str,
        message: Any,
        exchange: str | None = None,
        *,
        declare: bool = False,
        existing: bool = False,
    ) -> None:
        """Publish through the gate; return once confirmed. ``declare``: make sure the queue
        exists first (see :meth:`_declare`); ``existing``: raise :class:`PublishError` if
        the queue does not exist on the server."""
        destination = exchange or queue
        self._check_open(destination, connected=self._channel is not None)
        aiormq = self._errors

        async def attempt() -> None:
            try:
                if declare:
                    await self._declare(queue)
                elif existing and queue not in self._declared:
                    if not await self._exists(queue):
                        raise unknown_destination(queue)
                    self._declared.add(queue)
                if exchange is None:
                    target = self._channel.default_exchange
                else:
                    target = await self._channel.get_exchange(exchange, ensure=False)
                await target.publish(message, routing_key=queue, mandatory=True)
            except aiormq.DeliveryError as exc:
                # a nack, or a return (unroutable) with on_return_raises
                raise PublishError(_refusal(exchange, queue, exc), destination=destination) from exc
            except (aiormq.ChannelAccessRefused, aiormq.ChannelPreconditionFailed) as exc:
                raise InvalidMessage(
                    f"RabbitMQ refused the message for {destination!r}: {exc}",
                    destination=destination,
                ) from exc
            except aiormq.ChannelNotFoundEntity as exc:
                raise PublishError(
                    f"exchange {exchange!r} does not exist on the RabbitMQ server (declared at"
                    f" start from broker.exchanges; deleted since?): {exc}",
                    destination=destination,
                ) from exc
            except aiormq.AMQPChannelError as exc:
                raise PublishError(
                    f"RabbitMQ closed the channel publishing to {destination!r}: {exc}",
                    destination=destination,
                ) from exc
            except ValueError as exc:  # the client refuses a name or property (too long)
                raise InvalidMessage(
                    f"message for {destination!r} cannot be sent: {exc}", destination=destination
                ) from exc

        await self.state.send(attempt, destination, transient=self._transient)

    async def publish(
        self,
        destination: str,
        message: Message,
        *,
        routing_key: str | None = None,
        declare: bool = False,
    ) -> None:
        check_size(message, self.max_message_bytes, destination)
        if destination in self.settings.exchanges:
            await self._send(routing_key or "", to_amqp(message), exchange=destination)
            return
        if routing_key is not None:
            raise InvalidMessage(
                f"routing_key given, but {destination!r} is not an exchange under broker.exchanges",
                destination=destination,
            )
        check_name(destination)
        known = declare or destination in self.settings.queues or destination in self.destinations
        await self._send(destination, to_amqp(message), declare=known, existing=not known)

    async def request(self, destination: str, message: Message, *, timeout: float) -> Message:
        return await request_reply(self, destination, message, timeout, self._transient)

    async def reply_address(self) -> str:
        if self._reply_queue is None:
            queue = await self._channel.declare_queue(exclusive=True, auto_delete=True)

            async def on_reply(incoming: Any) -> None:
                self.replies.resolve(from_amqp(incoming))

            await queue.consume(on_reply, no_ack=True)
            self._reply_queue = queue.name
        return self._reply_queue

    async def reply(self, to: str, message: Message) -> None:
        await self._send(to, to_amqp(message))

    async def subscribe(
        self, source: str, handler: Handler, *, prefetch: int, concurrency: int | None = None
    ) -> AmqpSubscription:
        channel = await self._connection.channel()
        await channel.set_qos(prefetch_count=prefetch)
        if await self._foreign(source):  # someone else's queue: consumed as it is
            queue = await channel.declare_queue(source, passive=True)
        else:
            queue = await self._declare_on(channel, source, self._queue_arguments(source))
        self._declared.add(source)

        async def on_message(incoming: Any) -> None:
            await handler(AmqpDelivery(self, source, incoming))

        tag = await queue.consume(on_message, no_ack=False)
        subscription = AmqpSubscription(channel, queue, tag, self._connection)
        self._subscriptions.append(subscription)
        return subscription


def _refusal(exchange: str | None, routing_key: str, exc: BaseException) -> str:
    if exchange is None:
        return f"RabbitMQ refused the message for queue {routing_key!r}: {exc!r}"
    return (
        f"RabbitMQ did not store the message for exchange {exchange!r}, routing key"
        f" {routing_key!r} (no queue bound, or a queue refused it): {exc!r}"
    )
