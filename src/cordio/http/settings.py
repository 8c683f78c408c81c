"""Settings of the HTTP transport and of the admin endpoints."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from cordio.settings import Settings


class CorsSettings(BaseModel):
    r"""``http.cors``: Cross-Origin Resource Sharing (the Fetch standard's CORS protocol,
    https://fetch.spec.whatwg.org/#http-cors-protocol), served by Starlette's
    ``CORSMiddleware``. Off while ``allow_origins`` and ``allow_origin_regex`` are empty.

    Lists may be given as JSON lists or comma-separated strings
    (``ORDERS__HTTP__CORS__ALLOW_ORIGINS=https://a.example,https://b.example``).

    Attributes:
        allow_origins: origins allowed to read responses, e.g. ``https://app.example``;
            ``*`` for any (default none: CORS off).
        allow_origin_regex: a regular expression origins may match instead
            (``https://.*\.example\.org``).
        allow_methods: methods allowed in cross-origin requests (default GET, HEAD, POST,
            PUT, PATCH, DELETE); ``*`` for any.
        allow_headers: request headers allowed beyond the CORS-safelisted ones (default
            none); ``*`` for any.
        expose_headers: response headers scripts may read beyond the safelisted ones.
        allow_credentials: allow cookies and ``Authorization`` (default false); refused
            with ``allow_origins = ["*"]``, which would let every site send them.
        max_age: seconds a browser may cache a preflight answer (default 600).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    allow_origins: list[str] = Field(default_factory=list)
    allow_origin_regex: str | None = None
    allow_methods: list[str] = Field(
        default_factory=lambda: ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
    )
    allow_headers: list[str] = Field(default_factory=list)
    expose_headers: list[str] = Field(default_factory=list)
    allow_credentials: bool = False
    max_age: int = Field(600, ge=0)

    @field_validator(
        "allow_origins", "allow_methods", "allow_headers", "expose_headers", mode="before"
    )
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @model_validator(mode="after")
    def _no_credentials_for_everyone(self) -> CorsSettings:
        if self.allow_credentials and "*" in self.allow_origins:
            raise ValueError(
                "allow_credentials with allow_origins '*' would let any site send"
                " credentials; list the origins"
            )
        return self

    @property
    def enabled(self) -> bool:
        return bool(self.allow_origins or self.allow_origin_regex)


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
        access_log: one INFO line per request on ``cordio.http.access`` — method, route
            template, status, milliseconds, trace id (default true).
        docs: serve Swagger UI at ``/docs`` (needs ``cordio[docs]``; default true).
        cors: Cross-Origin Resource Sharing, off by default (:class:`CorsSettings`).
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
    access_log: bool = True
    docs: bool = True
    cors: CorsSettings = Field(default_factory=CorsSettings)


#: The shortest admin token accepted, in characters.
MIN_TOKEN_LENGTH = 16


class AdminSettings(Settings, section="admin"):
    """The ``admin`` section: where ``/health/*``, ``/info`` and the transports' admin
    routes (``/admin/<transport>/...``) are served, and who may use them.

    With HTTP handlers they are served by the app's HTTP server; without, by a small server
    of their own on ``host:port``.

    Attributes:
        enabled: serve the admin endpoints at all (default true).
        host: address of the admin-only server (default ``127.0.0.1``).
        port: port of the admin-only server (default 8081; 0 picks a free port).
        token: the bearer token (RFC 6750) that ``/info`` and the ``/admin/...`` routes ask
            for when set (``Authorization: Bearer <token>``); default none: every change
            is refused (403) and the ``/admin/...`` routes answer only this host. The
            health routes never ask for it (probes carry no credentials). At least 16
            characters.
    """

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(8081, ge=0, le=65535)
    token: SecretStr | None = None

    @field_validator("token")
    @classmethod
    def _long_enough(cls, token: SecretStr | None) -> SecretStr | None:
        if token is not None and len(token.get_secret_value()) < MIN_TOKEN_LENGTH:
            raise ValueError(f"the admin token needs at least {MIN_TOKEN_LENGTH} characters")
        return token
