"""Trace context over MDP: a last body frame that plain MDP peers ignore.

MDP (RFC 7, RFC 18) carries no headers: a request's body is the application's frames. cordio
carries the W3C trace context (``traceparent``, ``tracestate``, ``baggage``;
https://www.w3.org/TR/trace-context/) in one extra frame at the end of the body::

    b"\\x00W3C-trace-context\\n" + b"traceparent: 00-...-...-01\\ntracestate: ...\\n"

A worker that reads the first body frame (the payload, as every cordio worker and most
published ones do) never sees it; cordio's worker removes it before the handler runs and
continues the trace. It is sent only by :class:`~cordio.zmq.client.ZmqClient` from inside a
handler, and only with ``zmq.propagate_trace`` (default true).
"""

from __future__ import annotations

from collections.abc import Sequence

from cordio.observe.tracing import PROPAGATED

#: What the trace frame starts with: a NUL (no JSON text starts with one) and a name.
PREFIX = b"\x00W3C-trace-context\n"
#: The longest trace frame read, in bytes (a longer one is ignored and kept in the body).
MAX_FRAME = 8192


def frame(headers: dict[str, str]) -> bytes | None:
    """The trace frame for ``headers`` (their ``traceparent``, ``tracestate`` and
    ``baggage``), or ``None`` when they hold no ``traceparent``."""
    if "traceparent" not in headers:
        return None
    lines = [f"{key}: {headers[key]}\n" for key in PROPAGATED if key in headers]
    return PREFIX + "".join(lines).encode("latin-1", "replace")


def split(body: Sequence[bytes]) -> tuple[Sequence[bytes], dict[str, str]]:
    """``body`` without its trace frame, and the headers the frame held (empty without
    one). A frame that is malformed or too long is not a trace frame: it stays in the body."""
    if len(body) < 2:
        return body, {}
    last = body[-1]
    if not last.startswith(PREFIX) or len(last) > MAX_FRAME:
        return body, {}
    headers: dict[str, str] = {}
    for line in last[len(PREFIX) :].decode("latin-1").splitlines():
        key, sep, value = line.partition(": ")
        if sep and key in PROPAGATED and value.isprintable():
            headers[key] = value
    return body[:-1], headers
