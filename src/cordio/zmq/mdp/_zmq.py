"""pyzmq, imported once for the MDP modules, with the extra named when it is missing."""

from __future__ import annotations

import asyncio
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


#: Seconds to keep trying a bind whose address is in use: libzmq closes a stopped
#: socket's listener in its own thread, so a restart in the same process may find the
#: port still taken for a moment.
BIND_RETRY = 1.0


async def bind(sock: zmq.asyncio.Socket, endpoint: str) -> None:
    """Bind, retrying *address in use* for :data:`BIND_RETRY` seconds.

    Raises:
        zmq.ZMQError: the bind failed.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + BIND_RETRY
    while True:
        try:
            sock.bind(endpoint)
            return
        except zmq.ZMQError as exc:
            if exc.errno != zmq.EADDRINUSE or loop.time() >= deadline:
                raise
        await asyncio.sleep(0.02)
