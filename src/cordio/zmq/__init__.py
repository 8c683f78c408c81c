"""ZeroMQ services (``cordio[zmq]``).

:mod:`cordio.zmq.mdp` is the Majordomo Protocol core: the wire format of MDP/0.1 (ZeroMQ
RFC 7) and MDP/0.2 (RFC 18) with the management interface (RFC 8), and an asyncio broker,
worker and client built on pyzmq's asyncio sockets. :mod:`cordio.zmq.curve` secures them
with CURVE (RFC 26) and ZAP (RFC 27): key files, the broker's authenticator, the handshake
monitor of workers and clients; its public names are importable from here too.
:mod:`cordio.zmq.relay` hands items to code that must run in threads and back (pylib's
``ZmqRelay``): :class:`Relay` and its options, result and errors are importable from here.

Importing this package imports nothing of pyzmq: names are imported on first use, and
:mod:`cordio.zmq.mdp`'s broker, worker and client, :mod:`cordio.zmq.curve` and
:mod:`cordio.zmq.relay` raise :class:`~cordio.errors.MissingExtraError` naming the extra
when pyzmq is not installed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cordio.zmq.curve import (
        CurveClientConfig,
        CurveKeyError,
        CurveServerConfig,
        configure_client,
        configure_server,
        create_certs,
    )
    from cordio.zmq.handshake import HandshakeFailure, HandshakeMonitor
    from cordio.zmq.relay import (
        ProcessingError,
        Relay,
        RelayClosed,
        RelayError,
        RelayOptions,
        RelayResult,
    )
    from cordio.zmq.zap import AuthorizedKeys, ZapAuthenticator

_WHERE = {
    "AuthorizedKeys": "zap",
    "CurveClientConfig": "curve",
    "CurveKeyError": "curve",
    "CurveServerConfig": "curve",
    "HandshakeFailure": "handshake",
    "HandshakeMonitor": "handshake",
    "ZapAuthenticator": "zap",
    "configure_client": "curve",
    "configure_server": "curve",
    "create_certs": "curve",
    "ProcessingError": "relay",
    "Relay": "relay",
    "RelayClosed": "relay",
    "RelayError": "relay",
    "RelayOptions": "relay",
    "RelayResult": "relay",
}

__all__ = [
    "AuthorizedKeys",
    "CurveClientConfig",
    "CurveKeyError",
    "CurveServerConfig",
    "HandshakeFailure",
    "HandshakeMonitor",
    "ProcessingError",
    "Relay",
    "RelayClosed",
    "RelayError",
    "RelayOptions",
    "RelayResult",
    "ZapAuthenticator",
    "configure_client",
    "configure_server",
    "create_certs",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
