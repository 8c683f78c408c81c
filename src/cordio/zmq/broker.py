"""The MDP broker as a service of an app (``zmq.broker.enabled``) or alone (``cordio zmq
broker``): endpoints from settings, a free port from ``zmq.broker.port_range`` for a
``tcp://`` endpoint without one, the bound endpoints logged and written to
``zmq.broker.state_file`` when set."""

from __future__ import annotations

import asyncio
import logging
import re
import socket
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cordio.zmq.mdp import MDPBroker
    from cordio.zmq.settings import ZmqSettings

log = logging.getLogger("cordio.zmq")

_NO_PORT = re.compile(r"^tcp://(?P<host>\[[^\]]+\]|[^:/]+)/?$")


def free_port(host: str, first: int, last: int) -> int:
    """The first port of ``first..last`` that ``host`` can bind now.

    Raises:
        OSError: none is free, naming the range.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    address = "" if host in ("*", "0.0.0.0") else host.strip("[]")
    for port in range(first, last + 1):
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((address, port))
            except OSError:
                continue
            return port
    raise OSError(f"no free port in {first}-{last} on {host}")


def with_ports(endpoints: list[str], port_range: tuple[int, int]) -> list[str]:
    """``endpoints`` with a free port of ``port_range`` for each ``tcp://host`` without one.

    Raises:
        OSError: no port of the range is free.
    """
    out = []
    for endpoint in endpoints:
        found = _NO_PORT.match(endpoint)
        if found is None:
            out.append(endpoint)
            continue
        host = found.group("host")
        out.append(f"tcp://{host}:{free_port(host, *port_range)}")
    return out


class BrokerService:
    """Runs an :class:`~cordio.zmq.mdp.MDPBroker` with the ``zmq`` section's options.

    The broker keeps the real clock, as its workers on other processes do, also under
    :class:`~cordio.testing.TestApp`'s fake one.

    Args:
        settings: the ``zmq`` section.

    Attributes:
        broker: the running broker (after :meth:`start`).
        endpoints: the endpoints it bound, ports resolved.
    """

    def __init__(self, settings: ZmqSettings) -> None:
        self.settings = settings
        self.broker: MDPBroker | None = None
        self.endpoints: list[str] = []

    def __repr__(self) -> str:
        return f"<BrokerService {', '.join(self.endpoints or self.settings.broker.bind)}>"

    async def start(self) -> None:
        """Bind and serve.

        Raises:
            OSError: an endpoint cannot be bound, or no port of the range is free.
        """
        from cordio.zmq.mdp import BrokerOptions, MDPBroker

        cfg = self.settings
        options = BrokerOptions(
            heartbeat_interval=cfg.heartbeat_interval,
            heartbeat_liveness=cfg.heartbeat_liveness,
            max_queued=cfg.max_queued,
            request_ttl=cfg.request_ttl,
            max_message_size=cfg.max_message_size,
        )
        bind = with_ports(list(cfg.broker.bind), cfg.broker.port_range)
        broker = MDPBroker(bind, options, curve=cfg.curve.server())
        await broker.start()
        self.broker, self.endpoints = broker, list(broker.endpoints)
        if cfg.broker.state_file:
            text = "".join(e + "\n" for e in self.endpoints)
            await asyncio.to_thread(Path(cfg.broker.state_file).write_text, text)
        log.info("MDP broker serving on %s", ", ".join(self.endpoints))

    async def stop(self) -> None:
        """Send DISCONNECT to the workers and close."""
        broker, self.broker = self.broker, None
        if broker is not None:
            await broker.stop()
