"""The NATS JetStream broker (``nats://``) on nats-py, with the contract's semantics.

- A destination is a subject stored by the stream that stores it on the server: one of
  ``broker.streams`` (created or updated from settings at connect), or any other, created by
  an operator or another service (found with ``$JS.API.STREAM.NAMES`` and a subject filter,
  used as it is, never changed). A subject no stream stores gets a stream of its own
  (``CORDIO_<subject>``, created on first use) only when the app consumes it (a source's
  wildcards match), declared it with ``app.publishes`` (:attr:`NatsBroker.destinations`) or
  publishes with ``declare=True``; a publish to any other subject no stream stores raises
  :class:`~cordio.messaging.errors.PublishError`, so a mistyped subject never creates an
  orphan stream. A publish waits for the JetStream ack and
  carries ``Nats-Msg-Id``, so the server drops a duplicate sent within the stream's
  de-duplication window. Publishes go through the publish gate and are sent again (same
  ``Nats-Msg-Id``, so never stored twice) when the connection drops before the ack. Every
  failure raises :class:`~cordio.messaging.errors.PublishError`, or its subclass
  :class:`~cordio.messaging.errors.InvalidMessage` for a message the server can never
  take (an invalid subject or header, over ``max_payload`` or the stream's message size).
- A subscription is a durable pull consumer named after the source (``cordio_<subject>``),
  on the stream that stores the source, filtered by it: replicas subscribing to the same
  source share it (competing consumers). Each replica holds at most ``prefetch`` unsettled
  deliveries (its fetch size); all replicas together at most ``broker.max_ack_pending``.
- Request/reply: a request to a subject a stream stores is published to the stream with
  ``Reply-To`` (``<inbox>.<correlation id>``) and ``Correlation-Id`` headers, and the
  handler answers there; a request to a subject no stream stores is a core NATS request
  (the message's reply subject), so any NATS responder answers, and none raises
  ``PublishError`` at once (the server's "no responders"); it creates no stream.
- The attempt number is the server's delivery count; ``nack(delay)`` is a NAK with that
  delay; ``dead_letter`` publishes to ``<subject><suffix>`` and terminates the original.
- While a handler runs, ``in_progress`` is sent every half ``ack_wait``, so a slow handler
  keeps its message instead of seeing it redelivered.
- nats-py reconnects forever, attempts spaced by exponential backoff with jitter up to
  ``broker.reconnect_max_delay`` seconds; fetching resumes once it is back. A durable
  consumer or stream deleted on the server is created again within a few seconds.
- ``pause`` stops fetching; ``cancel`` also NAKs what is unsettled, for prompt redelivery.

Modules: :mod:`~cordio.messaging.nats.broker` (connection, publishing, request/reply),
:mod:`~cordio.messaging.nats.subscriber` (the fetch loop and its deliveries),
:mod:`~cordio.messaging.nats.topology` (streams, and which stream stores a subject) and
:mod:`~cordio.messaging.nats.wire` (subjects, headers, messages to and from nats-py).
"""

from cordio.messaging.nats.broker import NatsBroker
from cordio.messaging.nats.subscriber import NatsDelivery, NatsSubscription

__all__ = ["NatsBroker", "NatsDelivery", "NatsSubscription"]
