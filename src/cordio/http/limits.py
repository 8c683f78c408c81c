"""ASGI middleware bounding what a request may send: header size and count, body size.

- more than ``max_headers`` header fields, or more than ``max_header_bytes`` of names and
  values → 431 Request Header Fields Too Large (RFC 6585, section 5);
- ``Content-Length`` over ``max_body`` → 413 Content Too Large (RFC 9110, section 15.5.14)
  at once, before any of the body is read; a malformed ``Content-Length`` → 400;
- a body without ``Content-Length`` (chunked) is counted as it arrives and cut off with 413
  as soon as it passes ``max_body``, so memory stays bounded.
"""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cordio.http.problem import problem


class BodyTooLarge(Exception):
    """The request body passed the limit while it was being read."""


class LimitsMiddleware:
    """Enforce header and body limits on HTTP requests.

    Args:
        app: the wrapped ASGI app.
        max_body: bytes (``http.max_body``).
        max_header_bytes: bytes of header names and values together.
        max_headers: header fields.
    """

    def __init__(self, app: ASGIApp, *, max_body: int, max_header_bytes: int, max_headers: int):
        self.app = app
        self.max_body = max_body
        self.max_header_bytes = max_header_bytes
        self.max_headers = max_headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = scope["headers"]
        if len(headers) > self.max_headers:
            await self._reject(scope, send, 431, f"more than {self.max_headers} header fields")
            return
        size = 0
        length: bytes | None = None
        for key, value in headers:
            size += len(key) + len(value)
            if key == b"content-length":
                length = value
        if size > self.max_header_bytes:
            await self._reject(scope, send, 431, f"headers exceed {self.max_header_bytes} bytes")
            return
        if length is not None:
            if not length.isdigit():
                await self._reject(scope, send, 400, "malformed Content-Length header")
                return
            if int(length) > self.max_body:
                await self._reject(scope, send, 413, f"body exceeds {self.max_body} bytes")
                return
            await self.app(scope, receive, send)
            return
        if scope["method"] in ("GET", "HEAD", "OPTIONS", "DELETE"):
            await self.app(scope, receive, send)
            return
        await self._counted(scope, receive, send)

    async def _counted(self, scope: Scope, receive: Receive, send: Send) -> None:
        received = 0
        started = False
        rejected = False
        limit = self.max_body

        async def counting_receive() -> Message:
            nonlocal received, rejected
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    if not started:
                        rejected = True
                        await self._reject(scope, send, 413, f"body exceeds {limit} bytes")
                    raise BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if rejected:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if not rejected:
                raise

    @staticmethod
    async def _reject(scope: Scope, send: Send, status: int, detail: str) -> None:
        response = problem(
            status, detail, instance=scope.get("path"), headers={"connection": "close"}
        )
        await response(scope, _no_receive, send)


async def _no_receive() -> Any:  # pragma: no cover - responses do not read the request
    return {"type": "http.disconnect"}
