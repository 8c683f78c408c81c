"""Encoding payloads for publishing and decoding received messages into typed values.

JSON (``application/json``) by default; MessagePack (``application/msgpack``) when the
message says so (needs ``cordio[msgpack]``). Decoding validates with pydantic against the
handler's payload annotation.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic_core import to_json

from cordio.messaging.message import Message

JSON = "application/json"
MSGPACK = "application/msgpack"


class PoisonMessage(Exception):
    """A message that can never be handled: undecodable, too large or invalid."""


def encode(payload: Any, content_type: str = JSON) -> bytes:
    """Encode ``payload`` (a pydantic model, plain data, or bytes as they are).

    Raises:
        ValueError: an unsupported content type.
    """
    if isinstance(payload, bytes):
        return payload
    if content_type == JSON:
        if isinstance(payload, BaseModel):
            return payload.__pydantic_serializer__.to_json(payload)
        return to_json(payload)
    if content_type == MSGPACK:
        from cordio.errors import require_extra

        msgpack: Any = require_extra("msgpack", feature="MessagePack payloads", extra="msgpack")
        data = payload.model_dump(mode="json") if isinstance(payload, BaseModel) else payload
        return bytes(msgpack.packb(data))
    raise ValueError(f"unsupported content type {content_type!r}")


def _media_type(content_type: str | None) -> str:
    return (content_type or JSON).split(";")[0].strip().lower()


def decode(message: Message, adapter: TypeAdapter[Any], max_bytes: int) -> Any:
    """Decode and validate a message body.

    Raises:
        PoisonMessage: over ``max_bytes``, an unknown content type, undecodable, or not
            valid for ``adapter`` (the reason names the first few bad fields, never values).
    """
    body = message.body
    if len(body) > max_bytes:
        raise PoisonMessage(f"{len(body)} bytes is over the limit of {max_bytes}")
    content_type = message.content_type
    kind = content_type if content_type == JSON else _media_type(content_type)
    try:
        if kind in (JSON, "text/json", ""):
            return adapter.validate_json(body)
        if kind in (MSGPACK, "application/x-msgpack"):
            import msgpack

            try:
                data = msgpack.unpackb(body)
            except Exception as exc:
                raise PoisonMessage(f"undecodable MessagePack: {type(exc).__name__}") from None
            return adapter.validate_python(data)
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(p) for p in e['loc']) or 'payload'}: {e['msg']}"
            for e in exc.errors(include_input=False, include_url=False)[:5]
        ]
        raise PoisonMessage("invalid payload: " + "; ".join(problems)) from None
    raise PoisonMessage(f"unsupported content-type {message.content_type!r}")
