"""What a handler returns, turned into an HTTP response through its return annotation.

A handler declared ``-> Order`` answers through ``Order``: its return value is validated
against the annotation and serialised by it, so a mismatch (``{"nom": 1}`` for a model with
a ``name``) is a 500 with the validation error logged instead of a wrong 200, and fields of
a subclass the annotation does not name (``UserInDB.password`` returned as ``-> User``) are
never sent — as FastAPI's ``response_model``.

``Response[T]`` sets the status and headers beside a body validated as ``T``::

    @app.http.post("/orders", status_code=201)
    async def create(order: NewOrder, db: OrderStore) -> Response[Order]:
        stored = await db.add(order)
        return Response(stored, headers={"Location": f"/orders/{stored.id}"})
"""

from __future__ import annotations

import inspect
import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, TypeAdapter
from pydantic_core import to_json

T = TypeVar("T")


@dataclass
class Response(Generic[T]):
    """A body with the status and headers to send it with.

    Args:
        body: validated and serialised as the ``T`` of the handler's ``-> Response[T]``.
        status: the status code; ``None`` (default) uses the route's ``status_code``.
        headers: extra response headers (``content-type`` and ``content-length`` are set
            by cordio).
    """

    body: T
    status: int | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


class ResponseInvalid(Exception):
    """What the handler returned cannot be sent: the value does not match its return
    annotation, or a ``Response`` header is malformed. Answered 500 and logged.

    Attributes:
        errors: pydantic's errors (``loc``, ``msg``, ``type``), without the input; empty
            for a header.
    """

    def __init__(self, message: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or []


_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 §5.1 field-name
_FIELD_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")  # §5.5: no CR, LF or NUL


def header_fields(headers: Mapping[str, str], handler: str) -> list[tuple[bytes, bytes]]:
    """``headers`` as raw ASGI header fields (lower-case names, Latin-1).

    Raises:
        ResponseInvalid: a name that is not a token or a value with a control character
            (CR, LF, NUL...) or a character outside Latin-1 (RFC 9110 §5.1, §5.5), which
            would corrupt or split the response.
    """
    fields = []
    for name, value in headers.items():
        if not (isinstance(name, str) and _TOKEN.fullmatch(name)):
            raise ResponseInvalid(f"handler {handler}: response header {name!r} is not a token")
        if not (isinstance(value, str) and _FIELD_VALUE.fullmatch(value)):
            raise ResponseInvalid(
                f"handler {handler}: response header {name!r} has a control or non-Latin-1"
                " character"
            )
        fields.append((name.lower().encode("latin-1"), value.encode("latin-1")))
    return fields


def body_annotation(returns: Any) -> Any:
    """The type the body is validated as: ``T`` of ``Response[T]``, else ``returns``
    itself; ``inspect.Parameter.empty`` when there is none to check."""
    if typing.get_origin(returns) is Response:
        args = typing.get_args(returns)
        return args[0] if args else inspect.Parameter.empty
    if returns is Response:
        return inspect.Parameter.empty
    return returns


class BodyWriter:
    """Serialises return values through one handler's return annotation.

    Args:
        handler: the handler's name, for errors.
        returns: the return annotation (``inspect.Parameter.empty`` if none).

    A return value that is a Starlette response is never passed here.
    """

    def __init__(self, handler: str, returns: Any) -> None:
        self.handler = handler
        self.annotation = body_annotation(returns)
        unchecked = (inspect.Parameter.empty, Any, None, type(None), object)
        self.adapter: TypeAdapter[Any] | None = None
        self.model: type[BaseModel] | None = None
        if self.annotation not in unchecked and not _is_response_class(self.annotation):
            try:
                self.adapter = TypeAdapter(self.annotation)
            except Exception:  # not a type pydantic knows: sent as it is
                self.adapter = None
            if isinstance(self.annotation, type) and issubclass(self.annotation, BaseModel):
                self.model = self.annotation

    def __call__(self, value: Any) -> bytes:
        """The JSON body for ``value``.

        Raises:
            ResponseInvalid: ``value`` does not validate as the annotation.
        """
        if self.model is not None and type(value) is self.model:
            return value.__pydantic_serializer__.to_json(value)  # the common case, fast
        adapter = self.adapter
        if adapter is None:
            if isinstance(value, BaseModel):
                return value.__pydantic_serializer__.to_json(value)
            return to_json(value)
        from pydantic import ValidationError

        try:
            valid = adapter.validate_python(value, from_attributes=True)
        except ValidationError as exc:
            errors = exc.errors(include_input=False, include_url=False)
            details: list[dict[str, Any]] = [dict(e) for e in errors]
            name = getattr(self.annotation, "__name__", repr(self.annotation))
            fields = "; ".join(
                f"{'.'.join(str(part) for part in e['loc']) or '(value)'}: {e['msg']}"
                for e in errors
            )
            raise ResponseInvalid(
                f"handler {self.handler}: the return value is not a valid {name}: {fields}",
                details,
            ) from None
        return adapter.dump_json(valid)


def _is_response_class(annotation: Any) -> bool:
    from starlette.responses import Response as StarletteResponse

    base = typing.get_origin(annotation) or annotation
    return isinstance(base, type) and issubclass(base, StarletteResponse)
