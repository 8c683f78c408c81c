"""The Majordomo Protocol: MDP/0.1 (ZeroMQ RFC 7), MDP/0.2 (RFC 18) and MMI (RFC 8).

- :mod:`~cordio.zmq.mdp.frames`: the wire format, as frozen value objects (no pyzmq needed);
- :class:`MDPBroker`: the broker, on one ROUTER socket, both versions at once;
- :class:`MDPWorker`: a worker for one service, one request at a time per connection;
- :class:`MDPClient`: a client with retries (Paranoid Pirate) and concurrent requests;
- :mod:`~cordio.zmq.mdp.errors`: :class:`MDPError`, :class:`RequestTimeout`,
  :class:`AuthenticationError`, :class:`MalformedMessage` and the error reply convention.

Each of the broker, worker and client takes ``curve=`` for CURVE security
(:mod:`cordio.zmq.curve`).

Names are imported on first use, so the wire format is usable without pyzmq; the broker,
worker and client need ``cordio[zmq]`` (a :class:`~cordio.errors.MissingExtraError` names
it otherwise).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cordio.zmq.mdp.broker import MDPBroker
    from cordio.zmq.mdp.broker_state import BrokerOptions, ServiceInfo, WorkerInfo
    from cordio.zmq.mdp.client import ClientOptions, MDPClient
    from cordio.zmq.mdp.errors import (
        AuthenticationError,
        MalformedMessage,
        MDPError,
        RequestTimeout,
    )
    from cordio.zmq.mdp.frames import Version
    from cordio.zmq.mdp.job import Job
    from cordio.zmq.mdp.worker import MDPWorker, WorkerOptions

_WHERE = {
    "AuthenticationError": "errors",
    "BrokerOptions": "broker_state",
    "MDPBroker": "broker",
    "ServiceInfo": "broker_state",
    "WorkerInfo": "broker_state",
    "ClientOptions": "client",
    "MDPClient": "client",
    "MDPError": "errors",
    "MalformedMessage": "errors",
    "RequestTimeout": "errors",
    "Version": "frames",
    "Job": "job",
    "MDPWorker": "worker",
    "WorkerOptions": "worker",
}

__all__ = [
    "AuthenticationError",
    "BrokerOptions",
    "ClientOptions",
    "Job",
    "MDPBroker",
    "MDPClient",
    "MDPError",
    "MDPWorker",
    "MalformedMessage",
    "RequestTimeout",
    "ServiceInfo",
    "Version",
    "WorkerInfo",
    "WorkerOptions",
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
