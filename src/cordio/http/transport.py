"""The HTTP transport: route decorators on ``app.http``, mounts, and the served ASGI app."""

from __future__ import annotations

import inspect
import logging
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from cordio.errors import DependencyError
from cordio.handler import HandlerSpec
from cordio.http.access import HANDLER, AccessLogMiddleware
from cordio.http.docs_ui import docs_routes
from cordio.http.endpoint import ANSWERS, make_endpoint
from cordio.http.limits import LimitsMiddleware
from cordio.http.openapi import build_openapi, error_responses
from cordio.http.params import HttpBinder, path_params
from cordio.http.problem import problem
from cordio.http.response import body_annotation
from cordio.http.server import HttpServer
from cordio.http.settings import AdminSettings, HttpSettings
from cordio.observe.admin import admin_routes
from cordio.observe.tracing import Telemetry, code_attributes
from cordio.resource import caller_locals, resolve_hints
from cordio.settings import Settings
from cordio.transport import Documents, RunContext, TransportBase

if TYPE_CHECKING:
    from cordio.app import App
    from cordio.plan import Plan

log = logging.getLogger("cordio.http")

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class RouteMeta:
    """What an HTTP handler serves (its :attr:`~cordio.handler.HandlerSpec.meta`).

    Attributes:
        path: Starlette path syntax: ``/orders/{order_id}``.
        methods: upper-case HTTP methods.
        status_code: status of a successful response.
        responses: error status → description, declared by the decorator.
        summary: one line for OpenAPI.
    """

    path: str
    methods: tuple[str, ...]
    status_code: int = 200
    responses: Mapping[int, str] = field(default_factory=dict)
    summary: str = ""


class HttpTransport(TransportBase):
    """``app.http``: register HTTP handlers and mounts; serve them while the app runs."""

    name: ClassVar[str] = "http"
    documents_published: ClassVar[tuple[str, ...]] = ("openapi",)

    def __init__(self, app: App) -> None:
        super().__init__(app)
        self.routes: list[HandlerSpec[RouteMeta]] = []
        self.mounts: list[tuple[str, Any]] = []
        self.middleware: list[Middleware] = []

    def route(
        self,
        path: str,
        *,
        methods: list[str],
        status_code: int = 200,
        name: str | None = None,
        summary: str | None = None,
        responses: Mapping[int, str] | None = None,
    ) -> Callable[[F], F]:
        """Register a handler for ``methods`` on ``path``.

        Several handlers may serve one path with different methods; a request with another
        method gets 405 with every method of the path in ``Allow`` (RFC 9110 §15.5.6),
        ``HEAD`` is served wherever ``GET`` is, and ``OPTIONS`` is answered 204 with
        ``Allow`` unless a handler takes it.

        Args:
            path: Starlette path syntax: ``/orders/{order_id}``, ``{name:path}``.
            methods: HTTP methods, e.g. ``["GET"]``.
            status_code: status of a successful response (default 200).
            name: handler name (default: the function's name); unique per app.
            summary: one-line description for OpenAPI (default: from the name).
            responses: error statuses the handler answers, with a description, for the
                OpenAPI document: ``{404: "no such order"}``. Those of its own ``OnError``
                mappings, 422, 500, 413 (with a body) and 503 (behind a breaker, bulkhead
                or timeout, or with resources) are documented without being named here.

        Raises:
            ValueError: the path does not start with ``/``, the name is taken, a method
                is already served on the path, or a status in ``responses`` is not an
                error status (400-599).
        """
        if not path.startswith("/"):
            raise ValueError(f"route path must start with '/': {path!r}")
        upper = [m.upper() for m in methods]
        for spec in self.routes:
            taken = set(upper) & set(spec.meta.methods)
            if spec.meta.path == path and taken:
                raise ValueError(
                    f"{', '.join(sorted(taken))} {path} is already served by {spec.name!r}"
                )
        declared = dict(responses or {})
        for status in declared:
            if not (isinstance(status, int) and 400 <= status <= 599):
                raise ValueError(f"responses: {status!r} is not an error status (400-599)")
        localns = caller_locals(3 if _via_shortcut() else 2)

        def register(func: F) -> F:
            handler_name = name or func.__name__
            if any(h.name == handler_name for h in self.app.all_handlers()):
                raise ValueError(f"handler name {handler_name!r} is already used")
            self.routes.append(
                HandlerSpec(
                    name=handler_name,
                    func=func,
                    transport="http",
                    binder=HttpBinder(path),
                    answers=ANSWERS,
                    meta=RouteMeta(
                        path=path,
                        methods=tuple(upper),
                        status_code=status_code,
                        responses=declared,
                        summary=summary or (inspect.getdoc(func) or "").split("\n")[0],
                    ),
                    localns=localns,
                )
            )
            return func

        return register

    def get(self, path: str, **options: Any) -> Callable[[F], F]:
        """Register a GET handler; options as :meth:`route`."""
        return self.route(path, methods=["GET"], **options)

    def post(self, path: str, **options: Any) -> Callable[[F], F]:
        """Register a POST handler; options as :meth:`route`."""
        return self.route(path, methods=["POST"], **options)

    def put(self, path: str, **options: Any) -> Callable[[F], F]:
        """Register a PUT handler; options as :meth:`route`."""
        return self.route(path, methods=["PUT"], **options)

    def patch(self, path: str, **options: Any) -> Callable[[F], F]:
        """Register a PATCH handler; options as :meth:`route`."""
        return self.route(path, methods=["PATCH"], **options)

    def delete(self, path: str, **options: Any) -> Callable[[F], F]:
        """Register a DELETE handler; options as :meth:`route`."""
        return self.route(path, methods=["DELETE"], **options)

    def add_middleware(self, middleware_class: Any, /, **options: Any) -> None:
        """Wrap the HTTP handlers in any ASGI middleware: ``middleware_class(app,
        **options)`` (Starlette's ``Middleware`` convention).

        Order, outermost first: the access log, CORS (``http.cors``), the request limits
        (``http.max_body``...), then the middleware added here in the order added (the
        first added sees the request first and the response last), then the routes. So
        an added middleware never sees a request the limits refused, and CORS headers are
        on its answers too.

        Raises:
            TypeError: ``middleware_class`` is not callable.
        """
        if not callable(middleware_class):
            raise TypeError(
                f"add_middleware needs an ASGI middleware class, got {middleware_class!r}"
            )
        self.middleware.append(Middleware(middleware_class, **options))

    def mount(self, path: str, asgi_app: Any) -> None:
        """Serve any ASGI app (FastAPI, Starlette, ...) under ``path``.

        Its lifespan is not run; use :meth:`cordio.App.dependency` to give its endpoints
        cordio resources.
        """
        self.mounts.append((path.rstrip("/"), asgi_app))

    # -- the transport contract ---------------------------------------------------------

    def handlers(self) -> list[HandlerSpec[Any]]:
        return list(self.routes)

    def sections(self) -> list[type[Settings]]:
        return [HttpSettings]

    def check(self, plan: Plan) -> None:
        """Every placeholder of a route's path has a parameter.

        Raises:
            DependencyError: naming the handler, the path and the unbound placeholders.
        """
        for spec in self.routes:
            bound = {b.key for _, b in plan.bindings(spec.name) if b.location == "path"}
            unbound = set(path_params(spec.meta.path)) - bound
            if unbound:
                raise DependencyError(
                    f"handler {spec.name!r}: path {spec.meta.path!r} has placeholders"
                    f" {sorted(unbound)} with no parameter of that name"
                )

    def documents(self, plan: Plan, run: RunContext | None = None) -> Documents:
        return {"openapi": lambda: self._document(plan)}

    def build(self, run: RunContext) -> Starlette:
        """Build the ASGI app serving the handlers, mounts and the admin surface."""
        settings = run.section(HttpSettings)
        admin = run.section(AdminSettings)
        by_path: dict[str, dict[str, Endpoint]] = {}
        for spec in self.routes:
            meta = spec.meta
            endpoint = make_endpoint(
                spec.name,
                run.invoker(spec.name),
                run.plan.bindings(spec.name),
                meta.status_code,
                returns=_returns(spec),
            )
            for method in meta.methods:
                by_path.setdefault(meta.path, {})[method] = endpoint
        routes: list[BaseRoute] = [path_route(path, ends) for path, ends in by_path.items()]
        routes.extend(admin_routes(run, health=admin.enabled))
        if settings.docs and self.routes:
            routes.extend(docs_routes(self.app.name))
        routes.extend(Mount(path, app=mounted) for path, mounted in self.mounts)
        return asgi_app(routes, settings, self.middleware)

    def _document(self, plan: Plan) -> dict[str, Any]:
        described = [self._describe(spec, plan) for spec in self.routes]
        return build_openapi(self.app.name, self.app.version or "0", described)

    def openapi(self) -> dict[str, Any]:
        """The OpenAPI 3.1 document of the app's HTTP handlers, planned without starting
        the app (what ``GET /openapi.json`` serves; ``cordio docs openapi`` writes it).

        Raises:
            DependencyError: the app's handlers or resources cannot be resolved.
        """
        from cordio.plan import build_plan

        return self._document(build_plan(self.app))

    def _describe(self, spec: HandlerSpec[RouteMeta], plan: Plan) -> dict[str, Any]:
        """What the OpenAPI document says of one route."""
        bindings = plan.bindings(spec.name)
        return {
            **asdict(spec.meta),
            "name": spec.name,
            "bindings": bindings,
            "returns": body_annotation(_returns(spec)),
            "errors": error_responses(
                spec.func,
                spec.meta.responses,
                takes_body=any(b.location == "body" for _, b in bindings),
                uses_resources=plan.uses_resources(spec.name),
            ),
        }

    def telemetry(self, spec: HandlerSpec[Any]) -> Telemetry:
        """``GET /orders/{order_id}`` SERVER spans with ``http.route`` (and
        ``http.request.method`` for a route of one method): OpenTelemetry HTTP server
        semantic conventions."""
        meta = spec.meta
        attributes = {"http.route": meta.path, **code_attributes(spec.func)}
        name = meta.path
        if len(meta.methods) == 1:
            attributes["http.request.method"] = meta.methods[0]
            name = f"{meta.methods[0]} {meta.path}"
        return Telemetry(name, "server", attributes, targets=(meta.path,))

    def services(self, run: RunContext) -> list[Any]:
        if not (self.routes or self.mounts):
            return []  # the admin surface serves on its own port
        asgi = self.build(run)
        run.exports["asgi"] = asgi
        if not run.serve:
            return []
        settings = run.section(HttpSettings)
        return [
            HttpServer(
                asgi,
                host=settings.host,
                port=settings.port,
                settings=settings,
                grace=run.shutdown_grace,
            )
        ]


def _returns(spec: HandlerSpec[Any]) -> Any:
    """The handler's return annotation (``inspect.Parameter.empty`` when it has none)."""
    return resolve_hints(spec.func, spec.name, spec.localns).get("return", inspect.Parameter.empty)


def asgi_app(
    routes: list[BaseRoute], settings: HttpSettings, added: Sequence[Middleware] = ()
) -> Starlette:
    """A Starlette app serving ``routes`` as cordio serves HTTP: problem+json errors, the
    request limits of ``settings``, CORS and the access log when set, and the
    middleware ``added`` by the app (see :meth:`HttpTransport.add_middleware`)."""
    middleware = [
        Middleware(
            LimitsMiddleware,
            max_body=settings.max_body,
            max_header_bytes=settings.max_header_bytes,
            max_headers=settings.max_headers,
        )
    ]
    middleware.extend(added)
    cors = settings.cors
    if cors.enabled:  # outside the limits: error answers carry CORS headers too
        middleware.insert(
            0,
            Middleware(
                CORSMiddleware,
                allow_origins=cors.allow_origins,
                allow_origin_regex=cors.allow_origin_regex or None,
                allow_methods=cors.allow_methods,
                allow_headers=cors.allow_headers,
                expose_headers=cors.expose_headers,
                allow_credentials=cors.allow_credentials,
                max_age=cors.max_age,
            ),
        )
    if settings.access_log:
        middleware.insert(0, Middleware(AccessLogMiddleware))
    return Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={HTTPException: _http_error, Exception: _server_error},
    )


Endpoint = Callable[[Request], Awaitable[Response]]


def path_route(path: str, endpoints: Mapping[str, Endpoint]) -> Route:
    """One route for every handler of ``path``, dispatching on the method.

    ``HEAD`` is served by the ``GET`` handler (the server sends no body), ``OPTIONS``
    answers 204 with ``Allow`` unless a handler takes it, and any other method gets 405
    with ``Allow`` listing every method of the path (RFC 9110 §9.3.7, §10.2.1, §15.5.6).
    """
    table = dict(endpoints)
    if "GET" in table:
        table.setdefault("HEAD", table["GET"])
    allow = ", ".join(sorted({*table, "OPTIONS"}))
    if "OPTIONS" not in table:

        async def options(request: Request) -> Response:
            return Response(status_code=204, headers={"Allow": allow})

        table["OPTIONS"] = options

    async def dispatch(request: Request) -> Response:
        endpoint = table.get(request.method)
        if endpoint is None:
            raise HTTPException(405, headers={"Allow": allow})
        request.scope[HANDLER] = endpoint.__name__  # for the access log
        return await endpoint(request)

    route = Route(path, dispatch, name=path)
    route.methods = None  # every method reaches dispatch, which answers 405 itself
    return route


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return problem(
        exc.status_code,
        exc.detail if exc.detail != _phrase(exc.status_code) else None,
        instance=request.url.path,
        headers=dict(exc.headers) if exc.headers else None,
    )


async def _server_error(request: Request, exc: Exception) -> Response:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem(500, instance=request.url.path)


def _via_shortcut() -> bool:
    """Whether :meth:`HttpTransport.route` was called by ``get``/``post``/... ."""
    return sys._getframe(2).f_code.co_name in _SHORTCUTS


_SHORTCUTS = {"get", "post", "put", "patch", "delete"}


def _phrase(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""
