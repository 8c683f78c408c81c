"""Turn a handler and its compiled call into a Starlette endpoint, and render results."""

from __future__ import annotations

import inspect
import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from cordio.context import Context
from cordio.errors import ResourceUnavailableError
from cordio.handler import Invoker
from cordio.http.access import trace_id_of
from cordio.http.limits import BodyTooLarge
from cordio.http.params import Binding, RequestInvalid, RequestParser
from cordio.http.problem import ProblemError, from_error, problem
from cordio.http.response import BodyWriter, ResponseInvalid, header_fields
from cordio.http.response import Response as ModelResponse
from cordio.policy.commit import commit
from cordio.policy.errors import (
    BulkheadFullError,
    CircuitOpenError,
    PolicyError,
    PolicyTimeoutError,
)
from cordio.policy.onerror import ErrorAction, ErrorResponse, apply, find_action

log = logging.getLogger("cordio.http")

JSON = "application/json"


class HttpContext(Context):
    """The :class:`~cordio.context.Context` of an HTTP request; the trace id comes from the
    ``traceparent`` header when it is valid. Headers are read only when asked for."""

    __slots__ = ("request",)

    def __init__(self, handler: str, request: Request) -> None:
        self.handler = handler
        self.transport = "http"
        self.request = request
        self._trace_id = None
        self.attempt = 1
        self.extra = {}

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
    on_error: tuple[Mapping[type[BaseException], ErrorAction], ...] = (),
    returns: Any = inspect.Parameter.empty,
) -> Callable[[Request], Awaitable[Response]]:
    """Build the endpoint function Starlette calls for one route.

    Args:
        on_error: the app's :class:`~cordio.policy.OnError` mappings, consulted for an
            exception the handler did not handle itself.
        returns: the handler's return annotation; results are validated and serialised
            through it (:class:`~cordio.http.response.BodyWriter`).
    """
    parser = RequestParser(bindings)
    parse = parser.parse
    write = BodyWriter(name, returns)

    async def endpoint(request: Request) -> Response:
        ctx = HttpContext(name, request)
        try:
            kwargs = await parse(request)
            result = await invoker(kwargs, ctx)
        except RequestInvalid as exc:
            return problem(
                422,
                "the request has invalid fields",
                title="Unprocessable Content",
                instance=request.url.path,
                trace_id=ctx.trace_id,
                errors=exc.errors,
            )
        except ErrorResponse as exc:
            return _from_response(exc, request.url.path, ctx.trace_id)
        except ProblemError as exc:
            _log_client_error(name, ctx, exc.status, exc)
            return from_error(exc, request.url.path, ctx.trace_id)
        except HTTPException as exc:
            _log_client_error(name, ctx, exc.status_code, exc)
            return problem(
                exc.status_code,
                exc.detail,
                instance=request.url.path,
                trace_id=ctx.trace_id,
                headers=dict(exc.headers) if exc.headers else None,
            )
        except BodyTooLarge:
            raise
        except Exception as exc:
            action = find_action(on_error, exc) if on_error else None
            if action is not None:
                try:
                    result = apply(action, exc, f"handler {name}")
                except ErrorResponse as answer:
                    return _from_response(answer, request.url.path, ctx.trace_id)
                except Exception:  # recorded by the action: answer 500, log nothing more
                    return problem(500, instance=request.url.path, trace_id=ctx.trace_id)
                return _render_checked(name, request, ctx, result, status_code, write)
            if isinstance(exc, PolicyError | ResourceUnavailableError):
                return _unavailable(name, exc, request.url.path, ctx.trace_id)
            log.error(
                "handler %s failed on %s %s",
                name,
                request.method,
                request.url.path,
                exc_info=True,
                extra={"handler": name, "trace_id": ctx.trace_id},
            )
            commit(
                exc, name, level=None, stack=False, status=500, count=True, span=True, report=False
            )
            return problem(500, instance=request.url.path, trace_id=ctx.trace_id)
        return _render_checked(name, request, ctx, result, status_code, write)

    endpoint.__name__ = name
    return endpoint


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
