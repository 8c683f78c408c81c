"""Messaging: ``@app.consume`` handlers, the ``Publisher`` resource, broker implementations.

``broker.url`` picks the implementation; ``memory://`` (in-process) is the embedded default.
Delivery is at-least-once: a message is acked only after its handler returns; failures are
delivered again after a delay and dead-lettered after ``broker.max_attempts``; poison
messages are dead-lettered at once.
"""

from cordio.messaging.broker import Broker, Delivery, Subscription
from cordio.messaging.consumer import Consumer, MessageContext
from cordio.messaging.dedup import DedupSettings, DedupStore
from cordio.messaging.errors import (
    InvalidMessage,
    PoisonMessage,
    PublishError,
    RemoteError,
    RequestTimeout,
)
from cordio.messaging.memory import MemoryBroker
from cordio.messaging.message import Message
from cordio.messaging.publisher import Publisher
from cordio.messaging.settings import BrokerSettings
from cordio.messaging.signals import Ack, Nack, Reject

__all__ = [
    "Ack",
    "Broker",
    "BrokerSettings",
    "Consumer",
    "DedupSettings",
    "DedupStore",
    "Delivery",
    "InvalidMessage",
    "MemoryBroker",
    "Message",
    "MessageContext",
    "Nack",
    "PoisonMessage",
    "PublishError",
    "Publisher",
    "Reject",
    "RemoteError",
    "RequestTimeout",
    "Subscription",
]
