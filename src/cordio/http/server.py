"""The HTTP server: uvicorn running inside the app's own event loop, as a Service."""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any

import uvicorn

from cordio.http.protocol import bounded_httptools_protocol
from cordio.http.settings import HttpSettings

log = logging.getLogger("cordio.http")


def _bind(host: str, port: int, backlog: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class HttpServer:
    """Serve an ASGI app with uvicorn in the running loop (no threads, no subprocess).

    Args:
        app: the ASGI app.
        host: listen address.
        port: TCP port; 0 picks a free one (see :attr:`port` after start).
        settings: connection limits and timeouts.
        grace: seconds uvicorn waits for open connections when stopping.
        name: for logs (``"http"``, ``"admin"``).
    """

    def __init__(
        self,
        app: Any,
        *,
        host: str,
        port: int,
        settings: HttpSettings,
        grace: float,
        name: str = "http",
    ) -> None:
        self.host = host
        self.port = port
        self.name = name
        protocol = bounded_httptools_protocol(4 * settings.max_header_bytes, settings.head_timeout)
        self.config = uvicorn.Config(
            app,
            http=protocol or "h11",
            host=host,
            port=port,
            lifespan="off",
            log_config=None,
            access_log=False,
            proxy_headers=settings.proxy_headers,
            forwarded_allow_ips=settings.forwarded_allow_ips,
            limit_concurrency=settings.max_connections,
            timeout_keep_alive=int(max(1, settings.keep_alive)),
            timeout_graceful_shutdown=int(max(1, grace)),
            backlog=settings.backlog,
            server_header=False,
            h11_max_incomplete_event_size=4 * settings.max_header_bytes,
        )
        self.server = uvicorn.Server(self.config)
        self._sock: socket.socket | None = None
        self._ticker: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"HttpServer({self.name}, {self.host}:{self.port})"

    async def start(self) -> None:
        """Bind and start accepting connections.

        Raises:
            OSError: the address is in use or cannot be bound.
        """
        try:
            self._sock = _bind(self.host, self.port, self.config.backlog)
        except OSError as exc:
            raise OSError(
                exc.errno, f"{self.name}: cannot listen on {self.host}:{self.port}: {exc.strerror}"
            ) from None
        self.port = self._sock.getsockname()[1]
        self.config.load()
        self.server.lifespan = self.config.lifespan_class(self.config)
        await self.server.startup(sockets=[self._sock])
        self._ticker = asyncio.get_running_loop().create_task(
            self.server.main_loop(), name=f"cordio.{self.name}.tick"
        )
        log.info("%s listening on http://%s:%d", self.name, self.host, self.port)

    async def stop_accepting(self) -> None:
        """Close the listening socket and idle keep-alive connections; busy connections
        close after their current response."""
        for server in getattr(self.server, "servers", []):
            server.close()
        for connection in list(self.server.server_state.connections):
            connection.shutdown()

    async def stop(self) -> None:
        """Stop the server; wait for open connections up to the grace period."""
        self.server.should_exit = True
        if self._ticker is not None:
            await self._ticker
            self._ticker = None
        if self.server.started:
            await self.server.shutdown(sockets=[self._sock] if self._sock else None)
        self._sock = None
