"""The App: registries of resources, services and handlers, and the ways to run them."""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast, overload

from cordio.config.loader import Config, ConfigSources, load_config
from cordio.config.sources import Source
from cordio.errors import ConfigError, DependencyError, ResourceUnavailableError, StartupError
from cordio.handler import HandlerSpec
from cordio.handler_class import HandlerClass
from cordio.lifecycle import Runtime, Transport, default_sources
from cordio.observe.logging import LogSettings, configure_logging
from cordio.policy import Bulkhead, CircuitBreaker, Policy, Retry, Timeout
from cordio.policy.onerror import ErrorAction, OnError
from cordio.resource import Check, Reconnect, ResourceSpec, Scope, caller_locals, make_spec
from cordio.settings import Settings

if TYPE_CHECKING:
    from cordio.http.transport import HttpTransport
    from cordio.messaging.transport import MessagingTransport

log = logging.getLogger("cordio.app")

F = TypeVar("F")
T = TypeVar("T")

#: Exit codes of :meth:`App.serve`.
EXIT_OK = 0
EXIT_STARTUP_FAILED = 1
EXIT_UNCLEAN = 3


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
        self._http: HttpTransport | None = None
        self._messaging: MessagingTransport | None = None
        self._extra_transports: list[Transport] = []
        self._runtime: Runtime | None = None

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
        scope: Scope = "app",
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
        scope: Scope = "app",
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
                spec.meta["owner"] = handler_class
                spec.meta["attr"] = members[id(spec.func)]
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
        raise KeyError(f"{target!r} is not a registered resource of {self!r}")

    @property
    def http(self) -> HttpTransport:
        """The HTTP transport: ``@app.http.get(path)`` and friends, ``mount()``."""
        if self._http is None:
            from cordio.http.transport import HttpTransport

            self._http = HttpTransport(self)
        return self._http

    @property
    def messaging(self) -> MessagingTransport:
        """The messaging transport; first use registers the ``broker`` and ``publisher``
        resources (started only if something uses them)."""
        if self._messaging is None:
            from cordio.messaging.dedup import dedup_store
            from cordio.messaging.transport import (
                MessagingTransport,
                broker_connected,
                publisher,
            )

            self._messaging = MessagingTransport(self)
            self.resource(self._messaging.broker, name="broker", check=broker_connected)
            self.resource(dedup_store, name="dedup")
            self.resource(publisher, name="publisher")
        return self._messaging

    def consume(
        self,
        source: str,
        *,
        max_concurrency: int = 1,
        prefetch: int | None = None,
        name: str | None = None,
        dedup: bool = False,
        threads: int | None = None,
    ) -> Callable[[F], F]:
        """Register a handler for the messages of ``source`` (see
        :meth:`cordio.messaging.transport.MessagingTransport.consume`)::

            @app.consume("orders.created")
            async def fulfil(event: OrderCreated, db: OrderStore) -> None: ...
        """
        register = self.messaging.consume(
            source,
            max_concurrency=max_concurrency,
            prefetch=prefetch,
            name=name,
            dedup=dedup,
            threads=threads,
        )
        return cast(Callable[[F], F], register)

    def on_broker(self, *states: str) -> Callable[[F], F]:
        """Register a hook ``func(state)`` for broker connection changes: ``connected``,
        ``disconnected``, ``reconnected`` (none given: all three). It may be async; its
        errors are logged. Readiness follows the connection on its own; hooks are for what
        the service must do besides (pause a producer, re-sync state)::

            @app.on_broker("disconnected")
            async def stop_polling(state: str) -> None: ...
        """
        return cast(Callable[[F], F], self.messaging.on_state(*states))

    def publishes(self, destination: str, payload: Any) -> None:
        """Declare that the app publishes ``payload`` (a type, e.g. a pydantic model) to
        ``destination``; it appears in the AsyncAPI document (``/asyncapi.json``)."""
        self.messaging.publishes(destination, payload)

    def transports(self) -> list[Transport]:
        """Every transport of the app (HTTP always: it serves the admin endpoints)."""
        extra = [self._messaging] if self._messaging is not None else []
        return [self.http, *extra, *self._extra_transports]

    def all_handlers(self) -> list[HandlerSpec]:
        return [h for t in self.transports() for h in t.handlers()]

    def core_settings(self) -> list[type[Settings]]:
        from cordio.http.settings import AdminSettings, HttpSettings

        sections: list[type[Settings]] = [HttpSettings, AdminSettings]
        if self._messaging is not None:
            from cordio.messaging.settings import BrokerSettings

            sections.append(BrokerSettings)
            if any(spec.meta["dedup"] for spec in self._messaging.consumers):
                from cordio.messaging.dedup import DedupSettings

                sections.append(DedupSettings)
        return sections

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
        return load_config(Runtime(self).settings_sections(), self.config_sources())

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
        from cordio.http.asgi import LifespanApp

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
            return asyncio.run(self._serve(sources))
        return int(uvloop.run(self._serve(sources)))

    def _early_log_settings(self, sources: ConfigSources | None) -> LogSettings:
        """The ``log`` section alone, for reporting a start-up that failed before logging
        was set up (so the report is in the app's console or JSON format); the defaults
        when the ``log`` section itself is invalid."""
        chain = sources if sources is not None else self.config_sources()
        try:
            with contextlib.redirect_stderr(io.StringIO()):  # its parse errors: said already
                return load_config([LogSettings], chain, unknown="ignore").get(LogSettings)
        except ConfigError:
            return LogSettings()

    async def _serve(self, sources: ConfigSources | None) -> int:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()

        def on_signal(signum: int) -> None:
            if stop.is_set():
                log.warning("second %s: forcing exit", signal.Signals(signum).name)
                logging.shutdown()
                os._exit(128 + signum)
            log.info("%s received: shutting down", signal.Signals(signum).name)
            stop.set()

        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, on_signal, signum)
        runtime = Runtime(self, sources=sources)
        runtime.on_failure = lambda exc: stop.set()
        try:
            try:
                await runtime.start()
            except (ConfigError, DependencyError, StartupError) as exc:
                if not logging.getLogger().handlers:
                    configure_logging(self.name, self._early_log_settings(sources))
                log.error("%s", exc)
                return EXIT_STARTUP_FAILED
            await stop.wait()
            clean = await runtime.stop()
        finally:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)
        return EXIT_OK if clean else EXIT_UNCLEAN
