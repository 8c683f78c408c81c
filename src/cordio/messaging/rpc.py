"""Request/reply over a broker: correlation ids, reply addresses, structured error replies.

A request carries ``reply_to`` (the requester's reply address) and a fresh
``correlation_id``; the consumer's handler return value is sent back to ``reply_to`` with the
same correlation id. A handler that fails answers with an error reply: header
``x-cordio-error: true`` and a body ``{"status", "title", "detail"}`` (problem-details
fields, RFC 9457; internals never included), so the caller gets an answer instead of a
timeout. A reply nobody waits for (unknown or expired correlation id) is dropped with a
warning.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

from cordio.messaging.message import Message

log = logging.getLogger("cordio.messaging")

ERROR_HEADER = "x-cordio-error"


class RemoteError(Exception):
    """The handler of a request failed; its error reply.

    Attributes:
        status: HTTP-style status (500 for unexpected failures).
        title: short summary.
        detail: explanation, or ``None``.
    """

    def __init__(self, status: int, title: str, detail: str | None) -> None:
        self.status = status
        self.title = title
        self.detail = detail
        super().__init__(f"{status} {title}" + (f": {detail}" if detail else ""))


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


def error_reply(request: Message, status: int, title: str, detail: str | None) -> Message:
    """The error reply to ``request``."""
    from pydantic_core import to_json

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
