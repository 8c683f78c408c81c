"""AsyncAPI 3.0 document of an app's message handlers and declared publications.

Each consumer becomes a ``receive`` operation on the channel of its source; each
``app.publishes(destination, Model)`` a ``send`` operation. Payload schemas are pydantic's
JSON Schemas under ``components/schemas``. Specification: https://www.asyncapi.com/docs/reference/specification/v3.0.0
"""

from __future__ import annotations

import inspect
import re
from typing import Any

from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import models_json_schema

REF = "#/components/schemas/{model}"
_KEY = re.compile(r"[^A-Za-z0-9_.-]")


def _channel_key(address: str) -> str:
    return _KEY.sub("_", address.replace(".", "_"))


def _payload(annotation: Any, models: set[type[BaseModel]]) -> tuple[str, dict[str, Any]]:
    """A message name and its payload schema."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        models.add(annotation)
        return annotation.__name__, {"$ref": REF.format(model=annotation.__name__)}
    if annotation in (None, inspect.Parameter.empty, Any):
        return "Payload", {}
    schema = TypeAdapter(annotation).json_schema(ref_template=REF)
    return getattr(annotation, "__name__", "Payload"), schema


def build_asyncapi(
    title: str,
    version: str,
    broker_url: str,
    receives: list[tuple[str, str, Any]],
    sends: list[tuple[str, Any]],
) -> dict[str, Any]:
    """Build the document.

    Args:
        title, version: the app's name and version.
        broker_url: ``broker.url`` (credentials are left out of the document).
        receives: ``(operation name, source, payload annotation)`` per consumer.
        sends: ``(destination, payload annotation)`` per declared publication.
    """
    models: set[type[BaseModel]] = set()
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}

    def channel(address: str, annotation: Any) -> tuple[str, str]:
        key = _channel_key(address)
        name, schema = _payload(annotation, models)
        messages[name] = {"name": name, "contentType": "application/json", "payload": schema}
        entry = channels.setdefault(key, {"address": address, "messages": {}})
        entry["messages"][name] = {"$ref": f"#/components/messages/{name}"}
        return key, name

    for operation, source, annotation in receives:
        key, name = channel(source, annotation)
        operations[operation] = {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{key}"},
            "messages": [{"$ref": f"#/channels/{key}/messages/{name}"}],
        }
    for destination, annotation in sends:
        key, name = channel(destination, annotation)
        operations[f"send_{key}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{key}"},
            "messages": [{"$ref": f"#/channels/{key}/messages/{name}"}],
        }
    scheme, _, rest = broker_url.partition("://")
    host = rest.rsplit("@", 1)[-1].split("/", 1)[0] or "localhost"
    _, defs = models_json_schema(
        [(m, "validation") for m in sorted(models, key=lambda m: m.__name__)], ref_template=REF
    )
    return {
        "asyncapi": "3.0.0",
        "info": {"title": title, "version": version},
        "servers": {"default": {"host": host, "protocol": scheme or "memory"}},
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": dict(defs.get("$defs", {}))},
    }
