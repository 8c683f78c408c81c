"""RabbitMQ topology: the exchanges and queues of ``broker.exchanges`` and ``broker.queues``
declared at connect (idempotently; different options on the server stop start-up naming
the setting), queues declared on first use with the options ``broker.queues`` gives them
(classic durable ones by default), ``<queue>.retry`` queues for delayed redelivery, and
whether a queue exists on the server (someone else's is used as it is).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cordio.errors import require_extra
from cordio.messaging.amqp.wire import require_aio_pika

if TYPE_CHECKING:
    from cordio.messaging.settings import BrokerSettings


class AmqpTopology:
    """The declarations of :class:`~cordio.messaging.amqp.AmqpBroker`, a base class of it:
    they go through the broker's connection, and what was declared is recorded in its
    ``_declared``."""

    settings: BrokerSettings
    dead_letter_suffix: str
    _connection: Any
    _channel: Any
    _declared: set[str]
    _errors: Any

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
        aio_pika = require_aio_pika()
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
