"""Encoding payloads for publishing and decoding received messages into typed values.

JSON (``application/json``) by default; MessagePack (``application/msgpack``) when the
message says so (needs ``cordio[msgpack]``). Decoding validates with pydantic against the
handler's payload annotation.

Content types read (parameters such as ``; charset=utf-8`` and letter case ignored): JSON
is ``application/json``, ``text/json``, any ``+json`` type (RFC 6839, e.g.
``application/problem+json``) or none at all; MessagePack is ``application/msgpack``,
``application/x-msgpack`` or ``application/vnd.msgpack``. Written: ``application/json`` or
``application/msgpack``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic_core import to_json

from cordio.messaging.errors import PoisonMessage as PoisonMessage
from cordio.messaging.message import Message

JSON = "application/json"
MSGPACK = "application/msgpack"
_JSON_TYPES = frozenset({JSON, "text/json", ""})
_MSGPACK_TYPES = frozenset({MSGPACK, "application/x-msgpack", "application/vnd.msgpack"})


def encode(payload: Any, content_type: str = JSON) -> bytes:
    """Encode ``payload`` (a pydantic model, plain data, or bytes as they are).

    Raises:
        ValueError: an unsupported content type, or a JSON payload with a NaN or infinite
            float (not JSON, RFC 8259 section 6; a pydantic model writes them as ``null``
            unless its ``ser_json_inf_nan`` says otherwise).
        MissingExtraError: MessagePack without ``cordio[msgpack]``.
        Exception: whatever pydantic or msgpack raise for a value they cannot encode
            (``PydanticSerializationError``, ``TypeError``, ``OverflowError``).
    """
    if isinstance(payload, bytes):
        return payload
    if content_type == JSON:
        if isinstance(payload, BaseModel):
            body = payload.__pydantic_serializer__.to_json(payload)
        else:
            body = to_json(payload)
        if (b"NaN" in body or b"Infinity" in body) and body != _json_nan_as_null(payload):
            raise ValueError("NaN and infinite floats cannot be written as JSON")
        return body
    if content_type == MSGPACK:
        from cordio.errors import require_extra

        msgpack: Any = require_extra("msgpack", feature="MessagePack payloads", extra="msgpack")
        data = payload.model_dump(mode="json") if isinstance(payload, BaseModel) else payload
        return bytes(msgpack.packb(data))
    raise ValueError(f"unsupported content type {content_type!r}")


def _json_nan_as_null(payload: Any) -> bytes:
    """``payload`` as JSON with NaN and infinities written as ``null`` (for comparison)."""
    if isinstance(payload, BaseModel):
        payload = payload.model_dump(mode="json")
    return to_json(payload, inf_nan_mode="null")


def _media_type(content_type: str | None) -> str:
    return (content_type or JSON).split(";")[0].strip().lower()


def media_kind(content_type: str | None) -> str | None:
    """:data:`JSON` or :data:`MSGPACK` for a content type that means one of them (see the
    module docs), else ``None``."""
    if content_type == JSON:
        return JSON
    kind = _media_type(content_type)
    if kind in _JSON_TYPES or kind.endswith("+json"):
        return JSON
    if kind in _MSGPACK_TYPES:
        return MSGPACK
    return None


def decode(message: Message, adapter: TypeAdapter[Any], max_bytes: int) -> Any:
    """Decode and validate a message body.

    Raises:
        PoisonMessage: over ``max_bytes``, an unknown content type, undecodable, or not
            valid for ``adapter`` (the reason names the first few bad fields, never values).
    """
    body = message.body
    if len(body) > max_bytes:
        raise PoisonMessage(f"{len(body)} bytes is over the limit of {max_bytes}")
    kind = media_kind(message.content_type)
    try:
        if kind == JSON:
            return adapter.validate_json(body)
        if kind == MSGPACK:
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
