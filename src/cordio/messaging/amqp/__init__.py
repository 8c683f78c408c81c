"""The RabbitMQ broker (``amqp://``, ``amqps://``); see :mod:`cordio.messaging.amqp.broker`."""

from cordio.messaging.amqp.broker import AmqpBroker, AmqpDelivery, AmqpSubscription

__all__ = ["AmqpBroker", "AmqpDelivery", "AmqpSubscription"]
