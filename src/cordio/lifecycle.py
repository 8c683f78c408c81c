"""Start-up and shutdown of one running app, in the order DESIGN.md gives.

Start: load settings → build the dependency graph of used resources → start resources in
waves (independent ones concurrently) → start services → ready.

Stop: readiness false (``STOPPING=1``) → wait ``shutdown.delay`` → services stop accepting →
drain in-flight handler calls up to ``shutdown.grace`` seconds → cancel the rest → stop
services → cancel background tasks → tear resources down in reverse start order. Every
failure on the way is logged and makes the shutdown unclean; none stops the sequence.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from pydantic import Field

from cordio.config.loader import Config, ConfigSources, load_config
from cordio.config.sources import Source
from cordio.errors import ConfigError, DependencyError, StartupError
from cordio.handler import HandlerSpec, Invoker
from cordio.inject import Dep, Resolver, start_order
from cordio.instances import ResourceSlot
from cordio.observe.logging import LogSettings, configure_logging
from cordio.policy.named import PoliciesSettings, policies_settings
from cordio.policy.retry import set_shutdown_deadline
from cordio.resource import ResourceSpec, make_spec, resolve_hints
from cordio.sdnotify import Notifier
from cordio.settings import Settings
from cordio.tasks import InFlight, TaskGroup

if TYPE_CHECKING:
    from cordio.app import App

log = logging.getLogger("cordio.lifecycle")

State = Literal["created", "starting", "ready", "stopping", "stopped", "failed"]


class ShutdownSettings(Settings, section="shutdown"):
    """The ``shutdown`` section.

    Attributes:
        grace: seconds in-flight handler calls get to finish before they are cancelled
            (default 30).
        delay: seconds between readiness turning false and the listeners closing, so load
            balancers see the 503 and stop routing first (default 0).
    """

    grace: float = Field(30.0, ge=0)
    delay: float = Field(0.0, ge=0)


def _mentions_messaging(app: App) -> bool:
    """Whether a handler, resource or service asks for a messaging type (``Publisher``...)
    in an app that never touched ``app.messaging``."""
    functions = [h.func for h in app.all_handlers()]
    functions += [spec.factory for spec in app.resources.values() if callable(spec.factory)]
    functions += list(app.service_factories)
    for func in functions:
        try:
            hints = resolve_hints(func, "")
        except Exception:  # reported properly by the planner
            continue
        for hint in hints.values():
            module = getattr(hint, "__module__", "") or ""
            if module.startswith("cordio.messaging"):
                return True
    return False


@runtime_checkable
class Service(Protocol):
    """A long-running component: anything with async ``start()`` and ``stop()``.

    If ``start()`` runs until stopped, give the object a ``started`` attribute holding an
    :class:`asyncio.Event` and set it once it is up; the app then runs ``start()`` as a task.
    An optional async ``stop_accepting()`` is called first at shutdown, before in-flight
    calls are drained.
    """

    async def start(self) -> Any: ...

    async def stop(self) -> Any: ...


class Transport(Protocol):
    """What a transport contributes to the app: handlers and the services that feed them."""

    def handlers(self) -> list[HandlerSpec]: ...

    def services(self, runtime: Runtime) -> list[Any]: ...


class Runtime:
    """One run of an :class:`~cordio.app.App`: its resources, services and state.

    Args:
        app: the app to run.
        serve: open network listeners (``False`` under :mod:`cordio.testing` and ASGI hosts).
        sources: configuration sources overriding the app's.
    """

    def __init__(
        self, app: App, *, serve: bool = True, sources: ConfigSources | list[Source] | None = None
    ):
        self.app = app
        self.serve = serve
        self.state: State = "created"
        self.config = Config()
        self.slots: dict[str, ResourceSlot] = {}
        self.invokers: dict[str, Invoker] = {}
        self.services: list[Any] = []
        self.tasks = TaskGroup()
        self.inflight = InFlight()
        self.notifier = Notifier()
        self.clean = True
        self.failure: BaseException | None = None
        self.on_failure: Callable[[BaseException], None] | None = None
        self._sources = sources
        self._started: list[ResourceSlot] = []
        self._running_services: list[Any] = []
        self._service_tasks: list[asyncio.Task[Any]] = []
        self._factory_deps: dict[int, list[Dep]] = {}
        self._handler_instances: list[tuple[Any, Any]] = []
        self.http_app: Any = None

    @property
    def ready(self) -> bool:
        return self.state == "ready"

    def section(self, cls: type[Settings]) -> Any:
        return self.config.sections[cls.__section__]

    # -- start ------------------------------------------------------------------------

    def _plan(self) -> tuple[list[list[str]], dict[str, tuple[ResourceSpec, list[Dep]]]]:
        app = self.app
        if app._messaging is None and _mentions_messaging(app):
            app.messaging  # noqa: B018 -- registers the broker and publisher resources
        specs = dict(app.resources)
        for name, replacement in app.overrides.items():
            old = specs[name]
            if isinstance(replacement, ResourceSpec):  # a whole spec: its check too
                specs[name] = replacement
                continue
            new = make_spec(replacement, name=name, provides=old.provides, scope=old.scope)
            specs[name] = new
        sections: dict[str, type[Settings]] = {c.__section__: c for c in app.settings_classes}
        resolver = Resolver(specs, sections)
        roots: list[str] = list(app.used)
        handler_deps: dict[str, list[Dep]] = {}
        for handler in app.all_handlers():
            owner = f"handler {handler.name!r}"
            hints = resolve_hints(handler.func, owner, handler.localns)
            skip = ("self",) if "owner" in handler.meta else ()
            deps = resolver.plan(owner, handler.func, hints, binder=handler.binder, skip=skip)
            handler_deps[handler.name] = deps
            roots.extend(d.target for d in deps if d.kind == "resource")
        for handler_class in app.handler_classes:
            factory = handler_class.cls
            owner = f"handler class {factory.__qualname__!r}"
            deps = resolver.plan(owner, factory, resolve_hints(factory, owner), skip=("self",))
            roots.extend(d.target for d in deps if d.kind == "resource")
            self._factory_deps[id(factory)] = deps
        for factory in app.service_factories:
            owner = f"service {getattr(factory, '__qualname__', factory)!r}"
            deps = resolver.plan(owner, factory, resolve_hints(factory, owner), skip=("self",))
            roots.extend(d.target for d in deps if d.kind == "resource")
            self._factory_deps[id(factory)] = deps
        # Only resources reachable from handlers and services are planned (and started).
        edges: dict[str, list[str]] = {}
        deps_of: dict[str, list[Dep]] = {}
        pending = list(dict.fromkeys(roots))
        while pending:
            name = pending.pop()
            if name in deps_of:
                continue
            spec = specs[name]
            deps = [] if spec.kind == "value" else self._plan_resource(resolver, spec, specs)
            deps_of[name] = deps
            edges[name] = [d.target for d in deps if d.kind == "resource"]
            pending.extend(edges[name])
        waves_all = start_order(roots, edges)
        event_specs = {
            name: (specs[name], deps_of[name])
            for wave in waves_all
            for name in wave
            if specs[name].scope == "event"
        }
        waves = [[n for n in wave if specs[n].scope == "app"] for wave in waves_all]
        self._handler_deps = handler_deps
        self._sections = sections
        self._specs = specs
        self._deps_of = deps_of
        return [w for w in waves if w], event_specs

    def _configure_policies(self) -> None:
        """Apply ``policies.<name>`` from configuration to the app's named policies.

        Raises:
            ConfigError: an unknown policy or part, or an invalid value, naming the key.
        """
        section = self.config.sections.get(PoliciesSettings.__section__)
        if not isinstance(section, PoliciesSettings):
            return
        chosen: dict[str, dict[str, Any]] = {}
        for name in type(section).model_fields:
            value = getattr(section, name)
            parts = type(value).model_fields
            chosen[name] = {kind: getattr(value, kind).model_dump() for kind in parts}
        problems = []
        for path, message in section.unknown():
            key = ".".join(("policies", *path))
            problems.append(f"{key}: {message} ({self.config.source_of(key)})")
        if not problems:
            for name, policy in self.app.policies.items():
                for path, message in policy.configure(chosen.get(name, {})):
                    key = ".".join(("policies", name, *path))
                    problems.append(f"{key}: {message} ({self.config.source_of(key)})")
        if problems:
            raise ConfigError(problems)

    def _add_core_sections(self) -> None:
        core_sections: list[type[Settings]] = [LogSettings, ShutdownSettings]
        if self.app.policies:
            core_sections.append(policies_settings(self.app.policies))
        for core in [*core_sections, *self.app.core_settings()]:
            self._sections.setdefault(core.__section__, core)

    def settings_sections(self) -> list[type[Settings]]:
        """Every settings section the app uses (its own and the core's), without starting.

        Raises:
            DependencyError: the app's handlers or resources cannot be resolved.
        """
        self._plan()
        self._add_core_sections()
        return list(self._sections.values())

    def plan_handlers(self) -> Mapping[str, list[Dep]]:
        """Every handler's dependencies (by handler name), planned without starting.

        Raises:
            DependencyError: the app's handlers or resources cannot be resolved.
        """
        self._plan()
        return self._handler_deps

    @staticmethod
    def _plan_resource(
        resolver: Resolver, spec: ResourceSpec, specs: Mapping[str, ResourceSpec]
    ) -> list[Dep]:
        owner = f"resource {spec.name!r}"
        deps = resolver.plan(owner, spec.factory, spec.hints, skip=("self",))
        for dep in deps:
            if dep.kind == "context" and spec.scope == "app":
                raise DependencyError(
                    f"{owner}: parameter {dep.param!r} asks for the event Context; only"
                    " event-scoped resources (scope='event') can take it"
                )
            if (
                dep.kind == "resource"
                and spec.scope == "app"
                and specs[dep.target].scope == "event"
            ):
                raise DependencyError(
                    f"{owner}: parameter {dep.param!r} asks for event-scoped resource"
                    f" {dep.target!r}; an app-scoped resource cannot hold one"
                )
        return deps

    async def start(self) -> None:
        """Start everything; on failure stop what had started and raise.

        Raises:
            ConfigError: settings failed to load or validate (every problem listed).
            DependencyError: a parameter cannot be resolved, or resources form a cycle.
            StartupError: a resource or service failed to start.
        """
        app = self.app
        self.state = "starting"
        try:
            waves, event_specs = self._plan()
            self._add_core_sections()
            sources = self._sources if self._sources is not None else app.config_sources()
            self.config = load_config(self._sections.values(), sources)
            self._configure_policies()
        except BaseException:
            self.state = "failed"
            raise
        configure_logging(app.name, self.config.get(LogSettings))
        set_shutdown_deadline(None)
        app._runtime = self
        self.tasks = TaskGroup()
        try:
            await self._start_resources(waves)
            instances = {}
            for handler_class in app.handler_classes:
                kwargs = self._injected(self._factory_deps[id(handler_class.cls)])
                instances[id(handler_class)] = await handler_class.start(kwargs)
                self._handler_instances.append((handler_class, instances[id(handler_class)]))
            for spec in app.all_handlers():
                func = spec.func
                owner = spec.meta.get("owner")
                if owner is not None:
                    func = owner.bound(instances[id(owner)], spec.meta["attr"])
                invoker = Invoker(
                    spec.name, func, self._handler_deps[spec.name], event_specs, self.inflight
                )
                invoker.prepare(self.slots, self.config)
                self.invokers[spec.name] = invoker
            await self._start_services()
        except BaseException as exc:
            self.state = "failed"
            await self._stop_services()
            await self.tasks.aclose()
            await self._stop_handler_classes()
            await self._teardown()
            app._runtime = None
            if isinstance(exc, StartupError | asyncio.CancelledError):
                raise
            raise StartupError(f"{app.name}: start-up failed: {exc!r}") from exc
        self.state = "ready"
        self.notifier.notify("READY=1")
        if self.notifier.watchdog_interval:
            self.tasks.spawn(self.notifier.watchdog(), name="cordio.sd_watchdog")
        log.info("%s ready", app.name)

    async def _start_resources(self, waves: list[list[str]]) -> None:
        for wave in waves:
            for name in wave:
                slot = ResourceSlot(self._specs[name], self._deps_of[name])
                self.slots[name] = slot
            for name in wave:
                self.slots[name].bind(self.slots, self.config)
        for wave in waves:
            results = await asyncio.gather(
                *(self.slots[n].setup() for n in wave), return_exceptions=True
            )
            failed = None
            for name, result in zip(wave, results, strict=True):
                slot = self.slots[name]
                if slot.live:
                    self._started.append(slot)
                if isinstance(result, BaseException) and failed is None:
                    failed = (name, result)
            if failed is not None:
                name, exc = failed
                log.error("resource %s failed to start: %r", name, exc, exc_info=exc)
                raise StartupError(f"resource {name!r} failed to start: {exc!r}") from exc
        for slot in self.slots.values():
            slot.dynamic = slot.dynamic or any(d.dynamic for d in slot.dep_slots)
            if slot.spec.idle_timeout is not None:
                self.tasks.spawn(slot.watch_idle(), name=f"cordio.idle:{slot.name}")

    def _injected(self, deps: list[Dep]) -> dict[str, Any]:
        """Arguments for a factory run once at start-up (service, handler class)."""
        return {
            d.param: self.config.sections[d.target]
            if d.kind == "settings"
            else self.slots[d.target].value
            for d in deps
        }

    async def _stop_handler_classes(self) -> None:
        while self._handler_instances:
            handler_class, instance = self._handler_instances.pop()
            try:
                await handler_class.stop(instance)
            except Exception:
                self.clean = False
                log.exception("%r failed to tear down", handler_class)

    async def _start_services(self) -> None:
        services: list[Any] = []
        for item in self.app.services:
            deps = self._factory_deps.get(id(item))
            if deps is not None:
                item = item(**self._injected(deps))
            services.append(item)
        for transport in self.app.transports():
            services.extend(transport.services(self))
        self.services = services
        for service in services:
            started = getattr(service, "started", None)
            if isinstance(started, asyncio.Event):
                task = asyncio.get_running_loop().create_task(
                    service.start(), name=f"cordio.service:{type(service).__name__}"
                )
                waiter = asyncio.ensure_future(started.wait())
                await asyncio.wait([task, waiter], return_when=asyncio.FIRST_COMPLETED)
                if task.done():
                    waiter.cancel()
                    task.result()
                    raise StartupError(f"service {service!r} returned from start() early")
                task.add_done_callback(self._service_ended)
                self._service_tasks.append(task)
            else:
                await service.start()
            self._running_services.append(service)

    def _service_ended(self, task: asyncio.Task[Any]) -> None:
        if task.cancelled() or self.state != "ready":
            return
        exc = task.exception() or RuntimeError(f"{task.get_name()} stopped on its own")
        log.error("%s failed; stopping the app", task.get_name(), exc_info=exc)
        self.clean = False
        self.failure = exc
        if self.on_failure is not None:
            self.on_failure(exc)

    # -- stop ---------------------------------------------------------------------------

    async def stop(self) -> bool:
        """Shut down in order; return whether it was clean (nothing cancelled or failed)."""
        if self.state in ("stopping", "stopped", "created", "failed"):
            return self.clean
        self.state = "stopping"
        self.notifier.notify("STOPPING=1")
        shutdown: ShutdownSettings = self.config.get(ShutdownSettings)
        log.info("%s stopping: readiness is now false", self.app.name)
        # no retry in the process outlives the shutdown grace period
        set_shutdown_deadline(time.monotonic() + shutdown.delay + shutdown.grace)
        if shutdown.delay:
            await asyncio.sleep(shutdown.delay)
        for service in reversed(self._running_services):
            stop_accepting = getattr(service, "stop_accepting", None)
            if stop_accepting is not None:
                try:
                    await stop_accepting()
                except Exception:
                    self.clean = False
                    log.exception("service %r failed to stop accepting", service)
        if not await self.inflight.drain(shutdown.grace):
            count = await self.inflight.cancel()
            self.clean = False
            log.warning(
                "%d handler call(s) still running after the %.1f s grace period were cancelled",
                count,
                shutdown.grace,
            )
        await self._stop_services()
        await self.tasks.aclose()
        await self._stop_handler_classes()
        await self._teardown()
        set_shutdown_deadline(None)
        self.state = "stopped"
        self.app._runtime = None
        log.info("%s stopped%s", self.app.name, "" if self.clean else " (not cleanly)")
        return self.clean

    async def _stop_services(self) -> None:
        for service in reversed(self._running_services):
            try:
                await service.stop()
            except Exception:
                self.clean = False
                log.exception("service %r failed to stop", service)
        self._running_services.clear()
        for task in self._service_tasks:
            if not task.done():
                task.cancel()
        if self._service_tasks:
            await asyncio.wait(self._service_tasks, timeout=5)
        self._service_tasks.clear()

    async def _teardown(self) -> None:
        for slot in reversed(self._started):
            try:
                await slot.teardown()
            except Exception:
                self.clean = False
                log.exception("resource %s failed to tear down", slot.name)
        self._started.clear()

    # -- access -------------------------------------------------------------------------

    def handler_deps(self) -> Mapping[str, list[Dep]]:
        return self._handler_deps

    async def health(self) -> tuple[bool, dict[str, Any]]:
        """Return ``(ready, body)`` for ``/health/ready``.

        The body: ``status`` (``ready``, ``down``, ``starting``, ``stopping``...),
        ``in_flight`` (handler calls running now) and ``resources`` (name →
        ``{"status": "up"|"down", "detail": str}``).
        """
        checks = await asyncio.gather(*(slot.check() for slot in self.slots.values()))
        resources = {
            name: {"status": "up" if up else "down", "detail": detail}
            for name, (up, detail) in zip(self.slots, checks, strict=True)
        }
        ready = self.state == "ready" and all(up for up, _ in checks)
        status = "ready" if ready else ("down" if self.state == "ready" else self.state)
        return ready, {"status": status, "in_flight": len(self.inflight), "resources": resources}


def default_sources(app_name: str) -> ConfigSources:
    """The configuration sources of an app unless told otherwise: files < env < ``.env``."""
    return ConfigSources.default(app_name)
