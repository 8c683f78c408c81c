"""The access log: one INFO line per HTTP request on the ``cordio.http.access`` logger.

``GET /orders/{order_id} 200 1.3 ms`` — the method, the *route template* (never the raw
path: ids and tokens in paths stay out of the log, and lines group by route), the status,
the duration in milliseconds and the request's trace id. Requests that match no route log
``-`` as the route. In JSON logs the line also has ``method``, ``route``, ``status`` and
``duration_ms`` fields. Off with ``http.access_log = false``.

The trace id (from a valid W3C ``traceparent`` header, else a new one) is made once per
request, when first asked for, and kept in the ASGI scope: the handler's own lines, the
problem body and the access line all carry the same id, and a request nobody logs about
costs no random id.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cordio.context import trace_id_from_traceparent

log = logging.getLogger("cordio.http.access")

TRACE_ID = "cordio.trace_id"  # the scope key the endpoint reads the trace id from
HANDLER = "cordio.handler"  # the scope key naming the handler that answered


def trace_id_of(scope: Scope) -> str:
    """The request's trace id: the one set in ``scope``, else from its ``traceparent``
    header, else a new random one (recorded in ``scope`` so it is asked for once)."""
    found: str | None = scope.get(TRACE_ID)
    if found is None:
        for key, value in scope.get("headers", ()):
            if key == b"traceparent":
                found = trace_id_from_traceparent(value.decode("latin-1"))
                break
        if found is None:
            found = os.urandom(16).hex()
        scope[TRACE_ID] = found
    return found


class AccessLogMiddleware:
    """Pure ASGI middleware writing the access line once the response has been sent.

    Args:
        app: the ASGI app inside.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # the app raised before starting a response

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            if log.isEnabledFor(logging.INFO):
                duration = (time.perf_counter() - started) * 1000
                route: Any = scope.get("route")
                template = getattr(route, "path", None) or "-"
                log.info(
                    "%s %s %d %.1f ms",
                    scope["method"],
                    template,
                    status,
                    duration,
                    extra={
                        "trace_id": trace_id_of(scope),  # the handler's, if it asked
                        "handler": scope.get(HANDLER, "-"),
                        "fields": {
                            "method": scope["method"],
                            "route": template,
                            "status": status,
                            "duration_ms": round(duration, 3),
                        },
                    },
                )
