"""HTTP event data: which handler parameters come from the request, and parsing them.

- a parameter named like a ``{placeholder}`` in the path → path parameter;
- a pydantic model (not a settings section) → the JSON body; after resources and settings,
  a dict, a list of non-scalars, a dataclass or a TypedDict → the JSON body too;
- ``starlette.requests.Request`` → the request itself;
- ``Annotated[T, Query()]``, ``Header()``, ``Body()``, ``Path()`` → as marked;
- otherwise, after resources and settings had their turn, a scalar or a list of scalars →
  query parameter.

Values are validated with pydantic; every bad field is reported at once, each with its
location (``["query", "limit"]``), in a 422 problem response.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import inspect
import re
import types
import typing
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.requests import Request

from cordio.inject import strip_annotated
from cordio.settings import Settings

Location = Literal["path", "query", "header", "body", "request"]

_SCALARS = (
    str,
    int,
    float,
    bool,
    decimal.Decimal,
    uuid.UUID,
    datetime.date,
    datetime.datetime,
    datetime.time,
    datetime.timedelta,
    bytes,
)
_PATH_PARAM = re.compile(r"{([a-zA-Z_][a-zA-Z0-9_]*)(?::[a-z]+)?}")


@dataclass(frozen=True)
class Query:
    """Mark a parameter as a query parameter: ``Annotated[int, Query(alias="page-size")]``."""

    alias: str | None = None


@dataclass(frozen=True)
class Header:
    """Mark a parameter as a request header; by default ``x_request_id`` reads
    ``x-request-id``.

    Attributes:
        alias: the header's name, if not the parameter's.
        security: the header carries credentials: ``"bearer"`` or ``"basic"``
            (``Authorization``, RFC 6750 / RFC 7617) or ``"apiKey"`` (any other header);
            the OpenAPI document then describes it as a security scheme, not a parameter.
            An ``authorization`` header is ``"bearer"`` unless said otherwise.
    """

    alias: str | None = None
    security: Literal["bearer", "basic", "apiKey"] | None = None


@dataclass(frozen=True)
class Body:
    """Mark a parameter as the JSON request body (any type pydantic validates)."""


@dataclass(frozen=True)
class Path:
    """Mark a parameter as a path parameter (normally inferred from the route path)."""


def path_params(path: str) -> list[str]:
    """Return the ``{placeholder}`` names of a route path, in order."""
    return _PATH_PARAM.findall(path)


def _is_scalar(tp: Any) -> bool:
    tp, _ = strip_annotated(tp)
    if tp is Any or tp is inspect.Parameter.empty:
        return True
    if isinstance(tp, type):
        return issubclass(tp, _SCALARS) or issubclass(tp, enum.Enum)
    origin = typing.get_origin(tp)
    if origin is Literal:
        return True
    if origin in (typing.Union, types.UnionType):
        return all(_is_scalar(a) for a in typing.get_args(tp) if a is not type(None))
    return False


def _is_list_of_scalars(tp: Any) -> bool:
    tp, _ = strip_annotated(tp)
    origin = typing.get_origin(tp)
    return origin in (list, tuple, set, Sequence, frozenset) and all(
        _is_scalar(a) for a in typing.get_args(tp) if a is not Ellipsis
    )


def _is_json_container(tp: Any) -> bool:
    """A mapping, a list of non-scalars, a dataclass or a TypedDict: JSON body material."""
    origin = typing.get_origin(tp) or tp
    if origin in (dict, list, tuple, typing.Mapping, Sequence):
        return True
    return isinstance(tp, type) and (dataclasses.is_dataclass(tp) or typing.is_typeddict(tp))


@dataclass
class Binding:
    """Where one parameter comes from and how it is validated.

    Attributes:
        location: ``path``, ``query``, ``header``, ``body`` or ``request``.
        key: the name in the request (path placeholder, query key, lower-case header).
        annotation: the declared type (``Any`` if none).
        default: the default, or ``inspect.Parameter.empty`` if required.
        many: a query parameter given several times (a list).
    """

    location: Location
    key: str
    annotation: Any
    default: Any
    many: bool = False

    def __post_init__(self) -> None:
        base, meta = strip_annotated(self.annotation)
        # a string with no constraint (max_length, pattern...) needs no validation
        self.plain_str = base in (str, inspect.Parameter.empty, Any) and all(
            isinstance(m, Query | Header | Body | Path) for m in meta
        )
        self.model = base if isinstance(base, type) and issubclass(base, BaseModel) else None
        annotation = Any if self.annotation is inspect.Parameter.empty else self.annotation
        if self.location == "request":
            annotation = Any
        try:
            self.adapter: TypeAdapter[Any] = TypeAdapter(annotation)
        except Exception as exc:
            raise TypeError(
                f"{self.location} parameter {self.key!r}: pydantic cannot validate"
                f" {annotation!r}: {exc}"
            ) from None

    @property
    def required(self) -> bool:
        return self.default is inspect.Parameter.empty


class HttpBinder:
    """The HTTP transport's :class:`~cordio.inject.EventBinder` for one route."""

    def __init__(self, path: str) -> None:
        self.path_names = set(path_params(path))

    def bind(self, name: str, annotation: Any, default: Any, *, strong: bool) -> Binding | None:
        base, meta = strip_annotated(annotation)
        for item in meta:
            if isinstance(item, Query):
                return Binding(
                    "query",
                    item.alias or name,
                    annotation,
                    default,
                    many=_is_list_of_scalars(annotation),
                )
            if isinstance(item, Header):
                key = (item.alias or name.replace("_", "-")).lower()
                return Binding("header", key, annotation, default)
            if isinstance(item, Body):
                return Binding("body", name, annotation, default)
            if isinstance(item, Path):
                return Binding("path", name, annotation, default)
        if strong:
            if name in self.path_names:
                return Binding("path", name, annotation, default)
            if base is Request:
                return Binding("request", name, annotation, default)
            if (
                isinstance(base, type)
                and issubclass(base, BaseModel)
                and not issubclass(base, Settings)
            ):
                return Binding("body", name, annotation, default)
            return None
        if _is_list_of_scalars(annotation):
            return Binding("query", name, annotation, default, many=True)
        if _is_scalar(annotation):
            return Binding("query", name, annotation, default)
        if _is_json_container(base):
            return Binding("body", name, annotation, default)
        return None


class RequestInvalid(Exception):
    """The request's parameters or body failed validation.

    Args:
        errors: ``{"loc": [location, *path], "msg": str, "type": str}`` per bad field.
    """

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(f"{len(errors)} invalid field(s)")
        self.errors = errors


def _errors(exc: ValidationError, prefix: list[str | int]) -> list[dict[str, Any]]:
    return [
        {"loc": [*prefix, *e["loc"]], "msg": e["msg"], "type": e["type"]}
        for e in exc.errors(include_input=False, include_url=False)
    ]


class RequestParser:
    """Extracts and validates a handler's parameters from a request.

    Args:
        bindings: ``(parameter name, binding)`` for each event parameter of the handler.
    """

    def __init__(self, bindings: list[tuple[str, Binding]]) -> None:
        self.path = [(n, b) for n, b in bindings if b.location == "path"]
        self.query = [(n, b) for n, b in bindings if b.location == "query"]
        self.header = [(n, b) for n, b in bindings if b.location == "header"]
        bodies = [(n, b) for n, b in bindings if b.location == "body"]
        if len(bodies) > 1:
            names = ", ".join(repr(n) for n, _ in bodies)
            raise ValueError(f"parameters {names} all claim the request body; only one may")
        self.body = bodies[0] if bodies else None
        self.request = [n for n, b in bindings if b.location == "request"]
        self.only_str_path = (
            not self.query
            and not self.header
            and self.body is None
            and all(b.plain_str for _, b in self.path)
        )

    async def parse(self, request: Request) -> dict[str, Any]:
        """Return the handler's event arguments.

        Raises:
            RequestInvalid: listing every invalid or missing field.
        """
        if self.only_str_path:
            values = request.path_params
            out = {name: values[b.key] for name, b in self.path}
            for name in self.request:
                out[name] = request
            return out
        out = {}
        errors: list[dict[str, Any]] = []
        params = request.path_params
        for name, b in self.path:
            self._one(out, errors, name, b, params.get(b.key, inspect.Parameter.empty))
        if self.query:
            query = request.query_params
            for name, b in self.query:
                if b.many:
                    raw: Any = query.getlist(b.key) or inspect.Parameter.empty
                else:
                    given = query.getlist(b.key)
                    if len(given) > 1:  # which one was meant? refuse, never guess
                        errors.append(
                            {
                                "loc": ["query", b.key],
                                "msg": f"expected one value, got {len(given)}",
                                "type": "too_many_values",
                            }
                        )
                        continue
                    raw = given[0] if given else inspect.Parameter.empty
                self._one(out, errors, name, b, raw)
        if self.header:
            headers = request.headers
            for name, b in self.header:
                self._one(out, errors, name, b, headers.get(b.key, inspect.Parameter.empty))
        if self.body is not None:
            await self._parse_body(request, out, errors)
        for name in self.request:
            out[name] = request
        if errors:
            raise RequestInvalid(errors)
        return out

    @staticmethod
    def _one(
        out: dict[str, Any], errors: list[dict[str, Any]], name: str, b: Binding, raw: Any
    ) -> None:
        if raw is inspect.Parameter.empty:
            if b.required:
                errors.append(
                    {"loc": [b.location, b.key], "msg": "Field required", "type": "missing"}
                )
            return
        if b.plain_str:
            out[name] = raw
            return
        try:
            out[name] = b.adapter.validate_python(raw)
        except ValidationError as exc:
            errors.extend(_errors(exc, [b.location, b.key]))

    async def _parse_body(
        self, request: Request, out: dict[str, Any], errors: list[dict[str, Any]]
    ) -> None:
        assert self.body is not None
        name, b = self.body
        raw = await request.body()
        if not raw:
            if b.required:
                errors.append({"loc": ["body"], "msg": "Field required", "type": "missing"})
            else:
                out[name] = b.default
            return
        try:
            if b.model is not None:
                out[name] = b.model.model_validate_json(raw)
            else:
                out[name] = b.adapter.validate_json(raw)
        except ValidationError as exc:
            errors.extend(_errors(exc, ["body"]))
