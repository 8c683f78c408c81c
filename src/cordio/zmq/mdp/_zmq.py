"""pyzmq, imported once for the MDP modules, with the extra named when it is missing."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cordio.errors import require_extra

require_extra("zmq", feature="ZeroMQ (MDP broker, worker and client)", extra="zmq")

import zmq.asyncio  # noqa: E402  (binds zmq too)

if TYPE_CHECKING:
    from collections.abc import Sequence


def context(given: zmq.asyncio.Context | None) -> zmq.asyncio.Context:
    """``given``, or the process's shared asyncio context (never terminated by cordio; the
    ``inproc://`` transport needs both ends on one context)."""
    return given if given is not None else zmq.asyncio.Context.instance()


def endpoints(addresses: str | Sequence[str]) -> list[str]:
    """A list of ZeroMQ endpoints from one or several.

    Raises:
        ValueError: no endpoint, or one without a ``transport://``.
    """
    found = [addresses] if isinstance(addresses, str) else list(addresses)
    if not found:
        raise ValueError("at least one endpoint is needed (tcp://host:port, ipc://path, ...)")
    for endpoint in found:
        if "://" not in endpoint:
            raise ValueError(f"{endpoint!r} is not a ZeroMQ endpoint (tcp://..., ipc://...)")
    return found


__all__ = ["context", "endpoints", "zmq"]
