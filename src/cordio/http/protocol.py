"""A bound on the bytes of a request head (request line and headers) before it is parsed.

uvicorn's httptools protocol buffers a request head of any size before the app sees it, so
one client could make the server hold gigabytes. This subclass counts the bytes received
while a head is incomplete and answers 431 (RFC 6585, section 5) and closes the connection
once they pass the bound. Memory per connection stays below the bound plus one read.
Without httptools, uvicorn's h11 protocol applies ``h11_max_incomplete_event_size`` instead.
"""

from __future__ import annotations

from typing import Any

from pydantic_core import to_json


def _rejection(max_head_bytes: int) -> bytes:
    body = to_json(
        {
            "type": "about:blank",
            "title": "Request Header Fields Too Large",
            "status": 431,
            "detail": f"request line and headers exceed {max_head_bytes} bytes",
        }
    )
    return (
        b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
        b"content-type: application/problem+json\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\n"
        b"connection: close\r\n\r\n" + body
    )


def bounded_httptools_protocol(max_head_bytes: int) -> type[Any] | None:
    """Return an httptools protocol class bounding request heads to ``max_head_bytes``
    bytes, or ``None`` when httptools is not installed."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:
        return None
    rejection = _rejection(max_head_bytes)

    class BoundedHttpToolsProtocol(HttpToolsProtocol):
        _in_head = True
        _head_bytes = 0

        def data_received(self, data: bytes) -> None:
            if self._in_head:
                self._head_bytes += len(data)
            super().data_received(data)
            if self._in_head and self._head_bytes > max_head_bytes:
                self._in_head = False
                if not self.transport.is_closing():
                    self.transport.write(rejection)
                    self.transport.close()

        def on_headers_complete(self) -> None:
            self._in_head = False
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            self._in_head = True
            self._head_bytes = 0
            super().on_message_complete()

    return BoundedHttpToolsProtocol
