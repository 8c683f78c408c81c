"""Problem Details for HTTP APIs (RFC 9457): the body of every error response.

A problem is a JSON object served as ``application/problem+json`` with ``type`` (a URI,
``about:blank`` when the status says it all), ``title``, ``status``, ``detail`` and
``instance``; cordio adds ``trace_id`` so a report can be found in the logs. Internals (stack
traces, exception text of unexpected errors) are never included.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from pydantic_core import to_json
from starlette.responses import Response

from cordio.observe.masking import masked

MEDIA_TYPE = "application/problem+json"


class ProblemError(Exception):
    """Raise in a handler to answer with a problem response.

    Args:
        status: HTTP status code.
        detail: human-readable explanation of this occurrence (shown to the client).
        title: short summary of the problem type (default: the status phrase).
        type: URI identifying the problem type (default ``about:blank``).
        headers: extra response headers.
        extra: extension members added to the body.
    """

    def __init__(
        self,
        status: int,
        detail: str | None = None,
        *,
        title: str | None = None,
        type: str = "about:blank",
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail or title or str(status))
        self.status = status
        self.detail = detail
        self.title = title
        self.type = type
        self.headers = headers
        self.extra = extra


def problem(
    status: int,
    detail: str | None = None,
    *,
    title: str | None = None,
    type: str = "about:blank",
    instance: str | None = None,
    trace_id: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    """Build an ``application/problem+json`` response (RFC 9457, section 3); secrets in
    ``detail`` masked (:func:`~cordio.observe.masking.masked`)."""
    if title is None:
        try:
            title = HTTPStatus(status).phrase
        except ValueError:
            title = "Error"
    body: dict[str, Any] = {"type": type, "title": title, "status": status}
    if detail is not None:
        body["detail"] = masked(detail)
    if instance is not None:
        body["instance"] = instance
    if trace_id is not None:
        body["trace_id"] = trace_id
    body.update(extra)
    return Response(to_json(body), status_code=status, headers=headers, media_type=MEDIA_TYPE)


def from_error(exc: ProblemError, instance: str | None, trace_id: str | None) -> Response:
    """Render a :class:`ProblemError`."""
    return problem(
        exc.status,
        exc.detail,
        title=exc.title,
        type=exc.type,
        instance=instance,
        trace_id=trace_id,
        headers=exc.headers,
        **exc.extra,
    )
