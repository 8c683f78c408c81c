"""A message as every broker implementation hands it over, and the settings of messaging."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from pydantic import Field

from cordio.settings import Settings

ATTEMPT = "x-cordio-attempt"
DEATH_REASON = "x-cordio-death-reason"
DEATH_ATTEMPTS = "x-cordio-death-attempts"


@dataclass
class Message:
    """One message.

    Attributes:
        body: the encoded payload (bytes).
        headers: string headers (broker metadata under ``x-`` names).
        message_id: unique id (a UUID unless the publisher chose one); brokers use it to
            drop duplicates where they can.
        content_type: how ``body`` is encoded (``application/json``,
            ``application/msgpack``).
        reply_to: where a reply goes (request/reply), or ``None``.
        correlation_id: the request this replies to, or ``None``.
        redelivered: the broker delivered it before.
        attempt: delivery attempt, 1 for the first.
    """

    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    message_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    content_type: str = "application/json"
    reply_to: str | None = None
    correlation_id: str | None = None
    redelivered: bool = False
    attempt: int = 1

    def dead_lettered(self, reason: str, *, message_id: str | None = None) -> Message:
        """The copy that goes to the dead-letter destination: ``reason`` and the attempt
        count in headers."""
        return Message(
            body=self.body,
            headers={**self.headers, DEATH_REASON: reason, DEATH_ATTEMPTS: str(self.attempt)},
            message_id=message_id or self.message_id,
            content_type=self.content_type,
        )

    def copy_for_redelivery(self, **headers: str) -> Message:
        """The same message, next attempt, marked redelivered, with extra headers."""
        return Message(
            body=self.body,
            headers={**self.headers, **headers, ATTEMPT: str(self.attempt + 1)},
            message_id=self.message_id,
            content_type=self.content_type,
            reply_to=self.reply_to,
            correlation_id=self.correlation_id,
            redelivered=True,
            attempt=self.attempt + 1,
        )


SCHEMES = ("memory://", "amqp://", "amqps://", "nats://", "tls://")


def check_size(message: Message, limit: int) -> None:
    """Raise :class:`ValueError` if the message body is over ``limit`` bytes."""
    if len(message.body) > limit:
        raise ValueError(f"message of {len(message.body)} bytes is over the limit of {limit}")


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
    """

    url: str = "memory://"
    prefetch: int = Field(10, ge=1, le=65535)
    max_attempts: int = Field(5, ge=1, le=1000)
    requeue_delay: float = Field(1.0, ge=0)
    dead_letter_suffix: str = Field(".dead-letter", min_length=1)
    max_message_bytes: int = Field(1 << 20, ge=1)

    def model_post_init(self, context: Any, /) -> None:
        if not self.url.startswith(SCHEMES):
            raise ValueError(
                f"unsupported broker url scheme {self.url.split(':', 1)[0]!r}; use one of"
                f" {', '.join(SCHEMES)}"
            )
