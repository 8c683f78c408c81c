"""Turn a handler and its compiled call into a Starlette endpoint, and render results."""

from __future__ import annotations

import inspect
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from cordio.context import Context
from cordio.handler import Invoker
from cordio.http.access import trace_id_of
from cordio.http.limits import BodyTooLarge
from cordio.http.params import Binding, RequestInvalid, RequestParser
from cordio.http.problem import ProblemError, from_error, problem
from cordio.http.response import BodyWriter, ResponseInvalid, header_fields
from cordio.http.response import Response as ModelResponse
from cordio.outcome import Outcome
from cordio.policy.commit import commit
from cordio.policy.errors import (
    BulkheadFullError,
    CircuitOpenError,
    PolicyTimeoutError,
)
from cordio.policy.onerror import ErrorResponse

log = logging.getLogger("cordio.http")

JSON = "application/json"


class HttpContext(Context):
    """The :class:`~cordio.context.Context` of an HTTP request; the trace id comes from the
    ``traceparent`` header when it is valid. Headers are read only when asked for. The
    call's span ends with the response (its status is an attribute of the span)."""

    __slots__ = ("request",)
    ends_span = True

    def __init__(self, handler: str, request: Request) -> None:
        self.handler = handler
        self.transport = "http"
        self.request = request
        self._trace_id = None
        self.attempt = 1
        self.extra = {}
        self.span = None

    @property
    def headers(self) -> Any:  # type: ignore[override]
        return self.request.headers

    @property
    def trace_id(self) -> str:
        if self._trace_id is None:
            self._trace_id = trace_id_of(self.request.scope)  # the access log's, if any
        return self._trace_id


def render(result: Any, status_code: int, write: BodyWriter | None = None) -> Response:
    """Serialise a handler's return value: a Starlette response as is; a
    :class:`~cordio.http.response.Response` with its status and headers; ``None`` as an
    empty body when the status is 204; anything else as JSON through ``write`` (the
    handler's return annotation), or as it is without one.

    Raises:
        ResponseInvalid: the value does not match the return annotation.
    """
    if isinstance(result, Response):
        return result
    write = write or _UNCHECKED
    if isinstance(result, ModelResponse):
        status = result.status or status_code
        if result.body is None and status == 204:
            response = Response(status_code=204)
        else:
            response = _json_response(write(result.body), status)
        response.raw_headers.extend(header_fields(result.headers, write.handler))
        return response
    if result is None and status_code == 204:
        return Response(status_code=204)
    return _json_response(write(result), status_code)


_UNCHECKED = BodyWriter("", inspect.Parameter.empty)


def _json_response(body: bytes, status_code: int) -> Response:
    # Response.__init__ re-derives these headers on every call; building them directly
    # keeps the hot path short. Equivalent to Response(body, status_code, media_type=JSON).
    response = Response.__new__(Response)
    response.body = body
    response.status_code = status_code
    response.background = None
    response.raw_headers = [
        (b"content-length", str(len(body)).encode()),
        (b"content-type", b"application/json"),
    ]
    return response


def _from_response(error: ErrorResponse, path: str, trace_id: str) -> Response:
    action = error.action
    return problem(
        action.status or 500,
        error.detail,
        title=action.title,
        type=action.type,
        instance=path,
        trace_id=trace_id,
    )


def make_endpoint(
    name: str,
    invoker: Invoker,
    bindings: list[tuple[str, Binding]],
    status_code: int,
    returns: Any = inspect.Parameter.empty,
) -> Callable[[Request], Awaitable[Response]]:
    """Build the endpoint function Starlette calls for one route: parse the request, run
    the handler through the error pipeline (:meth:`~cordio.handler.Invoker.run`), and
    translate the :class:`~cordio.outcome.Outcome` to a response.

    Args:
        returns: the handler's return annotation; results are validated and serialised
            through it (:class:`~cordio.http.response.BodyWriter`).
    """
    parser = RequestParser(bindings)
    parse = parser.parse
    run = invoker.run
    write = BodyWriter(name, returns)

    async def endpoint(request: Request) -> Response:
        ctx = HttpContext(name, request)
        try:
            kwargs = await parse(request)
        except RequestInvalid as exc:
            return problem(
                422,
                "the request has invalid fields",
                title="Unprocessable Content",
                instance=request.url.path,
                trace_id=ctx.trace_id,
                errors=exc.errors,
            )
        outcome = await run(kwargs, ctx)
        status = 500
        try:
            if outcome.ok:
                response = _render_checked(name, request, ctx, outcome.value, status_code, write)
            else:
                response = _failure(name, request, ctx, outcome)
            status = response.status_code
            return response
        finally:
            if ctx.span is not None:
                _end_span(ctx.span, status)

    endpoint.__name__ = name
    return endpoint


def _end_span(span: Any, status: int) -> None:
    """End an HTTP server span with the response's ``status``:
    ``http.response.status_code``, and ERROR from 500 up (a 4xx is the client's error, not
    the server's: OpenTelemetry HTTP semantic conventions, "Status")."""
    from opentelemetry.trace import Status, StatusCode

    span.set_attribute("http.response.status_code", status)
    if status >= 500:
        span.set_status(Status(StatusCode.ERROR, str(status)))
    span.end()


def _failure(name: str, request: Request, ctx: Context, outcome: Outcome) -> Response:
    """The response to a call that did not give a value."""
    path = request.url.path
    exc = outcome.error
    if outcome.response is not None:
        return _from_response(outcome.response, path, ctx.trace_id)
    if outcome.recorded:  # a rule recorded it and let it go on: 500, nothing more to log
        return problem(500, instance=path, trace_id=ctx.trace_id)
    if isinstance(exc, BodyTooLarge):
        raise exc
    if isinstance(exc, ProblemError):
        _log_client_error(name, ctx, exc.status, exc)
        return from_error(exc, path, ctx.trace_id)
    if isinstance(exc, HTTPException):
        _log_client_error(name, ctx, exc.status_code, exc)
        return problem(
            exc.status_code,
            exc.detail,
            instance=path,
            trace_id=ctx.trace_id,
            headers=dict(exc.headers) if exc.headers else None,
        )
    if outcome.unavailable and isinstance(exc, Exception):
        return _unavailable(name, exc, path, ctx.trace_id)
    if outcome.signal is not None:
        log.error(
            "handler %s settled with %s; settle signals are for message handlers",
            name,
            type(outcome.signal).__name__,
            extra={"handler": name, "trace_id": ctx.trace_id},
        )
        return problem(500, instance=path, trace_id=ctx.trace_id)
    log.error(
        "handler %s failed on %s %s",
        name,
        request.method,
        path,
        exc_info=exc,
        extra={"handler": name, "trace_id": ctx.trace_id},
    )
    assert exc is not None
    commit(exc, name, level=None, stack=False, status=500, count=True, span=True, report=False)
    return problem(500, instance=path, trace_id=ctx.trace_id)


#: The exception types HTTP handlers answer with on purpose (left to the transport by the
#: error pipeline).
ANSWERS: tuple[type[BaseException], ...] = (ProblemError, HTTPException, BodyTooLarge)


def _render_checked(
    name: str, request: Request, ctx: Context, result: Any, status_code: int, write: BodyWriter
) -> Response:
    try:
        return render(result, status_code, write)
    except ResponseInvalid as exc:
        log.error(
            "%s",
            exc,
            extra={"handler": name, "trace_id": ctx.trace_id, "error": "ResponseInvalid"},
        )
        return problem(500, instance=request.url.path, trace_id=ctx.trace_id)


def _unavailable(name: str, exc: Exception, path: str, trace_id: str) -> Response:
    """503 for a call a policy refused or cut (open breaker, full bulkhead, timeout) or a
    resource that is not set up, when no ``OnError`` mapping says otherwise: an expected
    outcome, recorded without a stack (see :func:`~cordio.policy.commit.commit`)."""
    commit(
        exc,
        f"handler {name}",
        level=logging.WARNING,
        stack=False,
        status=503,
        count=True,
        span=True,
        report=False,
    )
    headers = None
    if isinstance(exc, CircuitOpenError):
        headers = {"Retry-After": str(max(1, math.ceil(exc.retry_after)))}
    return problem(
        503,
        _UNAVAILABLE.get(type(exc), "a dependency is unavailable"),
        instance=path,
        trace_id=trace_id,
        headers=headers,
    )


_UNAVAILABLE: dict[type[Exception], str] = {
    CircuitOpenError: "a dependency is failing; not called",
    BulkheadFullError: "too many calls in progress",
    PolicyTimeoutError: "a dependency did not answer in time",
}


def _log_client_error(name: str, ctx: Context, status: int, exc: Exception) -> None:
    level = logging.ERROR if status >= 500 else logging.INFO
    log.log(
        level,
        "handler %s answered %d: %s",
        name,
        status,
        exc,
        extra={"handler": name, "trace_id": ctx.trace_id, "error": type(exc).__name__},
    )
