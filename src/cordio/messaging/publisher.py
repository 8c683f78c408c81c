"""The Publisher resource: publish payloads to a destination, confirmed by the broker."""

from __future__ import annotations

import collections
from typing import Any

from cordio.messaging.broker import Broker
from cordio.messaging.codec import JSON, encode
from cordio.messaging.errors import InvalidMessage, PublishError, RequestTimeout
from cordio.messaging.message import Message
from cordio.messaging.rpc import read_reply
from cordio.observe.tracing import outgoing

#: Destinations counted by name in :attr:`Publisher.published` and ``failed``.
MAX_COUNTED = 200


class Publisher:
    """Publishes messages; inject it by type (``publisher: Publisher``).

    Args:
        broker: the connected broker.
        max_message_bytes: larger encoded payloads are refused.

    Attributes:
        published: messages the broker confirmed, by destination (at most
            :data:`MAX_COUNTED` destinations by name, the rest as ``"other"``).
        failed: publishes and requests that raised, by destination (likewise).
    """

    def __init__(self, broker: Broker, max_message_bytes: int) -> None:
        self.broker = broker
        self.max_message_bytes = max_message_bytes
        self.published: collections.Counter[str] = collections.Counter()
        self.failed: collections.Counter[str] = collections.Counter()

    async def publish(
        self,
        destination: str,
        payload: Any,
        *,
        headers: dict[str, str] | None = None,
        message_id: str | None = None,
        content_type: str = JSON,
        routing_key: str | None = None,
        declare: bool = False,
    ) -> Message:
        """Encode ``payload`` and publish it; return once the broker confirmed it.

        ``destination`` must be known: a queue, exchange or stream under ``broker.queues``,
        ``broker.exchanges`` or ``broker.streams``, a destination declared with
        ``app.publishes`` or a source the app consumes (publishing creates those if the
        broker has none yet), or one that exists on the broker already. Any other name
        raises :class:`PublishError` — a mistyped name never fills an orphan queue — unless
        ``declare`` is true.

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
            declare: create a queue (NATS: a stream) for ``destination`` if the broker has
                none, whatever its name (default false).

        Returns:
            The message as published.

        Raises:
            InvalidMessage: (a ``PublishError`` and a ``ValueError``: the caller's error,
                never a dependency failure to policies) the payload cannot be encoded in
                ``content_type``, the encoded payload is over ``broker.max_message_bytes``
                or the server's limit, a header is not a string or not one the broker can
                carry, the destination name is invalid, or ``routing_key`` was given for a
                queue.
            PublishError: (a ``ConnectionError``) no queue, exchange or stream of that
                name is known (see above) and ``declare`` is false; the broker is down or
                closed and did not confirm the message within ``broker.publish_timeout``,
                the buffer of waiting publishes is full, or the broker refused or could not
                route it.
                The client library's exception, if any, is its ``__cause__``.
        """
        carried = _carried(headers)
        try:
            with outgoing(f"{destination} publish", "producer", _attributes(destination), carried):
                message = self._message(destination, payload, carried, message_id, content_type)
                try:
                    await self.broker.publish(
                        destination, message, routing_key=routing_key, declare=declare
                    )
                except PublishError:
                    raise
                except Exception as exc:  # a broker must raise PublishError; never leak one
                    raise _wrapped(destination, exc) from exc
        except Exception:
            self.failed[self._counted(destination)] += 1
            raise
        self.published[self._counted(destination)] += 1
        return message

    def _counted(self, destination: Any) -> str:
        """The label a destination is counted under (bounded: see :attr:`published`)."""
        name = destination if isinstance(destination, str) else "invalid"
        if name in self.published or name in self.failed:
            return name
        if len(self.published) + len(self.failed) >= MAX_COUNTED:
            return "other"
        return name

    def _message(
        self,
        destination: str,
        payload: Any,
        headers: dict[str, str] | None,
        message_id: str | None,
        content_type: str,
    ) -> Message:
        if not isinstance(destination, str) or not destination:
            raise InvalidMessage(
                f"destination {destination!r}: a queue, subject or exchange name is needed",
                destination=str(destination),
            )
        try:
            body = encode(payload, content_type)
        except Exception as exc:
            raise InvalidMessage(
                f"payload for {destination!r} cannot be encoded as {content_type}:"
                f" {type(exc).__name__}: {exc}",
                destination=destination,
            ) from exc
        if len(body) > self.max_message_bytes:
            raise InvalidMessage(
                f"message for {destination!r} is {len(body)} bytes, over the limit of"
                f" {self.max_message_bytes} (broker.max_message_bytes)",
                destination=destination,
            )
        for key, value in (headers or {}).items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise InvalidMessage(
                    f"message for {destination!r}, header {key!r}: names and values must be"
                    " strings",
                    destination=destination,
                )
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
            The reply payload, decoded by the reply's content type (JSON or MessagePack).

        Raises:
            InvalidMessage: as for :meth:`publish`.
            PublishError: as for :meth:`publish`; on NATS also when nobody can answer (no
                stream stores the subject and no subscriber listens).
            RequestTimeout: (a ``TimeoutError``) no reply within ``timeout``.
            RemoteError: the handler failed (its status, title and detail), or status 502:
                the reply cannot be decoded or does not fit ``returns``.
        """
        carried = _carried(headers)
        with outgoing(f"{destination} publish", "producer", _attributes(destination), carried):
            message = self._message(destination, payload, carried, None, content_type)
            try:
                reply = await self.broker.request(destination, message, timeout=timeout)
            except (PublishError, RequestTimeout):
                raise
            except Exception as exc:  # a broker must raise PublishError; never let one leak
                raise _wrapped(destination, exc) from exc
        return read_reply(reply, returns, destination, self.max_message_bytes)


def _carried(headers: Any) -> Any:
    """The headers a message will carry, trace context added (a copy: the caller's dict is
    left alone); anything but a dict is left for :meth:`Publisher._message` to refuse."""
    if headers is None:
        return {}
    return dict(headers) if isinstance(headers, dict) else headers


def _attributes(destination: str) -> dict[str, str]:
    """A PRODUCER span's attributes (OpenTelemetry messaging semantic conventions)."""
    return {"messaging.destination.name": destination, "messaging.operation.type": "send"}


def _wrapped(destination: str, exc: Exception) -> PublishError:
    """A :class:`PublishError` for an exception a broker let through (a caller's error,
    ``ValueError`` or ``TypeError``, becomes :class:`InvalidMessage`)."""
    kind = InvalidMessage if isinstance(exc, ValueError | TypeError) else PublishError
    return kind(f"publish to {destination!r} failed: {exc!r}", destination=destination)
