"""RabbitMQ wire format: messages to and from aio-pika, header values as text, and the
queue names RabbitMQ accepts.

cordio's message fields travel as AMQP properties (``message_id``, ``content_type``,
``reply_to``, ``correlation_id``; persistent delivery mode) and the attempt number as the
attempt header (left out on a first attempt). A quorum queue's ``x-delivery-count`` is read
into the attempt number on a redelivery, never copied on.
"""

from __future__ import annotations

import datetime
import decimal
from typing import Any

from pydantic_core import to_json

from cordio.errors import require_extra
from cordio.messaging.errors import InvalidMessage
from cordio.messaging.message import ATTEMPT, Message


def require_aio_pika() -> Any:
    """aio-pika, imported now (``cordio[amqp]``)."""
    return require_extra("aio_pika", feature="RabbitMQ", extra="amqp")


def to_amqp(message: Message, **extra: Any) -> Any:
    """``message`` as an aio-pika message: persistent, the attempt header unless it is the
    first attempt; ``extra``: more properties (``expiration``)."""
    aio_pika = require_aio_pika()
    headers = message.headers
    if message.attempt != 1:  # absent means the first attempt
        headers = {**headers, ATTEMPT: str(message.attempt)}
    return aio_pika.Message(
        body=message.body,
        headers=headers,
        message_id=message.message_id,
        content_type=message.content_type,
        reply_to=message.reply_to,
        correlation_id=message.correlation_id,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        **extra,
    )


def _header(value: Any) -> str:
    """An AMQP header value as text: strings as they are, byte arrays decoded as UTF-8,
    timestamps and decimals as their text, anything else (numbers, booleans, void, arrays,
    tables) as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, datetime.datetime | decimal.Decimal):
        return value.isoformat() if isinstance(value, datetime.datetime) else str(value)
    return to_json(value, fallback=_header).decode()


def from_amqp(incoming: Any) -> Message:
    """A delivery (an aio-pika ``IncomingMessage``) as a :class:`Message`: header values as
    text, the attempt from the attempt header, plus a quorum queue's delivery count on a
    redelivery."""
    headers = {str(k): _header(v) for k, v in (incoming.headers or {}).items()}
    raw_attempt = headers.get(ATTEMPT, "1")
    attempt = int(raw_attempt) if raw_attempt.isdigit() and 0 < int(raw_attempt) < 1 << 31 else 1
    # quorum queues count returned deliveries; not copied on, so a republished next attempt
    # does not count them twice
    returned = headers.pop("x-delivery-count", "")
    if incoming.redelivered and returned.isdigit() and int(returned) < 1 << 31:
        attempt += int(returned)  # believed only on a redelivery, where RabbitMQ sets it
    return Message(
        body=incoming.body,
        headers=headers,
        message_id=incoming.message_id or "",
        content_type=incoming.content_type or "application/json",
        reply_to=incoming.reply_to,
        correlation_id=incoming.correlation_id,
        redelivered=bool(incoming.redelivered) or attempt > 1,
        attempt=attempt,
    )


_MAX_NAME = 255  # bytes: queue and exchange names are AMQP 0-9-1 short strings


def check_name(name: str) -> None:
    """Raise :class:`InvalidMessage` for a queue name RabbitMQ refuses: empty, over 255
    bytes of UTF-8, or in the reserved ``amq.`` namespace."""
    size = len(name.encode())
    if not 0 < size <= _MAX_NAME or name.startswith("amq."):
        raise InvalidMessage(
            f"{name!r} cannot be a RabbitMQ queue: names are 1 to 255 bytes and do not"
            " start with 'amq.' (reserved)",
            destination=name,
        )
