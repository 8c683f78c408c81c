"""Bounds on a request head (request line and headers) while it arrives.

uvicorn's httptools protocol buffers a request head of any size, for any time, before the
app sees it: one client could make the server hold gigabytes, and slow clients
("slowloris") could hold connections forever. This subclass

- counts the bytes received while a head is incomplete and, past the bound, answers 431
  (RFC 6585, section 5) and closes the connection: memory per connection stays below the
  bound plus one read;
- closes a connection whose head has not completed ``head_timeout`` seconds after its first
  byte, answering 408 Request Timeout (RFC 9110, section 15.5.9).

Without httptools, uvicorn's h11 protocol applies ``h11_max_incomplete_event_size`` instead.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic_core import to_json


def _rejection(status: int, title: str, detail: str) -> bytes:
    body = to_json({"type": "about:blank", "title": title, "status": status, "detail": detail})
    return (
        f"HTTP/1.1 {status} {title}\r\n".encode()
        + b"content-type: application/problem+json\r\n"
        + b"content-length: "
        + str(len(body)).encode()
        + b"\r\nconnection: close\r\n\r\n"
        + body
    )


def bounded_httptools_protocol(max_head_bytes: int, head_timeout: float) -> type[Any] | None:
    """Return an httptools protocol class bounding request heads to ``max_head_bytes`` bytes
    and ``head_timeout`` seconds, or ``None`` when httptools is not installed."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:
        return None
    too_large = _rejection(
        431,
        "Request Header Fields Too Large",
        f"request line and headers exceed {max_head_bytes} bytes",
    )
    too_slow = _rejection(
        408, "Request Timeout", f"request line and headers took over {head_timeout} s"
    )

    class BoundedHttpToolsProtocol(HttpToolsProtocol):
        _in_head = True
        _head_bytes = 0
        _head_timer: asyncio.TimerHandle | None = None

        def data_received(self, data: bytes) -> None:
            if self._in_head:
                self._head_bytes += len(data)
            super().data_received(data)
            if self._in_head and self._head_bytes:
                if self._head_bytes > max_head_bytes:
                    self._refuse(too_large)
                elif self._head_timer is None:
                    # only a head split over several reads needs the timer
                    self._head_timer = self.loop.call_later(head_timeout, self._head_expired)

        def _refuse(self, response: bytes) -> None:
            self._end_head()
            if not self.transport.is_closing():
                self.transport.write(response)
                self.transport.close()

        def _head_expired(self) -> None:
            self._head_timer = None
            if self._in_head:
                self._refuse(too_slow)

        def _end_head(self) -> None:
            self._in_head = False
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def on_headers_complete(self) -> None:
            self._end_head()
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            self._in_head = True
            self._head_bytes = 0
            super().on_message_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._end_head()
            super().connection_lost(exc)

    return BoundedHttpToolsProtocol
