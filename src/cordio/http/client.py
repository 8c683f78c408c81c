"""An httpx transport that carries the calling handler's trace context (and makes a CLIENT
span when the app makes spans) on every request of an ``httpx.AsyncClient``::

    async with httpx.AsyncClient(base_url=url, transport=TracingTransport()) as client:
        await client.get("/prices/tea")   # traceparent: the handler's trace id

Span names and attributes follow the OpenTelemetry HTTP client semantic conventions
(``GET``, ``http.request.method``, ``server.address``, ``server.port``,
``http.response.status_code``); the URL's path and query are not recorded (they may hold
ids or secrets).
"""

from __future__ import annotations

from typing import Any

import httpx

from cordio.observe.tracing import outgoing


class TracingTransport(httpx.AsyncBaseTransport):
    """Wraps another httpx transport (default: a new ``httpx.AsyncHTTPTransport`` with
    ``options``).

    Args:
        inner: the transport that sends the requests.
        options: for the default ``httpx.AsyncHTTPTransport`` (``retries``, ``limits``...).
    """

    def __init__(self, inner: httpx.AsyncBaseTransport | None = None, **options: Any) -> None:
        self.inner = inner or httpx.AsyncHTTPTransport(**options)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` with ``traceparent`` (and ``tracestate``, ``baggage``) added
        unless it has one."""
        headers: dict[str, str] = {}
        attributes: dict[str, Any] = {
            "http.request.method": request.method,
            "server.address": request.url.host,
        }
        if request.url.port is not None:
            attributes["server.port"] = request.url.port
        with outgoing(request.method, "client", attributes, headers):
            for key, value in headers.items():
                request.headers.setdefault(key, value)
            response = await self.inner.handle_async_request(request)
            _status(response.status_code)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


def _status(status: int) -> None:
    """Record the answer's status on the current CLIENT span (ERROR from 400 up, per the
    HTTP client conventions)."""
    from cordio.observe.tracing import current_tracer

    if current_tracer() is None:
        return
    from opentelemetry import trace

    current = trace.get_current_span()
    current.set_attribute("http.response.status_code", status)
    if status >= 400:
        current.set_status(trace.Status(trace.StatusCode.ERROR, str(status)))
