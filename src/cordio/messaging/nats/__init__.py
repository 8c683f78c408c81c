"""The NATS JetStream broker (``nats://``); see :mod:`cordio.messaging.nats.broker`."""

from cordio.messaging.nats.broker import NatsBroker
from cordio.messaging.nats.subscriber import NatsDelivery, NatsSubscription

__all__ = ["NatsBroker", "NatsDelivery", "NatsSubscription"]
