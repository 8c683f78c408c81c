"""A message as every broker implementation hands it over."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from cordio.messaging.errors import InvalidMessage

ATTEMPT = "x-cordio-attempt"
DEATH_REASON = "x-cordio-death-reason"
DEATH_ATTEMPTS = "x-cordio-death-attempts"


@dataclass(slots=True)
class Message:
    """One message.

    Attributes:
        body: the encoded payload (bytes).
        headers: string headers (broker metadata under ``x-`` names).
        message_id: unique id (32 random hex digits unless the publisher chose one);
            brokers use it to drop duplicates where they can.
        content_type: how ``body`` is encoded (``application/json``,
            ``application/msgpack``).
        reply_to: where a reply goes (request/reply), or ``None``.
        correlation_id: the request this replies to, or ``None``.
        redelivered: the broker delivered it before.
        attempt: delivery attempt, 1 for the first.
    """

    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    message_id: str = field(default_factory=lambda: os.urandom(16).hex())
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


def check_size(message: Message, limit: int, destination: str) -> None:
    """Raise :class:`InvalidMessage` if the message body is over ``limit`` bytes
    (``broker.max_message_bytes``)."""
    if len(message.body) > limit:
        raise InvalidMessage(
            f"message for {destination!r} is {len(message.body)} bytes, over the limit of"
            f" {limit} (broker.max_message_bytes)",
            destination=destination,
        )
