"""OpenAPI 3.1 document of an app's HTTP handlers (https://spec.openapis.org/oas/v3.1.0).

Parameters, request bodies and responses come from the same bindings and annotations the
handlers are called with; schemas from pydantic's JSON Schema, models under
``components/schemas``.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import models_json_schema

from cordio.http.params import Binding, Header
from cordio.inject import strip_annotated
from cordio.policy.breaker import CircuitBreaker
from cordio.policy.bulkhead import Bulkhead
from cordio.policy.marks import policies_of
from cordio.policy.named import Policy
from cordio.policy.onerror import OnError
from cordio.policy.timeout import Timeout

REF = "#/components/schemas/{model}"
PROBLEM = {"application/problem+json": {"schema": {"$ref": REF.format(model="Problem")}}}


def error_responses(
    func: Any, declared: Mapping[int, str], *, takes_body: bool, uses_resources: bool
) -> dict[int, str]:
    """The error statuses an operation can answer, each with a description.

    Always 422 (invalid request) and 500 (unexpected error); 413 when it takes a body;
    503 when a breaker, bulkhead or timeout wraps the handler or it uses resources (an
    unavailable resource or a refused call answers 503); the statuses of the ``OnError``
    mappings on the handler; and ``declared`` (the route's ``responses=``), which wins.
    """
    errors = {422: "Invalid request", 500: "Unexpected error"}
    if takes_body:
        errors[413] = "Request body too large"
    unavailable = uses_resources
    for policy in policies_of(func):
        if isinstance(policy, CircuitBreaker | Bulkhead | Timeout):
            unavailable = True
        elif isinstance(policy, Policy):
            unavailable |= bool({"breaker", "bulkhead", "timeout"} & set(policy.parts))
        elif isinstance(policy, OnError):
            for cls, action in policy.mapping.items():
                if action.status is not None and action.status >= 400:
                    errors.setdefault(action.status, action.title or cls.__name__)
    if unavailable:
        errors.setdefault(503, "Service unavailable: a dependency is down or overloaded")
    errors.update(declared)
    return dict(sorted(errors.items()))


def _schema(
    annotation: Any, models: set[type[BaseModel]], defs: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The JSON Schema of ``annotation``; models go to ``models`` and other definitions
    (enums, nested types) to ``defs``, both for ``components/schemas``, so no ``$defs``
    stays beside a ``$ref``."""
    if annotation in (inspect.Parameter.empty, Any, None):
        return {}
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        models.add(annotation)
        return {"$ref": REF.format(model=annotation.__name__)}
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is list and args and isinstance(args[0], type) and issubclass(args[0], BaseModel):
        models.add(args[0])
        return {"type": "array", "items": {"$ref": REF.format(model=args[0].__name__)}}
    try:
        schema = TypeAdapter(annotation).json_schema(ref_template=REF)
    except Exception:
        return {}
    found = schema.pop("$defs", {})
    if defs is not None:
        defs.update(found)
    return schema


def _security_scheme(binding: Binding) -> tuple[str, dict[str, Any]] | None:
    """The security scheme a header parameter declares (OpenAPI 3.1 §4.8.27): a
    ``Header(security=...)`` marker, or an ``authorization`` header (bearer)."""
    _, meta = strip_annotated(binding.annotation)
    marker = next((m for m in meta if isinstance(m, Header)), None)
    kind = marker.security if marker is not None else None
    if kind is None and binding.key == "authorization":
        kind = "bearer"
    if kind == "bearer":
        return "bearerAuth", {"type": "http", "scheme": "bearer"}
    if kind == "basic":
        return "basicAuth", {"type": "http", "scheme": "basic"}
    if kind == "apiKey":
        return binding.key, {"type": "apiKey", "in": "header", "name": binding.key}
    return None


def _requirements(required: list[str], optional: list[str]) -> list[dict[str, list[str]]]:
    """An operation's ``security``: a list of alternatives, each naming schemes that must
    all be satisfied (OpenAPI 3.1 §4.8.30). The required credential headers go together in
    every alternative; each optional one may be added, or none (an empty object when no
    header is required)."""
    if not required and not optional:
        return []
    alternatives = [[*required, name] for name in optional] + [required]
    return [{name: [] for name in names} for names in alternatives]


def build_openapi(title: str, version: str, routes: list[dict[str, Any]]) -> dict[str, Any]:
    """Build the document.

    Args:
        title: API title (the app name).
        version: API version (the app version, or ``"0"``).
        routes: per route: ``path``, ``methods``, ``name``, ``status_code``, ``summary``,
            ``bindings`` (``[(param, Binding)]``), ``returns`` (the return annotation) and
            ``errors`` (``{status: description}``, see :func:`error_responses`).
    """
    models: set[type[BaseModel]] = set()
    defs: dict[str, Any] = {}
    security_schemes: dict[str, Any] = {}
    paths: dict[str, Any] = {}
    for route in routes:
        params = []
        required_schemes: list[str] = []
        optional_schemes: list[str] = []
        body = None
        binding: Binding
        for _param, binding in route["bindings"]:
            if binding.location == "body":
                body = {
                    "required": binding.required,
                    "content": {
                        "application/json": {"schema": _schema(binding.annotation, models, defs)}
                    },
                }
            elif binding.location == "header" and (scheme := _security_scheme(binding)):
                name, definition = scheme
                security_schemes[name] = definition
                (required_schemes if binding.required else optional_schemes).append(name)
            elif binding.location in ("path", "query", "header"):
                params.append(
                    {
                        "name": binding.key,
                        "in": binding.location,
                        "required": binding.location == "path" or binding.required,
                        "schema": _schema(binding.annotation, models, defs),
                    }
                )
        status = str(route["status_code"])
        responses: dict[str, Any] = {status: {"description": "Successful response"}}
        returns = route["returns"]
        if returns not in (inspect.Parameter.empty, None, type(None)) and status != "204":
            responses[status]["content"] = {
                "application/json": {"schema": _schema(returns, models, defs)}
            }
        for code, description in route["errors"].items():
            responses[str(code)] = {"description": description, "content": PROBLEM}
        operation: dict[str, Any] = {
            "operationId": route["name"],
            "summary": route["summary"] or route["name"].replace("_", " ").capitalize(),
            "responses": responses,
        }
        if params:
            operation["parameters"] = params
        if security := _requirements(required_schemes, optional_schemes):
            operation["security"] = security
        if body:
            operation["requestBody"] = body
        for method in route["methods"]:
            paths.setdefault(route["path"], {})[method.lower()] = operation
    _, model_defs = models_json_schema(
        [(m, "validation") for m in sorted(models, key=lambda m: m.__name__)], ref_template=REF
    )
    schemas = {**defs, **dict(model_defs.get("$defs", {}))}
    schemas["Problem"] = {
        "type": "object",
        "description": "Problem Details (RFC 9457); extension members may follow",
        "required": ["type", "title", "status"],
        "properties": {
            "type": {"type": "string", "description": "URI of the problem type"},
            "title": {"type": "string"},
            "status": {"type": "integer", "minimum": 400, "maximum": 599},
            "detail": {"type": "string"},
            "instance": {"type": "string", "description": "the request path"},
            "trace_id": {"type": "string", "description": "find the request in the logs"},
            "errors": {
                "type": "array",
                "description": "with 422: one entry per invalid field",
                "items": {
                    "type": "object",
                    "required": ["loc", "msg", "type"],
                    "properties": {
                        "loc": {
                            "type": "array",
                            "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
                        },
                        "msg": {"type": "string"},
                        "type": {"type": "string"},
                    },
                },
            },
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {"schemas": schemas}
        | ({"securitySchemes": security_schemes} if security_schemes else {}),
    }
