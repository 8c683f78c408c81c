"""Request/reply over a broker: correlation ids, reply addresses, structured error replies.

A request carries ``reply_to`` (the requester's reply address) and a fresh
``correlation_id``; the consumer's handler return value is sent back to ``reply_to`` with the
same correlation id. A handler that fails answers with an error reply: header
``x-cordio-error: true`` and a body ``{"status", "title", "detail"}`` (problem-details
fields, RFC 9457; internals never included), so the caller gets an answer instead of a
timeout. A reply nobody waits for (unknown or expired correlation id) is dropped with a
warning.

At the requester every failure is one of three errors: :class:`PublishError` (the request
was not sent), :class:`RequestTimeout` (no reply in time) or :class:`RemoteError` (an error
reply, or a reply that cannot be decoded into the expected type).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter

from cordio.messaging.codec import decode
from cordio.messaging.errors import PoisonMessage, PublishError
from cordio.messaging.errors import RemoteError as RemoteError
from cordio.messaging.errors import RequestTimeout as RequestTimeout
from cordio.messaging.message import Message

if TYPE_CHECKING:
    from cordio.messaging.broker import Broker

log = logging.getLogger("cordio.messaging")

ERROR_HEADER = "x-cordio-error"


class Replies:
    """Requests waiting for their replies, by correlation id."""

    def __init__(self) -> None:
        self._waiting: dict[str, asyncio.Future[Message]] = {}

    def expect(self) -> tuple[str, asyncio.Future[Message]]:
        """A new correlation id and the future its reply resolves."""
        correlation_id = uuid.uuid4().hex
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._waiting[correlation_id] = future
        return correlation_id, future

    def forget(self, correlation_id: str) -> None:
        self._waiting.pop(correlation_id, None)

    def resolve(self, message: Message) -> bool:
        """Hand a reply to its waiting request; ``False`` (and a warning) if none waits."""
        future = self._waiting.pop(message.correlation_id or "", None)
        if future is None or future.done():
            log.warning("reply with unknown correlation id %r dropped", message.correlation_id)
            return False
        future.set_result(message)
        return True


async def request_reply(
    broker: Broker,
    destination: str,
    message: Message,
    timeout: float,
    transient: tuple[type[BaseException], ...] = (ConnectionError,),
) -> Message:
    """Send ``message`` as a request through ``broker`` and return the reply: ``reply_to``
    is the broker's reply address (set up through the publish gate, so within
    ``broker.publish_timeout`` while the connection is down), ``correlation_id`` a fresh one.

    Raises:
        PublishError: the request was not sent (nor the reply address set up).
        RequestTimeout: no reply within ``timeout`` seconds.
    """

    async def set_up() -> None:
        try:
            message.reply_to = await broker.reply_address()
        except transient:
            raise
        except Exception as exc:
            raise PublishError(
                f"request to {destination!r}: setting up the reply address failed: {exc!r}",
                destination=destination,
            ) from exc

    await broker.state.send(set_up, destination, transient)
    message.correlation_id, future = broker.replies.expect()
    try:
        await broker.publish(destination, message)
        return await wait_reply(future, destination, timeout)
    finally:
        broker.replies.forget(message.correlation_id)


async def wait_reply(future: asyncio.Future[Message], destination: str, timeout: float) -> Message:
    """The reply ``future`` resolves to, within ``timeout`` seconds.

    Raises:
        RequestTimeout: no reply in time.
    """
    try:
        async with asyncio.timeout(timeout):
            return await future
    except TimeoutError:
        raise RequestTimeout(destination, timeout) from None


def read_reply(reply: Message, returns: Any, destination: str, max_bytes: int) -> Any:
    """The reply's payload, decoded by its content type and validated into ``returns``.

    Raises:
        RemoteError: an error reply (its status, title and detail), or status 502 for a
            reply that cannot be decoded or does not fit ``returns``.
    """
    raise_for_error(reply)
    try:
        return decode(reply, TypeAdapter(returns), max_bytes)
    except PoisonMessage as exc:
        raise RemoteError(502, "Invalid reply", f"reply from {destination!r}: {exc}") from None


def error_reply(request: Message, status: int, title: str, detail: str | None) -> Message:
    """The error reply to ``request``; secrets in ``detail`` masked
    (:func:`~cordio.observe.masking.masked`)."""
    from pydantic_core import to_json

    from cordio.observe.masking import masked

    if detail is not None:
        detail = masked(detail)

    return Message(
        body=to_json({"status": status, "title": title, "detail": detail}),
        headers={ERROR_HEADER: "true"},
        correlation_id=request.correlation_id,
    )


def raise_for_error(reply: Message) -> None:
    """Raise :class:`RemoteError` if ``reply`` is an error reply."""
    if reply.headers.get(ERROR_HEADER) != "true":
        return
    import json

    try:
        body: Any = json.loads(reply.body)
        raise RemoteError(int(body["status"]), str(body["title"]), body.get("detail"))
    except (ValueError, KeyError, TypeError):
        raise RemoteError(500, "Malformed error reply", None) from None
