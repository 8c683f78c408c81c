"""The Publisher resource: publish payloads to a destination, confirmed by the broker."""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import TypeAdapter

from cordio.messaging.broker import Broker
from cordio.messaging.codec import JSON, encode
from cordio.messaging.message import Message
from cordio.messaging.rpc import raise_for_error


class Publisher:
    """Publishes messages; inject it by type (``publisher: Publisher``).

    Args:
        broker: the connected broker.
        max_message_bytes: larger encoded payloads are refused.
    """

    def __init__(self, broker: Broker, max_message_bytes: int) -> None:
        self.broker = broker
        self.max_message_bytes = max_message_bytes

    async def publish(
        self,
        destination: str,
        payload: Any,
        *,
        headers: dict[str, str] | None = None,
        message_id: str | None = None,
        content_type: str = JSON,
        routing_key: str | None = None,
    ) -> Message:
        """Encode ``payload`` and publish it; return once the broker confirmed it.

        While the broker is down the publish waits for it (at most ``broker.publish_buffer``
        publishes wait at once), and one interrupted by a dropped connection is sent again;
        it returns or raises within ``broker.publish_timeout`` seconds, never drops silently.

        Args:
            destination: queue (or subject) name, or an exchange from ``broker.exchanges``.
            payload: a pydantic model, plain data, or bytes.
            headers: string headers.
            message_id: the message's id (default: a new UUID); brokers drop duplicates
                by it where they can.
            content_type: ``application/json`` (default) or ``application/msgpack``.
            routing_key: the routing key when ``destination`` is an exchange.

        Returns:
            The message as published.

        Raises:
            ValueError: the encoded payload is over ``broker.max_message_bytes``, a header
                is not a string, or ``routing_key`` was given for a queue.
            PublishError: (a ``ConnectionError``) the broker did not confirm the message in
                time, the buffer of waiting publishes is full, or the broker refused or
                could not route it.
        """
        message = self._message(destination, payload, headers, message_id, content_type)
        await self.broker.publish(destination, message, routing_key=routing_key)
        return message

    def _message(
        self,
        destination: str,
        payload: Any,
        headers: dict[str, str] | None,
        message_id: str | None,
        content_type: str,
    ) -> Message:
        body = encode(payload, content_type)
        if len(body) > self.max_message_bytes:
            raise ValueError(
                f"message for {destination!r} is {len(body)} bytes, over the limit of"
                f" {self.max_message_bytes} (broker.max_message_bytes)"
            )
        for key, value in (headers or {}).items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise ValueError(f"header {key!r}: names and values must be strings")
        message = Message(body=body, headers=dict(headers or {}), content_type=content_type)
        if message_id is not None:
            message.message_id = message_id
        return message

    async def request(
        self,
        destination: str,
        payload: Any,
        *,
        timeout: float = 10.0,
        returns: Any = Any,
        headers: dict[str, str] | None = None,
        content_type: str = JSON,
    ) -> Any:
        """Send a request and wait for the handler's reply (RPC).

        Args:
            destination: the handler's source.
            payload: as for :meth:`publish`.
            timeout: seconds to wait for the reply (default 10).
            returns: the type the reply is validated into (default: plain JSON data).

        Returns:
            The reply payload.

        Raises:
            TimeoutError: no reply within ``timeout``.
            RemoteError: the handler failed (its status, title and detail).
            pydantic.ValidationError: the reply does not fit ``returns``.
        """
        message = self._message(destination, payload, headers, None, content_type)
        broker = self.broker
        message.reply_to = await broker.reply_address()
        message.correlation_id, future = broker.replies.expect()
        try:
            await broker.publish(destination, message)
            async with asyncio.timeout(timeout):
                reply = await future
        except TimeoutError:
            raise TimeoutError(f"no reply from {destination!r} within {timeout} s") from None
        finally:
            broker.replies.forget(message.correlation_id)
        raise_for_error(reply)
        return TypeAdapter(returns).validate_json(reply.body)
