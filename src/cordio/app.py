"""The App: registries of resources, services and handlers, and the ways to run them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast, overload

from cordio.config.loader import Config, ConfigSources, load_config
from cordio.config.sources import Source
from cordio.errors import ResourceUnavailableError
from cordio.handler import HandlerSpec
from cordio.handler_class import HandlerClass
from cordio.lifecycle import EXIT_OK, EXIT_STARTUP_FAILED, EXIT_UNCLEAN, Runtime, default_sources
from cordio.lifecycle import serve as serve_app
from cordio.policy import Bulkhead, CircuitBreaker, Policy, Retry, Timeout
from cordio.policy.onerror import ErrorAction, OnError
from cordio.resource import Check, Reconnect, ResourceSpec, ScopeName, caller_locals, make_spec
from cordio.settings import Settings
from cordio.transport import Transport

if TYPE_CHECKING:
    from cordio.http.transport import HttpTransport
    from cordio.messaging.transport import MessagingTransport
    from cordio.observe.metrics import Metrics
    from cordio.timers.transport import TimerTransport
    from cordio.zmq.transport import ZmqTransport

__all__ = ["EXIT_OK", "EXIT_STARTUP_FAILED", "EXIT_UNCLEAN", "App"]

log = logging.getLogger("cordio.app")

F = TypeVar("F")
T = TypeVar("T")
TR = TypeVar("TR", bound=Transport)


class App:
    """A service: settings, resources, services and handlers, run as one.

    Example::

        app = App("orders", version="1.2.0")

        @app.resource
        async def db(cfg: DbSettings) -> AsyncIterator[Database]:
            async with Database(cfg.url) as database:
                yield database

        @app.http.get("/orders/{order_id}")
        async def get_order(order_id: int, db: Database) -> Order:
            return await db.get(order_id)

        if __name__ == "__main__":
            app.run()

    Args:
        name: the app's name: the environment variable prefix (``ORDERS__DB__URL``), in
            logs and in ``/info``.
        version: the app's version for ``/info`` (default: none).
        settings: settings section classes to load even if no parameter asks for them.
        config: configuration sources, lowest priority first, as a
            :class:`~cordio.config.ConfigSources` (with its policy) or a list (default:
            files matching ``config/**/main.{json,yaml,toml}`` and
            ``etc/**/*.{toml,yaml,json}``, then environment variables, then ``.env``).
    """

    def __init__(
        self,
        name: str,
        *,
        version: str | None = None,
        settings: Iterable[type[Settings]] = (),
        config: ConfigSources | list[Source] | None = None,
    ) -> None:
        if not name or not name.replace("-", "_").replace(".", "_").isidentifier():
            raise ValueError(f"app name must be an identifier-like word, got {name!r}")
        self.name = name
        self.version = version
        self.settings_classes: list[type[Settings]] = list(settings)
        self.resources: dict[str, ResourceSpec] = {}
        self.overrides: dict[str, Any] = {}
        self.services: list[Any] = []
        self.service_factories: list[Any] = []
        self.used: list[str] = []
        self.policies: dict[str, Policy] = {}
        self.error_mappings: list[dict[type[BaseException], ErrorAction]] = []
        self.handler_classes: list[HandlerClass] = []
        self._config = config
        self._transports: dict[str, Transport] = {}
        self._runtime: Runtime | None = None
        self._metrics: Metrics | None = None

    def __repr__(self) -> str:
        return f"App({self.name!r})"

    # -- registration -------------------------------------------------------------------

    @overload
    def resource(self, factory: F, /) -> F: ...

    @overload
    def resource(
        self,
        factory: None = None,
        /,
        *,
        name: str | None = None,
        scope: ScopeName = "app",
        idle_timeout: float | None = None,
        reconnect: Reconnect | None = None,
        check: Check | None = None,
        check_timeout: float = 2.0,
    ) -> Callable[[F], F]: ...

    @overload
    def resource(self, factory: F, /, *, name: str, check: Check | None = None) -> F: ...

    def resource(
        self,
        factory: Any = None,
        /,
        *,
        name: str | None = None,
        scope: ScopeName = "app",
        idle_timeout: float | None = None,
        reconnect: Reconnect | None = None,
        check: Check | None = None,
        check_timeout: float = 2.0,
    ) -> Any:
        """Register a resource; usable bare (``@app.resource``) or with options.

        Args:
            factory: async generator / generator function, async or plain function, class,
                or a plain value (then ``name`` is required).
            name: the resource's name (default: the function's or class's name).
            scope: ``"app"`` (default) or ``"event"`` (one instance per handler call).
            idle_timeout: seconds unused after which it is torn down, then set up again on
                next use (default: never).
            reconnect: retry schedule for a failing setup (default: one attempt).
            check: async health check given the instance, for ``/health/ready``.
            check_timeout: seconds the check may take (default 2).

        Returns:
            ``factory`` unchanged, so it can be passed to :meth:`override`.

        Raises:
            ValueError: the name is taken or the options contradict each other.
        """

        localns = caller_locals()

        def register(target: Any) -> Any:
            spec = make_spec(
                target,
                name=name,
                scope=scope,
                idle_timeout=idle_timeout,
                reconnect=reconnect,
                check=check,
                check_timeout=check_timeout,
                localns=localns,
            )
            if spec.name in self.resources:
                raise ValueError(f"resource {spec.name!r} is already registered")
            self.resources[spec.name] = spec
            return target

        if factory is None:
            return register
        return register(factory)

    def add(self, service: Any) -> Any:
        """Add a service: an object with async ``start()`` / ``stop()``, or a class or
        function whose parameters are injected at start-up and which returns one.

        Returns:
            ``service`` unchanged.
        """
        if (callable(service) and not hasattr(service, "start")) or isinstance(service, type):
            self.service_factories.append(service)
        elif not (hasattr(service, "start") and hasattr(service, "stop")):
            raise TypeError(f"{service!r} has no async start() and stop()")
        self.services.append(service)
        return service

    def policy(
        self,
        name: str | Policy,
        *,
        retry: Retry | None = None,
        breaker: CircuitBreaker | None = None,
        timeout: Timeout | None = None,
        bulkhead: Bulkhead | None = None,
    ) -> Policy:
        """Declare a named policy, tunable under ``policies.<name>`` in configuration.

        Use the result as a decorator on handlers, resource methods or any async function;
        see :mod:`cordio.policy.named` for the order the parts apply in.

        ``name`` may also be a :class:`~cordio.policy.Policy` built elsewhere (e.g. next to the
        class whose methods it decorates); it is registered as it is.

        Raises:
            ValueError: the name is taken.
        """
        if isinstance(name, Policy):
            policy = name
        else:
            policy = Policy(name, retry=retry, breaker=breaker, timeout=timeout, bulkhead=bulkhead)
        if policy.name in self.policies:
            raise ValueError(f"policy {policy.name!r} is already declared")
        self.policies[policy.name] = policy
        return policy

    def handlers(
        self,
        cls: type | None = None,
        *,
        on_error: Mapping[type[BaseException], ErrorAction] | None = None,
    ) -> Any:
        """Register a class whose methods are handlers (see :mod:`cordio.handler_class`).

        Decorate the methods with ``@app.http.get(...)``, ``@app.consume(...)`` and so on,
        and the class with ``@app.handlers`` (or ``@app.handlers(on_error={...})``). Its
        ``__init__`` parameters are injected once at start-up; ``setup`` / ``teardown``
        run at start and stop; ``on_error`` is the layer policy of all its methods.

        Raises:
            ValueError: the class has no handler methods.
        """

        def register(target: type) -> type:
            members = {id(value): name for name, value in vars(target).items()}
            found = [spec for spec in self.all_handlers() if id(spec.func) in members]
            if not found:
                raise ValueError(
                    f"class {target.__qualname__} has no handler methods; decorate them with"
                    " @app.http.get(...), @app.consume(...) and the like"
                )
            handler_class = HandlerClass(target, on_error)
            for spec in found:
                spec.owner = handler_class
                spec.attr = members[id(spec.func)]
            self.handler_classes.append(handler_class)
            return target

        return register if cls is None else register(cls)

    def on_error(self, mapping: Mapping[type[BaseException], ErrorAction]) -> None:
        """Decide, for every handler of the app, what an exception type leads to (see
        :mod:`cordio.policy.onerror`); a handler's own ``OnError`` comes first, and
        mappings given earlier come before later ones.

        Raises:
            TypeError: a key is not an exception class or a value not an ``ErrorAction``.
        """
        self.error_mappings.append(OnError(mapping).mapping)

    def override(self, target: Any, replacement: Any) -> None:
        """Replace a resource (by its factory or name) with ``replacement`` — for tests.

        ``replacement`` is a value or a factory of any kind :meth:`resource` accepts; it
        keeps the original's name, type and scope (not its readiness check). A
        :class:`~cordio.resource.ResourceSpec` is used as it is, check included. Takes
        effect at the next start.

        Raises:
            KeyError: ``target`` is not a registered resource.
        """
        self.overrides[self._name_of(target)] = replacement

    def _name_of(self, target: Any) -> str:
        if isinstance(target, str):
            if target in self.resources:
                return target
        else:
            for name, spec in self.resources.items():
                if spec.factory is target or spec.provides is target:
                    return name
            from cordio.transport import providing

            found = providing(target)  # a transport's type (ZmqClient): switch it on
            if found is not None and found.name not in self._transports:
                self.transport(found)
                return self._name_of(target)
        raise KeyError(f"{target!r} is not a registered resource of {self!r}")

    # -- transports ---------------------------------------------------------------------

    def transport(self, cls: type[TR]) -> TR:
        """The app's transport of class ``cls``, created (and attached) on first use.

        This is how typed accessors such as :attr:`http` are written, and how a transport
        from another package joins the app: ``app.transport(MyTransport)``.

        Raises:
            ValueError: another transport class already has ``cls.name``.
        """
        found = self._transports.get(cls.name)
        if found is None:
            found = cls(self)
            self._transports[cls.name] = found
            found.attach(self)
        elif not isinstance(found, cls):
            raise ValueError(f"transport name {cls.name!r} is taken by {found!r}")
        return found

    def transports(self) -> list[Transport]:
        """Every transport of the app, in the order their services start (by
        :attr:`~cordio.transport.Transport.order`, then as they joined); the built-in ones
        are always there: the queued log destinations (:mod:`cordio.observe.sinks`) first,
        the admin surface (:mod:`cordio.observe.admin`) last."""
        from cordio.observe.admin import AdminSurface
        from cordio.observe.sinks.service import LogDestinations

        self.transport(LogDestinations)
        self.transport(AdminSurface)
        return sorted(self._transports.values(), key=lambda t: t.order)

    def all_handlers(self) -> list[HandlerSpec[Any]]:
        """Every handler of every transport."""
        return [h for t in self._transports.values() for h in t.handlers()]

    @property
    def http(self) -> HttpTransport:
        """The HTTP transport: ``@app.http.get(path)`` and friends, ``mount()``."""
        from cordio.http.transport import HttpTransport

        return self.transport(HttpTransport)

    @property
    def messaging(self) -> MessagingTransport:
        """The messaging transport: ``@app.messaging.consume(source)``, the ``broker``,
        ``publisher`` and ``dedup`` resources (started only if something uses them)."""
        from cordio.messaging.transport import MessagingTransport

        return self.transport(MessagingTransport)

    @property
    def metrics(self) -> Metrics:
        """The app's metrics (:mod:`cordio.observe.metrics`): its own prometheus-client
        registry, which ``/metrics`` exports, and where user metrics are declared::

            placed = app.metrics.counter("orders_placed", "Orders placed", ["channel"])
            placed.labels("web").inc()

        Raises:
            MissingExtraError: prometheus-client is not installed (``cordio[metrics]``).
        """
        if self._metrics is None:
            from cordio.errors import require_extra

            require_extra("prometheus_client", feature="metrics", extra="metrics")
            from cordio.observe.metrics import Metrics

            self._metrics = Metrics(self.name)
        return self._metrics

    @property
    def timers(self) -> TimerTransport:
        """The timers transport: ``@app.timers.every(...)``, ``@app.timers.cron(...)``."""
        from cordio.timers.transport import TimerTransport

        return self.transport(TimerTransport)

    @property
    def zmq(self) -> ZmqTransport:
        """The ZeroMQ transport: ``@app.zmq.service(name)``, ``@app.zmq.worker(name)``."""
        from cordio.zmq.transport import ZmqTransport

        return self.transport(ZmqTransport)

    def every(self, seconds: float, **options: Any) -> Callable[[F], F]:
        """Shortcut of :meth:`cordio.timers.transport.TimerTransport.every`."""
        return cast(Callable[[F], F], self.timers.every(seconds, **options))

    def cron(self, expression: str, **options: Any) -> Callable[[F], F]:
        """Shortcut of :meth:`cordio.timers.transport.TimerTransport.cron`."""
        return cast(Callable[[F], F], self.timers.cron(expression, **options))

    def consume(self, source: str, **options: Any) -> Callable[[F], F]:
        """Shortcut of :meth:`cordio.messaging.transport.MessagingTransport.consume`::

        @app.consume("orders.created")
        async def fulfil(event: OrderCreated, db: OrderStore) -> None: ...
        """
        return cast(Callable[[F], F], self.messaging.consume(source, **options))

    def on_broker(self, *states: str) -> Callable[[F], F]:
        """Shortcut of :meth:`cordio.messaging.transport.MessagingTransport.on_state`."""
        return cast(Callable[[F], F], self.messaging.on_state(*states))

    def publishes(self, destination: str, payload: Any) -> None:
        """Shortcut of :meth:`cordio.messaging.transport.MessagingTransport.publishes`."""
        self.messaging.publishes(destination, payload)

    def config_sources(self) -> ConfigSources:
        """The app's configuration sources (default: files < env < ``.env``)."""
        if self._config is None:
            return default_sources(self.name)
        if isinstance(self._config, ConfigSources):
            return self._config
        return ConfigSources(self._config)

    # -- while running ------------------------------------------------------------------

    @property
    def runtime(self) -> Runtime:
        """The running app's state.

        Raises:
            ResourceUnavailableError: the app is not running.
        """
        if self._runtime is None:
            raise ResourceUnavailableError(f"{self!r} is not running")
        return self._runtime

    @property
    def config(self) -> Config:
        """The effective configuration: values and their sources (``config.explain(key)``).

        While the app runs, the configuration it started with; otherwise loaded afresh from
        the app's sources.

        Raises:
            ConfigError: the configuration is invalid (every problem listed).
            DependencyError: the app's dependencies cannot be resolved (needed to know
                which sections it uses).
        """
        if self._runtime is not None and self._runtime.state != "starting":
            return self._runtime.config
        from cordio.plan import build_plan

        return load_config(build_plan(self).sections.values(), self.config_sources())

    @property
    def ready(self) -> bool:
        """Whether the app has started and is not shutting down."""
        return self._runtime is not None and self._runtime.ready

    def get(self, target: Any) -> Any:
        """Return the running instance of an app-scoped resource (by factory, type or name).

        Raises:
            KeyError: no such resource.
            ResourceUnavailableError: the app is not running or the resource is not set up
                (it is unused, idle, or event-scoped).
        """
        name = self._name_of(target)
        slot = self.runtime.slots.get(name)
        if slot is None or not slot.live:
            raise ResourceUnavailableError(f"resource {name!r} is not set up")
        return slot.value

    def dependency(self, target: Any) -> Callable[[], Coroutine[Any, Any, Any]]:
        """Return an async callable giving a resource, for other frameworks' injection.

        Marks the resource as used, so it starts with the app. With FastAPI::

            @api.get("/x")
            async def x(db: Annotated[Store, Depends(app.dependency(Store))]): ...

        Raises:
            KeyError: ``target`` is not a registered resource.
        """
        name = self._name_of(target)
        if name not in self.used:
            self.used.append(name)

        async def provide() -> Any:
            slot = self.runtime.slots[name]
            if slot.dynamic:
                value = await slot.acquire()
                slot.release()
                return value
            return slot.value

        provide.__name__ = f"cordio_{name}"
        return provide

    def spawn(self, coro: Coroutine[Any, Any, T], *, name: str) -> asyncio.Task[T]:
        """Run ``coro`` as a named background task of the running app.

        The task is cancelled at shutdown; an exception that ends it is logged with its
        traceback and counted, never lost silently.

        Raises:
            ResourceUnavailableError: the app is not running.
        """
        return self.runtime.tasks.spawn(coro, name=name)

    # -- run modes ----------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def running(self, *, serve: bool = True) -> AsyncIterator[Runtime]:
        """Start the app, yield its :class:`Runtime`, stop it on exit (in the full order).

        Args:
            serve: open network listeners (default ``True``).

        Raises:
            ConfigError, DependencyError, StartupError: start-up failed.
        """
        runtime = Runtime(self, serve=serve)
        await runtime.start()
        try:
            yield runtime
        finally:
            await runtime.stop()

    @property
    def asgi(self) -> Any:
        """An ASGI app whose lifespan starts and stops this app: ``uvicorn pkg.mod:app.asgi``."""
        from cordio.asgi import LifespanApp

        return LifespanApp(self)

    def run(self) -> None:
        """Run in the foreground until SIGTERM or SIGINT, then exit with :meth:`serve`'s code."""
        sys.exit(self.serve())

    def serve(self, *, sources: ConfigSources | None = None) -> int:
        """Run until SIGTERM or SIGINT; a second signal forces an immediate exit.

        Uses uvloop when it is installed.

        Returns:
            0 after a clean shutdown, 1 when start-up failed, 3 when shutdown was not
            clean (calls cancelled after the grace period, a failing teardown or service);
            a forced exit ends the process with 128 + the signal number.
        """
        try:
            import uvloop
        except ImportError:
            return asyncio.run(serve_app(self, sources))
        return int(uvloop.run(serve_app(self, sources)))
