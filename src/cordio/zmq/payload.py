"""Payloads of cordio's MDP services: one body frame, MessagePack or JSON.

MDP carries frames and no content type (RFC 7 leaves the body to the application). cordio's
services read the first body frame as MessagePack and, when it is not, as JSON (a JSON text
is never valid MessagePack as a whole: its first byte reads as a small integer and the rest
is left over), and answer in the format the request came in. Never pickle.

A failure is the MDP error reply of :mod:`cordio.zmq.mdp.errors` (``mdp.error``, a status,
a message), so plain MDP clients see it as an ordinary reply they can tell apart.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Literal

from pydantic_core import to_jsonable_python

Format = Literal["msgpack", "json"]


class PayloadError(ValueError):
    """A body frame that is neither MessagePack nor JSON, or a request without a body."""


def decode(frames: Sequence[bytes]) -> tuple[Any, Format]:
    """The value of the first body frame and the format it was in.

    Raises:
        PayloadError: no frame, or a frame that is neither MessagePack nor JSON.
    """
    if not frames:
        raise PayloadError("the request has no body frame")
    body = frames[0]
    try:
        import msgpack

        return msgpack.unpackb(body, raw=False, strict_map_key=False), "msgpack"
    except ImportError:
        pass
    except Exception:
        pass
    try:
        return json.loads(body), "json"
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PayloadError(f"the body is neither MessagePack nor JSON: {exc}") from None


def encode(value: Any, fmt: Format = "msgpack") -> bytes:
    """``value`` (plain data or a pydantic model) in ``fmt``; bytes are sent as they are.

    Raises:
        ValueError: a value the format cannot hold (NaN in JSON, an unknown type).
    """
    if isinstance(value, bytes):
        return value
    plain = to_jsonable_python(value)
    if fmt == "msgpack":
        try:
            import msgpack
        except ImportError:
            fmt = "json"
        else:
            packed: bytes = msgpack.packb(plain, use_bin_type=True)
            return packed
    return json.dumps(plain, allow_nan=False, separators=(",", ":")).encode()
