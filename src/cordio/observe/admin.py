"""The admin surface: liveness, readiness with each resource's status, build info, and
every transport's documents.

- ``GET /health/live``: 200 while the process's event loop answers.
- ``GET /health/ready``: 200 when the app has started, is not stopping and every resource's
  check passes; 503 otherwise. Body: ``{"status": ..., "resources": {name: {"status":
  "up"|"down", "detail": str}}}``.
- ``GET /info``: name, version, Python, cordio version, git sha when known, and
  ``transports`` with what a transport says of itself (a broker's bound endpoints), when
  one does.
- ``GET /metrics``: the app's metrics (:mod:`cordio.observe.metrics`) in the Prometheus
  text format 0.0.4, or OpenMetrics 1.0 when the ``Accept`` header asks for
  ``application/openmetrics-text``; 404 when metrics are off.
- ``GET /<name>.json``: each document a transport publishes (``/openapi.json``,
  ``/asyncapi.json``), built on first request.
- ``GET /admin/handlers``, ``/admin/tasks``, ``/admin/threads``, ``/admin/loggers`` and
  ``POST /admin/loggers/{name}``: what the app is doing (:mod:`cordio.observe.introspect`);
  under ``/admin`` so that they never shadow, nor are shadowed by, the app's own routes.
- ``GET /admin/config``: the effective settings with the source of each value, masked
  (:mod:`cordio.observe.config_route`).
- ``/admin/<transport>/...``: each transport's own routes
  (:meth:`~cordio.transport.Transport.admin_routes`; ZeroMQ's broker and worker processes).

**Access.** With ``admin.token`` set, every route here but the health routes and the
documents answers only a
request carrying ``Authorization: Bearer <token>`` (RFC 6750, section 2.1), compared in
constant time; others get 401 ``application/problem+json`` with a ``WWW-Authenticate:
Bearer`` challenge (RFC 6750, section 3). Without a token, every method but GET and HEAD is
refused with 403 (nothing is changed through an unprotected surface), and the ``/admin/...``
routes (stacks, loggers, workers...) answer only requests from this host (a loopback
address; 403 otherwise), as if bound to 127.0.0.1; ``/info`` and ``/metrics`` stay open.
The health routes are always open (probes carry no credentials), and so are the documents.

The HTTP transport mounts these routes beside its handlers when it serves any; otherwise
:class:`AdminSurface` serves them on a port of their own (``admin.host``, ``admin.port``).
The health and info routes are left out with ``admin.enabled = false``; the documents are
always served where there is an HTTP server.
"""

from __future__ import annotations

import functools
import hmac
import json
import os
import platform
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic_core import to_json
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from cordio._version import __version__
from cordio.settings import Settings
from cordio.transport import RunContext, TransportBase

if TYPE_CHECKING:
    from cordio.app import App
    from cordio.transport import Documents

JSON = "application/json"
#: Methods that read: allowed without a token when none is set.
READS = frozenset({"GET", "HEAD"})
#: The challenge of a 401 (RFC 6750, section 3).
CHALLENGE = 'Bearer realm="admin"'

Endpoint = Callable[[Request], Awaitable[Response]]


def git_sha(start: Path | None = None) -> str | None:
    """Return the commit of the git checkout holding ``start`` (default: the current
    directory), from ``GIT_SHA`` if set, else by reading ``.git`` directly; ``None`` if
    unknown. Never raises."""
    if os.environ.get("GIT_SHA"):
        return os.environ["GIT_SHA"]
    here = (start or Path.cwd()).resolve()
    try:
        for folder in (here, *here.parents):
            git = folder / ".git"
            if not git.is_dir():
                continue
            head = (git / "HEAD").read_text().strip()
            if not head.startswith("ref: "):
                return head or None
            ref = head[5:]
            loose = git / ref
            if loose.is_file():
                return loose.read_text().strip() or None
            packed = git / "packed-refs"
            if packed.is_file():
                for line in packed.read_text().splitlines():
                    if line.endswith(" " + ref):
                        return line.split(" ", 1)[0]
            return None
    except OSError:
        return None
    return None


def admin_routes(run: RunContext, *, health: bool = True) -> list[BaseRoute]:
    """The admin routes of the running app ``run``: every transport's documents, and unless
    ``health`` is false (``admin.enabled``) health, info (behind the token) and every
    transport's :meth:`~cordio.transport.Transport.admin_routes` under ``/admin/<name>``
    (behind the token)."""
    from cordio.http.settings import AdminSettings

    secret = run.section(AdminSettings).token
    token = secret.get_secret_value().encode() if secret is not None else None
    documents = document_routes(run.documents())
    if not health:
        return documents
    routes: list[BaseRoute] = [*_health_routes(run, token)]
    routes.append(Route("/metrics", guarded(_metrics(run), token), methods=["GET"]))
    from cordio.observe import config_route, introspect

    routes.extend(
        Route(
            "/admin" + r.path,
            guarded(r.endpoint, token, local=True),
            methods=sorted(r.methods or {"GET"}),
        )
        for r in introspect.routes(run)
    )
    routes.extend(
        Route("/admin" + r.path, guarded(r.endpoint, token, local=True), methods=["GET"])
        for r in config_route.routes(run)
    )
    for transport in run.plan.transports:
        routes.extend(
            Route(
                f"/admin/{transport.name}{route.path.rstrip('/')}",
                guarded(route.endpoint, token, local=True),
                methods=sorted(route.methods or {"GET"}),
                name=route.name,
            )
            for route in transport.admin_routes(run)
        )
    described = list(routes)
    documents.extend(
        document_routes({"admin/openapi": lambda: admin_document(run.app_name, described)})
    )
    return [*routes, *documents]


def admin_document(app_name: str, routes: list[BaseRoute]) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the admin routes (``GET /admin/openapi.json``), from
    their endpoints' docstrings (Starlette's ``SchemaGenerator``: the YAML after ``---``)."""
    from starlette.schemas import SchemaGenerator

    base = {
        "openapi": "3.1.0",
        "info": {"title": f"{app_name} admin", "version": __version__},
        "components": {
            "securitySchemes": {"admin": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"admin": []}],
    }
    document = SchemaGenerator(base).get_schema(routes)
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            _answers_of_the_guard(path, method, operation)
    return document


PROBLEM_CONTENT = {"application/problem+json": {"schema": {"type": "object"}}}


def _answers_of_the_guard(path: str, method: str, operation: dict[str, Any]) -> None:
    """Add to ``operation`` what :func:`guarded` answers for it (401 for a missing or
    wrong token; 403 for a change without ``admin.token``, or for ``/admin/...`` from
    another host), and give every 4xx/5xx answer described without a body the problem
    body (RFC 9457): the endpoints' docstrings describe only their own answers."""
    responses = operation.setdefault("responses", {})
    if operation.get("security") != []:  # the health routes opt out of the token
        responses.setdefault("401", {"description": "the admin token is missing or wrong"})
        if method != "get" or path.startswith("/admin/"):
            responses.setdefault(
                "403",
                {"description": "without admin.token: a change, or a request from another host"},
            )
    for status, response in responses.items():
        if str(status)[0] in "45" and "content" not in response:
            response["content"] = PROBLEM_CONTENT


def guarded(endpoint: Endpoint, token: bytes | None, *, local: bool = False) -> Endpoint:
    """``endpoint`` behind the admin token (see the module's "Access"): with ``token``, a
    request without ``Authorization: Bearer <token>`` gets 401; without one, a request
    that is not a read gets 403, and so does a read from another host than this one when
    ``local``."""
    from cordio.http.problem import problem

    @functools.wraps(endpoint)
    async def guard(request: Request) -> Response:
        if token is None:
            if request.method not in READS:
                return problem(403, "changes through the admin surface need admin.token to be set")
            if local and not _loopback(request):
                return problem(
                    403, "without admin.token this route answers only this host (loopback)"
                )
            return await endpoint(request)
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token):
            return await endpoint(request)
        detail = "a bearer token is required" if not given else "the bearer token is not valid"
        challenge = CHALLENGE if not given else CHALLENGE + ', error="invalid_token"'
        return problem(401, detail, headers={"WWW-Authenticate": challenge})

    return guard


async def json_body(request: Request, limit: int) -> Any:
    """The JSON value of a request's body of at most ``limit`` bytes, or the problem
    response that says what is wrong with it (413 too large, 400 not JSON)."""
    from cordio.http.problem import problem

    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > limit:
            return problem(413, f"the body is over {limit} bytes")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        return problem(400, f"the body is not JSON: {exc}")


def _loopback(request: Request) -> bool:
    """Whether the request came from this host (127.0.0.0/8, ::1)."""
    import ipaddress

    client = request.client
    if client is None:
        return False
    try:
        return ipaddress.ip_address(client.host).is_loopback
    except ValueError:
        return False


def document_routes(documents: Documents) -> list[BaseRoute]:
    """``GET /<name>.json`` for each document, built on first request and kept."""
    routes: list[BaseRoute] = []
    for name, build in documents.items():
        routes.append(Route(f"/{name}.json", _document(build), methods=["GET"]))
    return routes


def _document(build: Callable[[], dict[str, Any]]) -> Callable[[Request], Any]:
    cache: list[bytes] = []

    async def serve(request: Request) -> Response:
        if not cache:
            cache.append(to_json(build()))
        return Response(cache[0], media_type=JSON)

    return serve


def _metrics(run: RunContext) -> Endpoint:
    async def metrics(request: Request) -> Response:
        """The app's metrics in the Prometheus text format (OpenMetrics when asked).
        ---
        summary: Metrics
        responses:
          "200":
            description: the exposition
            content:
              text/plain:
                schema: {type: string}
              application/openmetrics-text:
                schema: {type: string}
          "404":
            description: metrics are off
        """
        from cordio.http.problem import problem

        found = run.metrics
        if found is None:
            return problem(404, "metrics are off (metrics.enabled, or install cordio[metrics])")
        from prometheus_client.exposition import choose_encoder, generate_latest

        try:
            encode, media_type = choose_encoder(request.headers.get("accept", ""))
        except (ValueError, TypeError):  # prometheus-client on a malformed version in Accept
            encode, media_type = generate_latest, "text/plain; version=0.0.4; charset=utf-8"
        return Response(encode(found.registry), headers={"Content-Type": media_type})

    return metrics


def _health_routes(run: RunContext, token: bytes | None) -> list[BaseRoute]:
    info_cache: dict[str, Any] = {}
    stopped = b'{"status":"stopped","resources":{}}'

    async def live(request: Request) -> Response:
        """Liveness: 200 while the event loop answers.
        ---
        summary: Liveness
        security: []
        responses:
          "200":
            description: alive
            content:
              application/json:
                schema: {type: object, properties: {status: {type: string}}}
        """
        return Response(b'{"status":"alive"}', media_type=JSON)

    async def ready(request: Request) -> Response:
        """Readiness with each resource's check.
        ---
        summary: Readiness
        security: []
        responses:
          "200":
            description: ready
            content:
              application/json:
                schema: {type: object, required: [status]}
          "503":
            description: not ready
            content:
              application/json:
                schema: {type: object, required: [status]}
        """
        if run.state in ("created", "stopped", "failed"):
            return Response(stopped, 503, media_type=JSON)
        ok, body = await run.health()
        return Response(to_json(body), 200 if ok else 503, media_type=JSON)

    async def info(request: Request) -> Response:
        """Build and transport information
        ---
        summary: Build and transport information
        responses:
          "200":
            description: Build and transport information
            content:
              application/json:
                schema: {type: object}
        """
        if not info_cache:
            info_cache.update(
                name=run.app_name,
                version=run.version,
                python=platform.python_version(),
                cordio=__version__,
                git_sha=git_sha(),
            )
        transports = run.transport_info()  # live: endpoints are known once bound
        body = {**info_cache, "transports": transports} if transports else info_cache
        return Response(to_json(body), media_type=JSON)

    return [
        Route("/health/live", live, methods=["GET"]),
        Route("/health/ready", ready, methods=["GET"]),
        Route("/info", guarded(info, token) if token is not None else info, methods=["GET"]),
    ]


class AdminSurface(TransportBase):
    """The admin surface as a transport of every app: when no other transport exported an
    ASGI app for this run (no HTTP handlers), it builds one of the admin routes, and serves
    it on ``admin.host:admin.port`` when ``admin.enabled``."""

    name: ClassVar[str] = "admin"
    order: ClassVar[int] = 100  # last: its own server only when no transport exported one

    def attach(self, app: App) -> None:
        """Make the app's metrics injectable by type (``metrics: Metrics``), as the
        resource ``app_metrics``, when prometheus-client is installed."""
        from cordio.observe.metrics import Metrics, available

        if not available():
            return

        def app_metrics() -> Metrics:
            return app.metrics

        app.resource(app_metrics, name="app_metrics")

    def sections(self) -> list[type[Settings]]:
        from cordio.http.settings import AdminSettings, HttpSettings

        return [AdminSettings, HttpSettings]

    def services(self, run: RunContext) -> list[Any]:
        if "asgi" in run.exports:
            return []
        from cordio.http.server import HttpServer
        from cordio.http.settings import AdminSettings, HttpSettings
        from cordio.http.transport import asgi_app

        admin = run.section(AdminSettings)
        routes = admin_routes(run, health=admin.enabled)
        run.exports["asgi"] = asgi_app(routes, run.section(HttpSettings))
        if not (run.serve and admin.enabled):
            return []
        return [
            HttpServer(
                run.exports["asgi"],
                host=admin.host,
                port=admin.port,
                settings=run.section(HttpSettings),
                grace=run.shutdown_grace,
                name="admin",
            )
        ]
