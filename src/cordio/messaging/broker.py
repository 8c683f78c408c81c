"""The broker contract every implementation (memory, AMQP, NATS) fulfils.

At-least-once: a delivery stays owned by its consumer until :meth:`Delivery.ack`; a consumer
that goes away without acking gives its deliveries back to the broker, which delivers them
again (``redelivered``). :meth:`Delivery.nack` with ``requeue`` delivers again after a
delay; :meth:`Delivery.dead_letter` moves the message to the source's dead-letter
destination with the reason and attempt count in headers.

Also what implementations share: :func:`broker_class` (the implementation a ``broker.url``
names) and :class:`ServerBroker` (the common set-up of the RabbitMQ and NATS brokers).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Coroutine
from typing import Any, ClassVar, Protocol, Self

from cordio.messaging.connection import ConnectionState
from cordio.messaging.errors import PublishError
from cordio.messaging.message import Message
from cordio.messaging.rpc import Replies
from cordio.messaging.settings import BROKERS, BrokerSettings, url_scheme


class Delivery(Protocol):
    """A received message and what its consumer decides about it (exactly once)."""

    message: Message

    async def ack(self) -> None:
        """The message is done; the broker forgets it."""

    async def nack(self, *, delay: float = 0.0) -> None:
        """Deliver the message again after ``delay`` seconds (next attempt)."""

    async def dead_letter(self, reason: str) -> None:
        """Move the message to the dead-letter destination, ``reason`` in its headers."""


Handler = Callable[[Delivery], Coroutine[Any, Any, None]]


class Subscription(Protocol):
    """A running consumer of one source."""

    async def pause(self) -> None:
        """Stop receiving new deliveries; those in hand stay owned until settled."""

    async def cancel(self) -> None:
        """Stop receiving new deliveries; those not yet settled go back to the broker."""

    async def backlog(self) -> int | None:
        """Messages waiting for this consumer, as the broker reports them (RabbitMQ: the
        queue's ready messages; NATS: the consumer's pending ones); ``None`` when it
        cannot say now. Never raises."""


class Broker(Protocol):
    """A connection to a message broker."""

    async def connect(self) -> None:
        """Connect (with retries where the implementation has them)."""

    async def close(self) -> None:
        """Cancel subscriptions and disconnect; unsettled deliveries go back to the broker."""

    async def publish(
        self,
        destination: str,
        message: Message,
        *,
        routing_key: str | None = None,
        declare: bool = False,
    ) -> None:
        """Publish and return once the broker has the message (confirmed).

        ``destination`` is a queue (subject), or an exchange from ``broker.exchanges``,
        which routes by ``routing_key``. It must be known: under ``broker.queues``,
        ``broker.exchanges`` or ``broker.streams``, in :attr:`destinations` (what the app
        consumes or declared with ``app.publishes``), or existing on the broker already;
        ``declare=True`` creates a queue (NATS: a stream) for any other name.

        Raises:
            PublishError: the destination is not known (see above) and ``declare`` is
                false; not confirmed within ``broker.publish_timeout`` seconds, the
                publish buffer is full while the broker is down, the broker is closed, or
                it refused or could not route the message (the client library's exception
                is the ``__cause__``).
            InvalidMessage: (a ``PublishError`` and a ``ValueError``) the message is over
                ``broker.max_message_bytes`` or the server's limit, has a header the broker
                cannot carry, the destination name is invalid, or ``routing_key`` was given
                for a destination that is not an exchange.
        """

    async def request(self, destination: str, message: Message, *, timeout: float) -> Message:
        """Publish ``message`` as a request (setting ``reply_to`` and ``correlation_id``)
        and return the reply.

        Raises:
            PublishError: as for :meth:`publish`, or nobody can answer (NATS: no stream
                stores the subject and no subscriber listens).
            RequestTimeout: no reply within ``timeout`` seconds.
        """

    async def subscribe(
        self, source: str, handler: Handler, *, prefetch: int, concurrency: int | None = None
    ) -> Subscription:
        """Deliver messages of ``source`` to ``handler``, at most ``prefetch`` unsettled.

        ``concurrency`` is how many handler calls the consumer runs at once (``None``: up to
        ``prefetch``); a broker may use it to size a pool of workers."""

    replies: Replies
    state: ConnectionState
    #: names the app publishes to or consumes from (NATS: subjects, wildcards allowed), so
    #: publishing to them creates what is missing, as ``declare=True`` does
    destinations: set[str]

    @property
    def is_connected(self) -> bool:
        """Whether the connection is up now (readiness turns false while it is not)."""

    async def reply_address(self) -> str:
        """The address replies to this connection's requests go to (set up on first use)."""

    async def reply(self, to: str, message: Message) -> None:
        """Send a reply to a request's ``reply_to`` address."""


class BrokerClass(Protocol):
    """A broker implementation, as :data:`~cordio.messaging.settings.BROKERS` names it."""

    def from_settings(
        self, settings: BrokerSettings, destinations: set[str] | None = None
    ) -> Broker:
        """The (not yet connected) broker for the ``broker`` section ``settings``;
        ``destinations``: see :attr:`Broker.destinations`."""


def broker_class(url: str) -> BrokerClass | None:
    """The broker implementation the scheme of ``url`` names in
    :data:`~cordio.messaging.settings.BROKERS`, imported now; ``None`` for a scheme not
    listed there."""
    path = BROKERS.get(url_scheme(url))
    if path is None:
        return None
    module, _, name = path.rpartition(".")
    found: BrokerClass = getattr(importlib.import_module(module), name)
    return found


class ServerBroker:
    """What the brokers of a server (RabbitMQ, NATS) set up alike: the URL, the ``broker``
    section and the limits read from it, the connection state with its publish gate, the
    requests waiting for replies, and the names the app publishes to or consumes from.

    Args:
        url: the server's URL.
        settings: the ``broker`` section; defaults (with ``url``) when omitted.
        destinations: names the app publishes to or consumes from (see
            :attr:`Broker.destinations`). Default: none.
    """

    #: the server's name in log lines and errors (``RabbitMQ``, ``NATS``)
    server: ClassVar[str]

    def __init__(
        self,
        url: str,
        *,
        settings: BrokerSettings | None = None,
        destinations: set[str] | None = None,
    ) -> None:
        self.url = url
        self.destinations: set[str] = set(destinations or ())
        self.settings = settings or BrokerSettings(url=url)
        self.dead_letter_suffix = self.settings.dead_letter_suffix
        self.max_message_bytes = self.settings.max_message_bytes
        self.state = ConnectionState.for_broker(self.server, self.settings)
        self.replies = Replies()
        self._closing = False

    @classmethod
    def from_settings(cls, settings: BrokerSettings, destinations: set[str] | None = None) -> Self:
        """The (not yet connected) broker of ``settings.url``, with ``settings``."""
        return cls(settings.url, settings=settings, destinations=destinations)

    @property
    def is_connected(self) -> bool:
        """Whether the connection is up now (RabbitMQ: up and restored); false while the
        client reconnects."""
        return self.state.is_connected

    def _check_open(self, destination: str, *, connected: bool) -> None:
        """Raise :class:`PublishError` for a publish to ``destination`` once the broker is
        closed, or before it ever ``connected``."""
        if self._closing:
            raise self.state.closed_error(destination)
        if not connected:
            raise PublishError(f"{self.server} broker is not connected", destination=destination)


def unknown_destination(destination: str, *, subject: bool = False) -> PublishError:
    """The error for a publish to a destination nobody declared and the broker does not
    have (a mistyped name); ``subject``: the NATS wording (streams store subjects)."""
    if subject:
        what, setting = f"no stream stores subject {destination!r}", "broker.streams"
    else:
        what, setting = f"no queue or exchange named {destination!r}", "broker.queues"
    return PublishError(
        f"{what}; declare it in {setting} (or with app.publishes) or pass declare=True",
        destination=destination,
    )
