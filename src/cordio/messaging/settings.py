"""The ``broker`` settings section, with the topology declared from it.

Topology is declared idempotently when the broker connects: declaring what already exists
with the same options is a no-op; an existing queue or stream with different options stops
start-up with an error naming the setting (RabbitMQ's ``PRECONDITION_FAILED``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from cordio.settings import Settings

#: Each ``broker.url`` scheme and the broker class it names, as ``module.Class`` (imported
#: when first used: the client libraries are optional extras).
BROKERS: dict[str, str] = {
    "memory": "cordio.messaging.memory.MemoryBroker",
    "amqp": "cordio.messaging.amqp.AmqpBroker",
    "amqps": "cordio.messaging.amqp.AmqpBroker",
    "nats": "cordio.messaging.nats.NatsBroker",
    "tls": "cordio.messaging.nats.NatsBroker",
}
SCHEMES = tuple(f"{scheme}://" for scheme in BROKERS)


def url_scheme(url: str) -> str:
    """The scheme of ``url`` (what comes before ``://``), or ``""`` if it has none."""
    scheme, separator, _ = url.partition("://")
    return scheme if separator else ""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ExchangeSettings(_Strict):
    """A RabbitMQ exchange (``broker.exchanges.<name>``); the memory broker routes alike.

    Attributes:
        type: ``direct`` (routing key equals binding key), ``topic`` (AMQP 0-9-1 topic
            patterns: ``*`` one word, ``#`` zero or more words), ``fanout`` (every bound
            queue) or ``headers`` (RabbitMQ only). Default ``topic``.
        durable: survives a broker restart (default true).
    """

    type: Literal["direct", "topic", "fanout", "headers"] = "topic"
    durable: bool = True


class BindingSettings(_Strict):
    """A binding of a queue to an exchange.

    Attributes:
        exchange: the exchange's name (declared under ``broker.exchanges``).
        routing_key: binding key; a pattern for ``topic`` exchanges (default ``#``).
    """

    exchange: str = Field(min_length=1)
    routing_key: str = "#"


class QueueSettings(_Strict):
    """A queue's options (``broker.queues.<name>``); queues not listed are classic, durable.

    Attributes:
        type: ``classic`` (default) or ``quorum`` (replicated, RabbitMQ 3.8+).
        delivery_limit: quorum queues only: deliveries after which RabbitMQ itself
            dead-letters a message to ``<queue><dead_letter_suffix>``; this catches a message
            that crashes its consumer process before it can settle it. Default: unset.
        single_active_consumer: only one consumer receives at a time; the others take over
            when it goes away (ordered processing with a hot standby). Default false.
        max_length: messages the queue holds at most; publishes beyond it are refused
            (``reject-publish``), so a publisher sees the error instead of losing data.
        message_ttl: seconds a message may wait in the queue before it is dead-lettered.
        bindings: exchanges this queue is bound to, with binding keys.
    """

    type: Literal["classic", "quorum"] = "classic"
    delivery_limit: int | None = Field(None, ge=1)
    single_active_consumer: bool = False
    max_length: int | None = Field(None, ge=1)
    message_ttl: float | None = Field(None, gt=0)
    bindings: list[BindingSettings] = Field(default_factory=list)

    @model_validator(mode="after")
    def _quorum_only(self) -> QueueSettings:
        if self.delivery_limit is not None and self.type != "quorum":
            raise ValueError("delivery_limit needs type = 'quorum'")
        return self


class StreamSettings(_Strict):
    """A NATS JetStream stream (``broker.streams.<name>``).

    Subjects not covered by a configured stream get a stream of their own
    (``CORDIO_<subject>``) with the defaults below.

    Attributes:
        subjects: subjects (wildcards ``*`` and ``>`` allowed) the stream stores.
        storage: ``file`` (default) or ``memory``.
        replicas: copies in a cluster (default 1).
        max_age: seconds a message is kept; 0 (default) keeps it until acknowledged by
            consumers as the retention policy says.
        max_msgs: messages kept at most; -1 (default) is unlimited.
        max_bytes: bytes kept at most; -1 (default) is unlimited.
        duplicate_window: seconds within which a re-sent ``Nats-Msg-Id`` is dropped
            (default 120, the server's default).
        retention: ``limits`` (default), ``workqueue`` (a message is removed once acked)
            or ``interest``.
    """

    subjects: list[str] = Field(min_length=1)
    storage: Literal["file", "memory"] = "file"
    replicas: int = Field(1, ge=1, le=5)
    max_age: float = Field(0.0, ge=0)
    max_msgs: int = Field(-1, ge=-1)
    max_bytes: int = Field(-1, ge=-1)
    duplicate_window: float = Field(120.0, gt=0)
    retention: Literal["limits", "workqueue", "interest"] = "limits"


class BrokerSettings(Settings, section="broker"):
    """The ``broker`` section.

    Attributes:
        url: which broker: ``memory://`` (in-process, the embedded default),
            ``amqp://user:password@host:5672/vhost`` or ``amqps://...`` (RabbitMQ, needs
            ``cordio[amqp]``), ``nats://host:4222`` (NATS JetStream, needs ``cordio[nats]``).
        prefetch: messages a consumer holds unacknowledged at most (default 10).
        max_attempts: deliveries of one message before it is dead-lettered (default 5;
            bounded, so no message loops unnoticed).
        requeue_delay: seconds before a failed message is delivered again (default 1).
        dead_letter_suffix: a source's dead-letter destination is its name plus this
            (default ``.dead-letter``).
        max_message_bytes: larger messages are refused when published and dead-lettered
            when received (default 1 MiB).
        publish_timeout: seconds a publish may take, waiting for the connection and the
            broker's confirm, before it raises (default 5).
        publish_buffer: publishes that may wait for the connection while the broker is
            down; one more raises at once (default 1000).
        reconnect_max_delay: seconds between reconnect attempts at most; they start at 1 and
            double, with jitter (default 10).
        ack_wait: NATS: seconds JetStream waits for an ack before it delivers again
            (default 30); a running handler renews it with ``in_progress``.
        max_ack_pending: NATS: unacked messages of one durable consumer over all its
            replicas (default 1000); each replica holds at most ``prefetch``.
        lag_interval: seconds between asking the broker how many messages wait for each
            consumer (``cordio_consumer_lag``; default 15; 0: never).
        exchanges: RabbitMQ exchanges by name (:class:`ExchangeSettings`).
        queues: queue options by name (:class:`QueueSettings`).
        streams: NATS JetStream streams by name (:class:`StreamSettings`).
    """

    url: str = "memory://"
    prefetch: int = Field(10, ge=1, le=65535)
    max_attempts: int = Field(5, ge=1, le=1000)
    requeue_delay: float = Field(1.0, ge=0)
    lag_interval: float = Field(15.0, ge=0)
    dead_letter_suffix: str = Field(".dead-letter", min_length=1)
    max_message_bytes: int = Field(1 << 20, ge=1)
    publish_timeout: float = Field(5.0, gt=0, le=3600)
    publish_buffer: int = Field(1000, ge=0)
    reconnect_max_delay: float = Field(10.0, ge=0.1, le=3600)
    ack_wait: float = Field(30.0, ge=1)
    max_ack_pending: int = Field(1000, ge=1)
    exchanges: dict[str, ExchangeSettings] = Field(default_factory=dict)
    queues: dict[str, QueueSettings] = Field(default_factory=dict)
    streams: dict[str, StreamSettings] = Field(default_factory=dict)

    def model_post_init(self, context: Any, /) -> None:
        if not self.url.startswith(SCHEMES):
            raise ValueError(
                f"unsupported broker url scheme {self.url.split(':', 1)[0]!r}; use one of"
                f" {', '.join(SCHEMES)}"
            )
        for queue, options in self.queues.items():
            for binding in options.bindings:
                if binding.exchange not in self.exchanges:
                    raise ValueError(
                        f"queues.{queue}.bindings: exchange {binding.exchange!r} is not"
                        " declared under broker.exchanges"
                    )

    def queue(self, name: str) -> QueueSettings:
        """The options of queue ``name`` (defaults when it is not listed)."""
        return self.queues.get(name) or _DEFAULT_QUEUE


_DEFAULT_QUEUE = QueueSettings()


def topic_matches(pattern: str, key: str) -> bool:
    """Whether routing ``key`` matches a topic binding ``pattern`` (AMQP 0-9-1 topic
    exchange: words separated by ``.``, ``*`` matches one word, ``#`` zero or more)."""

    def match(p: list[str], k: list[str]) -> bool:
        if not p:
            return not k
        head, rest = p[0], p[1:]
        if head == "#":
            return any(match(rest, k[i:]) for i in range(len(k) + 1))
        if not k:
            return False
        return (head == "*" or head == k[0]) and match(rest, k[1:])

    return match(pattern.split("."), key.split("."))
