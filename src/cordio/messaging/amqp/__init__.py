"""The RabbitMQ broker (``amqp://``, ``amqps://``) on aio-pika, with the contract's semantics.

- Topology from ``broker.exchanges`` and ``broker.queues`` is declared at connect
  (idempotently). A queue not listed that already exists on the server (declared by another
  service, whatever its type and arguments) is used as it is. One that does not is declared a
  classic durable queue on first use only when the app consumes it, declared it with
  ``app.publishes`` (:attr:`AmqpBroker.destinations`) or publishes with ``declare=True``; a
  publish to any other name raises :class:`~cordio.messaging.errors.PublishError`, so a
  mistyped name never fills an orphan queue. Messages are persistent, published ``mandatory``, and
  every publish waits for the publisher confirm; every failure raises
  :class:`~cordio.messaging.errors.PublishError` (unroutable, refused, a missing
  exchange, the connection down past ``broker.publish_timeout``, closed) or its subclass
  :class:`~cordio.messaging.errors.InvalidMessage` (a name RabbitMQ refuses, a message it
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

Modules: :mod:`~cordio.messaging.amqp.broker` (connection, publishing, request/reply),
:mod:`~cordio.messaging.amqp.subscriber` (deliveries and consumers),
:mod:`~cordio.messaging.amqp.topology` (exchanges and queues) and
:mod:`~cordio.messaging.amqp.wire` (messages to and from aio-pika).
"""

from cordio.messaging.amqp.broker import AmqpBroker
from cordio.messaging.amqp.subscriber import AmqpDelivery, AmqpSubscription

__all__ = ["AmqpBroker", "AmqpDelivery", "AmqpSubscription"]
