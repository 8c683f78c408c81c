"""Settings of the HTTP transport and of the admin endpoints."""

from __future__ import annotations

from pydantic import Field

from cordio.settings import Settings


class HttpSettings(Settings, section="http"):
    """The ``http`` section.

    Attributes:
        host: address to listen on (default ``127.0.0.1``; ``0.0.0.0`` for every IPv4
            interface).
        port: TCP port (default 8000; 0 picks a free port).
        max_body: largest request body in bytes (default 1 MiB); larger gets 413.
        max_header_bytes: largest sum of header names and values in bytes (default 16 KiB);
            larger gets 431. A request head (request line and raw headers) over four times
            this is refused with 431 while it is still arriving, so it is never buffered.
        max_headers: most header fields in one request (default 100); more gets 431.
        max_connections: most concurrent connections and requests; beyond it new ones get
            503 (default 1000).
        keep_alive: seconds an idle keep-alive connection stays open (default 5).
        head_timeout: seconds a client may take to send a request line and headers, from
            their first byte; slower clients get 408 and are disconnected (default 20).
        backlog: listen backlog (default 2048).
        proxy_headers: trust ``X-Forwarded-For`` / ``X-Forwarded-Proto`` from
            ``forwarded_allow_ips`` (default off).
        forwarded_allow_ips: comma-separated addresses trusted for proxy headers.
    """

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    max_body: int = Field(1 << 20, ge=0)
    max_header_bytes: int = Field(16 << 10, ge=1024)
    max_headers: int = Field(100, ge=1)
    max_connections: int = Field(1000, ge=1)
    keep_alive: float = Field(5.0, gt=0)
    head_timeout: float = Field(20.0, gt=0)
    backlog: int = Field(2048, ge=1)
    proxy_headers: bool = False
    forwarded_allow_ips: str = "127.0.0.1"


class AdminSettings(Settings, section="admin"):
    """The ``admin`` section: where ``/health/*`` and ``/info`` are served.

    With HTTP handlers they are served by the app's HTTP server; without, by a small server
    of their own on ``host:port``.

    Attributes:
        enabled: serve the admin endpoints at all (default true).
        host: address of the admin-only server (default ``127.0.0.1``).
        port: port of the admin-only server (default 8081; 0 picks a free port).
    """

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(8081, ge=0, le=65535)
