"""The RabbitMQ broker (``amqp://``, ``amqps://``) on aio-pika, with the contract's semantics.

- Topology from ``broker.exchanges`` and ``broker.queues`` is declared at connect
  (idempotently). A queue not listed that already exists on the server (declared by another
  service, whatever its type and arguments) is used as it is. One that does not is declared a
  classic durable queue on first use only when the app consumes it, declared it with
  ``app.publishes`` (:attr:`AmqpBroker.destinations`) or publishes with ``declare=True``; a
  publish to any other name raises :class:`~cordio.messaging.connection.PublishError`, so a
  mistyped name never fills an orphan queue. Messages are persistent, published ``mandatory``, and
  every publish waits for the publisher confirm; every failure raises
  :class:`~cordio.messaging.connection.PublishError` (unroutable, refused, a missing
  exchange, the connection down past ``broker.publish_timeout``, closed) or its subclass
  :class:`~cordio.messaging.connection.InvalidMessage` (a name RabbitMQ refuses, a message it
  refuses as given).
- Each subscription has its own channel with ``prefetch`` as its QoS.
- ``nack(delay)`` publishes the next attempt to ``<queue>.retry`` — a queue whose messages
  expire after ``delay`` and dead-letter back into ``<queue>`` (TTL + dead-letter exchange,
  RabbitMQ's documented delayed-retry pattern) — then acks the original; with no delay the
  next attempt goes straight back to ``<queue>``.
- ``dead_letter`` publishes to ``<queue><suffix>`` with the reason, then acks the original.
- ``pause`` cancels the consumer (no new deliveries); ``cancel`` closes the channel, so
  RabbitMQ delivers what was not acked again, marked redelivered.
- The connection is aio-pika's robust connection: it reconnects (attempts spaced by
  exponential backoff with jitter, from ``reconnect_interval`` up to
  ``broker.reconnect_max_delay`` seconds) and restores channels, queues and consumers —
  also after the server cancels a consumer (its queue was deleted: it is declared again).
  Connection listeners see ``disconnected`` when it drops and ``reconnected`` once
  everything is restored.
"""

from __future__ import annotations

import datetime
import decimal
import logging
from typing import Any

from pydantic_core import to_json

from cordio.errors import require_extra
from cordio.messaging.broker import Handler, unknown_destination
from cordio.messaging.connection import ConnectionState
from cordio.messaging.errors import InvalidMessage, PublishError
from cordio.messaging.message import ATTEMPT, Message, check_size
from cordio.messaging.rpc import Replies, request_reply
from cordio.messaging.settings import BrokerSettings

log = logging.getLogger("cordio.messaging")


def _aio_pika() -> Any:
    return require_extra("aio_pika", feature="RabbitMQ", extra="amqp")


def _to_amqp(message: Message, **extra: Any) -> Any:
    aio_pika = _aio_pika()
    headers = message.headers
    if message.attempt != 1:  # absent means the first attempt
        headers = {**headers, ATTEMPT: str(message.attempt)}
    return aio_pika.Message(
        body=message.body,
        headers=headers,
        message_id=message.message_id,
        content_type=message.content_type,
        reply_to=message.reply_to,
        correlation_id=message.correlation_id,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        **extra,
    )


def _header(value: Any) -> str:
    """An AMQP header value as text: strings as they are, byte arrays decoded as UTF-8,
    timestamps and decimals as their text, anything else (numbers, booleans, void, arrays,
    tables) as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, datetime.datetime | decimal.Decimal):
        return value.isoformat() if isinstance(value, datetime.datetime) else str(value)
    return to_json(value, fallback=_header).decode()


def _from_amqp(incoming: Any) -> Message:
    headers = {str(k): _header(v) for k, v in (incoming.headers or {}).items()}
    raw_attempt = headers.get(ATTEMPT, "1")
    attempt = int(raw_attempt) if raw_attempt.isdigit() and 0 < int(raw_attempt) < 1 << 31 else 1
    # quorum queues count returned deliveries; not copied on, so a republished next attempt
    # does not count them twice
    returned = headers.pop("x-delivery-count", "")
    if incoming.redelivered and returned.isdigit() and int(returned) < 1 << 31:
        attempt += int(returned)  # believed only on a redelivery, where RabbitMQ sets it
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
            await self._broker._send(retry_queue, _to_amqp(again, expiration=delay))
        else:
            await self._broker._send(self._queue, _to_amqp(again))
        await self._incoming.ack()

    async def dead_letter(self, reason: str) -> None:
        dead = self.message.dead_lettered(reason)
        target = self._queue + self._broker.dead_letter_suffix
        await self._broker._declare(target)
        await self._broker._send(target, _to_amqp(dead))
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
        settings: the ``broker`` section (topology, dead-letter suffix, size limit, publish
            gate); defaults when omitted.
        reconnect_interval: seconds before the first reconnect attempt (default 1); later
            ones back off up to ``broker.reconnect_max_delay``.
        destinations: queues the app publishes to or consumes from: publishing to them
            declares them if missing (as ``declare=True`` does). Default: none.
    """

    def __init__(
        self,
        url: str,
        *,
        settings: BrokerSettings | None = None,
        reconnect_interval: float = 1.0,
        destinations: set[str] | None = None,
    ) -> None:
        self.url = url
        self.destinations: set[str] = set(destinations or ())
        self.settings = settings or BrokerSettings(url=url)
        self.dead_letter_suffix = self.settings.dead_letter_suffix
        self.max_message_bytes = self.settings.max_message_bytes
        self.reconnect_interval = reconnect_interval
        self.state = ConnectionState.for_broker("RabbitMQ", self.settings)
        self._connection: Any = None
        self._channel: Any = None
        self._declared: set[str] = set()
        self._subscriptions: list[AmqpSubscription] = []
        self.replies = Replies()
        self._reply_queue: str | None = None
        self._closing = False
        self._errors: Any = None
        self._transient: tuple[type[BaseException], ...] = (ConnectionError,)

    @property
    def is_connected(self) -> bool:
        """Whether the connection is up and restored; false while it reconnects."""
        return self.state.is_connected

    async def connect(self) -> None:
        aio_pika = _aio_pika()
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

    # -- topology -------------------------------------------------------------------

    def _queue_arguments(self, name: str) -> dict[str, Any]:
        """``x-`` arguments of queue ``name`` from ``broker.queues``."""
        options = self.settings.queue(name)
        arguments: dict[str, Any] = {}
        if options.type == "quorum":
            arguments["x-queue-type"] = "quorum"
        if options.single_active_consumer:
            arguments["x-single-active-consumer"] = True
        if options.max_length is not None:
            arguments["x-max-length"] = options.max_length
            arguments["x-overflow"] = "reject-publish"
        if options.message_ttl is not None:
            arguments["x-message-ttl"] = int(options.message_ttl * 1000)
        if options.delivery_limit is not None:
            arguments["x-delivery-limit"] = options.delivery_limit
        if options.delivery_limit is not None or options.message_ttl is not None:
            arguments["x-dead-letter-exchange"] = ""
            arguments["x-dead-letter-routing-key"] = name + self.dead_letter_suffix
        return arguments

    async def _declare_on(self, channel: Any, name: str, arguments: dict[str, Any]) -> Any:
        aiormq = require_extra("aiormq.exceptions", feature="RabbitMQ", extra="amqp")
        try:
            return await channel.declare_queue(name, durable=True, arguments=arguments or None)
        except aiormq.ChannelPreconditionFailed as exc:  # type: ignore[attr-defined]
            where = f"broker.queues.{name}" if name in self.settings.queues else "the defaults"
            raise ValueError(
                f"queue {name!r} exists on the RabbitMQ server with other options than"
                f" {where} give ({arguments or 'none'}); delete the queue or change the"
                f" settings: {exc}"
            ) from None

    async def _declare_topology(self) -> None:
        aio_pika = _aio_pika()
        aiormq = require_extra("aiormq.exceptions", feature="RabbitMQ", extra="amqp")
        channel = await self._connection.channel()
        try:
            for name, exchange in self.settings.exchanges.items():
                try:
                    await channel.declare_exchange(
                        name, aio_pika.ExchangeType(exchange.type), durable=exchange.durable
                    )
                except aiormq.ChannelPreconditionFailed as exc:  # type: ignore[attr-defined]
                    raise ValueError(
                        f"exchange {name!r} exists on the RabbitMQ server with other options"
                        f" than broker.exchanges.{name} give: {exc}"
                    ) from None
            for name, options in self.settings.queues.items():
                queue = await self._declare_on(channel, name, self._queue_arguments(name))
                self._declared.add(name)
                if "x-dead-letter-routing-key" in self._queue_arguments(name):
                    await self._declare(name + self.dead_letter_suffix)
                for binding in options.bindings:
                    await queue.bind(binding.exchange, routing_key=binding.routing_key)
        finally:
            if not channel.is_closed:
                await channel.close()

    async def _exists(self, name: str) -> bool:
        """Whether queue ``name`` exists on the server: a passive declare, on a channel of
        its own (a missing queue closes the channel)."""
        channel = await self._connection.channel()
        try:
            await channel.declare_queue(name, passive=True, robust=False)
            return True
        except self._errors.ChannelNotFoundEntity:
            return False
        finally:
            if not channel.is_closed:
                await channel.close()

    async def _foreign(self, name: str) -> bool:
        """Whether ``name`` is a queue to use as it is: not under ``broker.queues``, and it
        exists on the server (declared by someone else, with options of theirs)."""
        return name not in self.settings.queues and await self._exists(name)

    async def _declare(self, name: str) -> None:
        """Make sure queue ``name`` exists: one under ``broker.queues`` with its options, an
        existing one as it is, any other as a classic durable queue."""
        if name not in self._declared:
            if not await self._foreign(name):
                channel = await self._connection.channel()
                try:
                    await self._declare_on(channel, name, self._queue_arguments(name))
                finally:
                    if not channel.is_closed:
                        await channel.close()
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
        if self._closing:
            raise self.state.closed_error(destination)
        if self._channel is None:
            raise PublishError("RabbitMQ broker is not connected", destination=destination)
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
            await self._send(routing_key or "", _to_amqp(message), exchange=destination)
            return
        if routing_key is not None:
            raise InvalidMessage(
                f"routing_key given, but {destination!r} is not an exchange under broker.exchanges",
                destination=destination,
            )
        _check_name(destination)
        known = declare or destination in self.settings.queues or destination in self.destinations
        await self._send(destination, _to_amqp(message), declare=known, existing=not known)

    async def request(self, destination: str, message: Message, *, timeout: float) -> Message:
        return await request_reply(self, destination, message, timeout, self._transient)

    async def reply_address(self) -> str:
        if self._reply_queue is None:
            queue = await self._channel.declare_queue(exclusive=True, auto_delete=True)

            async def on_reply(incoming: Any) -> None:
                self.replies.resolve(_from_amqp(incoming))

            await queue.consume(on_reply, no_ack=True)
            self._reply_queue = queue.name
        return self._reply_queue

    async def reply(self, to: str, message: Message) -> None:
        await self._send(to, _to_amqp(message))

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
        subscription = AmqpSubscription(channel, queue, tag)
        self._subscriptions.append(subscription)
        return subscription


_MAX_NAME = 255  # bytes: queue and exchange names are AMQP 0-9-1 short strings


def _check_name(name: str) -> None:
    """Raise :class:`InvalidMessage` for a queue name RabbitMQ refuses: empty, over 255
    bytes of UTF-8, or in the reserved ``amq.`` namespace."""
    size = len(name.encode())
    if not 0 < size <= _MAX_NAME or name.startswith("amq."):
        raise InvalidMessage(
            f"{name!r} cannot be a RabbitMQ queue: names are 1 to 255 bytes and do not"
            " start with 'amq.' (reserved)",
            destination=name,
        )


def _refusal(exchange: str | None, routing_key: str, exc: BaseException) -> str:
    if exchange is None:
        return f"RabbitMQ refused the message for queue {routing_key!r}: {exc!r}"
    return (
        f"RabbitMQ did not store the message for exchange {exchange!r}, routing key"
        f" {routing_key!r} (no queue bound, or a queue refused it): {exc!r}"
    )
