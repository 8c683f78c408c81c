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
import contextlib
import io
import logging
import os
import signal
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar, runtime_checkable

from cordio.clock import Clock, SystemClock
from cordio.config.files import FileSource
from cordio.config.loader import Config, ConfigSources, load_config
from cordio.config.sources import Source
from cordio.context import ShutdownDeadline, enter_run
from cordio.errors import ConfigError, DependencyError, StartupError
from cordio.handler import Invoker
from cordio.inject import Dep
from cordio.instances import PER_CALL, Provider, ResourceSlot
from cordio.observe.logging import LogSettings, configure_logging
from cordio.observe.masking import KEYS_ONLY, Masker, masker_for, use_masker
from cordio.observe.run import Observation
from cordio.plan import Plan, build_plan
from cordio.policy.named import PoliciesSettings
from cordio.sdnotify import Notifier
from cordio.settings import ShutdownSettings
from cordio.tasks import InFlight, TaskGroup
from cordio.transport import Documents

if TYPE_CHECKING:
    from cordio.app import App
    from cordio.observe.exporters import Exporters
    from cordio.observe.metrics import Metrics

__all__ = ["EXIT_OK", "EXIT_STARTUP_FAILED", "EXIT_UNCLEAN", "Runtime", "Service", "serve"]

log = logging.getLogger("cordio.lifecycle")


S = TypeVar("S")

State = Literal["created", "starting", "ready", "stopping", "stopped", "failed"]

#: Exit codes of :func:`serve`.
EXIT_OK = 0
EXIT_STARTUP_FAILED = 1
EXIT_UNCLEAN = 3


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


class Runtime:
    """One run of an :class:`~cordio.app.App`: its resources, services and state.

    It is also the :class:`~cordio.transport.RunContext` the transports' services get
    (read-only use only).

    Args:
        app: the app to run.
        serve: open network listeners (``False`` under :mod:`cordio.testing` and ASGI hosts).
        sources: configuration sources overriding the app's.
        plan: the app's plan, if already built (default: built at :meth:`start`).
        clock: the clock timers read (default: the system's).
    """

    def __init__(
        self,
        app: App,
        *,
        serve: bool = True,
        sources: ConfigSources | list[Source] | None = None,
        plan: Plan | None = None,
        clock: Clock | None = None,
    ):
        self.app = app
        self.app_name = app.name
        self.version = app.version
        self.serve = serve
        self.clock: Clock = clock or SystemClock()
        self.state: str = "created"
        self.config = Config()
        self.slots: dict[str, ResourceSlot] = {}
        self.invokers: dict[str, Invoker] = {}
        self.services: list[Any] = []
        self.exports: dict[str, Any] = {}
        self.tasks = TaskGroup()
        self.inflight = InFlight()
        self.observation = Observation()
        self.masker = Masker()
        self.notifier = Notifier()
        self.deadline = ShutdownDeadline()
        self.clean = True
        self.failure: BaseException | None = None
        self.on_failure: Callable[[BaseException], None] | None = None
        self.error_mappings: tuple[Mapping[type[BaseException], Any], ...] = tuple(
            app.error_mappings
        )
        self._plan = plan
        self._sources = sources
        self._started: list[ResourceSlot] = []
        self._running_services: list[Any] = []
        self._service_tasks: list[asyncio.Task[Any]] = []
        self._handler_instances: list[tuple[Any, Any]] = []

    @property
    def plan(self) -> Plan:
        """The plan this run started from.

        Raises:
            RuntimeError: :meth:`start` has not planned yet.
        """
        if self._plan is None:
            raise RuntimeError("the app has not been planned yet; call start()")
        return self._plan

    @property
    def ready(self) -> bool:
        return self.state == "ready"

    @property
    def http_app(self) -> Any:
        """The ASGI app serving HTTP and the admin surface in this run, or ``None``."""
        return self.exports.get("asgi")

    @property
    def shutdown_grace(self) -> float:
        return float(self.section(ShutdownSettings).grace)

    def section(self, cls: type[S]) -> S:
        found: S = self.config.sections[cls.__section__]  # type: ignore[attr-defined,assignment]
        return found

    def resource(self, target: str | type[Any]) -> Any:
        if isinstance(target, str):
            return self.slots[target].value
        for slot in self.slots.values():
            provided = slot.spec.provides
            if isinstance(provided, type) and issubclass(provided, target):
                return slot.value
        raise KeyError(f"no started resource provides {target.__qualname__}")

    def invoker(self, handler: str) -> Invoker:
        return self.invokers[handler]

    @property
    def policies(self) -> Mapping[str, Any]:
        return self.app.policies

    @property
    def metrics(self) -> Metrics | None:
        """The app's metrics when measured this run (:class:`Observation`)."""
        return self.observation.metrics

    @property
    def exporters(self) -> Exporters:
        """This run's metric push exporters (:class:`Observation`)."""
        return self.observation.exporters

    def deps(self, handler: str) -> list[Dep]:
        return self.plan.handler_deps[handler]

    def documents(self) -> Documents:
        found: dict[str, Any] = {}
        for transport in self.plan.transports:
            found.update(transport.documents(self.plan, self))
        return found

    def transport_info(self) -> dict[str, Mapping[str, Any]]:
        found = {}
        for transport in self.plan.transports:
            info = transport.info(self)
            if info:
                found[transport.name] = info
        return found

    def handler_deps(self) -> Mapping[str, list[Dep]]:
        return self.plan.handler_deps

    # -- start ------------------------------------------------------------------------

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

    async def start(self) -> None:
        """Start everything; on failure stop what had started and raise.

        Raises:
            ConfigError: settings failed to load or validate (every problem listed).
            DependencyError: a parameter cannot be resolved, resources form a cycle, or a
                transport's check failed.
            StartupError: a resource or service failed to start.
        """
        app = self.app
        self.state = "starting"
        try:
            if self._plan is None:
                self._plan = build_plan(app)
            plan = self._plan
            sources = self._sources if self._sources is not None else app.config_sources()
            self.config = load_config(plan.sections.values(), sources)
            self._configure_policies()
        except BaseException:
            self.state = "failed"
            raise
        self.masker = masker_for(self.config)  # the secrets of this run's settings
        use_masker(self.masker)
        configure_logging(app.name, self.config.get(LogSettings), masker=self.masker)
        enter_run(self.deadline)
        app._runtime = self
        self.tasks = TaskGroup()
        try:
            observation = self.observation
            observation.start(app, self.config, self.masker, self.tasks, self._pool_sizes)
            transports = {t.name: t for t in plan.transports}
            await self._start_resources(plan)
            instances = {}
            for handler_class in app.handler_classes:
                kwargs = self._injected(plan.factory_deps[id(handler_class.cls)])
                instances[id(handler_class)] = await handler_class.start(kwargs)
                self._handler_instances.append((handler_class, instances[id(handler_class)]))
            for spec in plan.handlers:
                func = spec.func
                if spec.owner is not None:
                    func = spec.owner.bound(instances[id(spec.owner)], spec.attr)
                invoker = Invoker(
                    spec.name,
                    func,
                    plan.handler_deps[spec.name],
                    plan.event_specs,
                    self.inflight,
                    on_error=self.error_mappings,
                    answers=spec.answers,
                )
                invoker.prepare(self.slots, self.config)
                observation.instrument(invoker, spec, transports)
                self.invokers[spec.name] = invoker
            await self._start_services()
        except BaseException as exc:
            self.state = "failed"
            await self._stop_services()
            await self.observation.stop_exporters()
            await self.tasks.aclose()
            await self._stop_handler_classes()
            await self._teardown()
            await self.observation.stop(app.name)
            app._runtime = None
            if isinstance(exc, StartupError | asyncio.CancelledError):
                raise
            raise StartupError(f"{app.name}: start-up failed: {exc!r}") from exc
        self.state = "ready"
        self.notifier.notify("READY=1")
        if self.notifier.watchdog_interval:
            self.tasks.spawn(self.notifier.watchdog(), name="cordio.sd_watchdog")
        log.info("%s ready", app.name)

    def _pool_sizes(self) -> list[tuple[Sequence[str], float]]:
        """What each started resource whose value has ``pool_sizes()`` reports: a mapping
        of state (``size``, ``idle``, ``max``...) to a number."""
        rows: list[tuple[Sequence[str], float]] = []
        for name, slot in list(self.slots.items()):
            if not slot.live:
                continue
            sizes = getattr(slot.value, "pool_sizes", None)
            if not callable(sizes):
                continue
            try:
                found = sizes()
                rows.extend(((name, str(state)), float(n)) for state, n in found.items())
            except Exception:
                log.debug("resource %s: pool_sizes() failed", name, exc_info=True)
        return rows

    async def _start_resources(self, plan: Plan) -> None:
        waves = plan.waves
        for wave in waves:
            for name in wave:
                slot = ResourceSlot(plan.resources[name], plan.resource_deps[name])
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
        provider = Provider(self.config.sections, self.slots, {})
        kwargs = {}
        for dep in deps:
            value = provider.static(dep)
            kwargs[dep.param] = self.slots[dep.target].value if value is PER_CALL else value
        return kwargs

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
            deps = self.plan.factory_deps.get(id(item))
            if deps is not None:
                item = item(**self._injected(deps))
            services.append(item)
        for transport in self.plan.transports:
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
        # no retry of this app outlives the shutdown grace period; the last fifth of it (at
        # most 2 s) is left to the calls to answer once their retries gave up
        reserve = min(2.0, shutdown.grace / 5)
        self.deadline.at = time.monotonic() + shutdown.delay + shutdown.grace - reserve
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
        await self.observation.stop_exporters()
        await self.tasks.aclose()
        await self._stop_handler_classes()
        await self._teardown()
        await self.observation.stop(self.app.name)
        use_masker(None)
        self.deadline.at = None
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


def _early_log_settings(app: App, sources: ConfigSources | None) -> LogSettings:
    """The ``log`` section alone, so what start-up says before the whole configuration is
    loaded (its warnings, its errors) is in the app's console or JSON format: from every
    source; from the environment and command line alone when a file cannot be parsed;
    the defaults when the ``log`` section itself is invalid."""
    chain = sources if sources is not None else app.config_sources()
    without_files = ConfigSources(
        [s for s in chain.sources if not isinstance(s, FileSource)], chain.policy
    )
    quiet = logging.getLogger("cordio.config")
    for attempt in (chain, without_files):
        try:  # said again, in full, by the real load
            with contextlib.redirect_stderr(io.StringIO()), _silenced(quiet):
                return load_config([LogSettings], attempt, unknown="ignore").get(LogSettings)
        except ConfigError:
            continue
    return LogSettings()


@contextlib.contextmanager
def _silenced(logger: logging.Logger) -> Iterator[None]:
    disabled, logger.disabled = logger.disabled, True
    try:
        yield
    finally:
        logger.disabled = disabled


async def serve(app: App, sources: ConfigSources | None = None) -> int:
    """Run ``app`` until SIGTERM or SIGINT, then stop it in order; a second signal forces
    an immediate exit (``os._exit(128 + signal number)``).

    Returns:
        :data:`EXIT_OK` after a clean shutdown, :data:`EXIT_STARTUP_FAILED` when start-up
        failed (the error is logged), :data:`EXIT_UNCLEAN` when shutdown was not clean
        (calls cancelled after the grace period, a failing teardown or service).
    """
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
    # what start-up says before the whole configuration is loaded is in the app's format
    configure_logging(app.name, _early_log_settings(app, sources))
    runtime = Runtime(app, sources=sources)
    runtime.on_failure = lambda exc: stop.set()
    try:
        try:
            await runtime.start()
        except (ConfigError, DependencyError, StartupError) as exc:
            keys_only = {KEYS_ONLY: isinstance(exc, ConfigError)}  # names keys, no values
            logging.getLogger("cordio.app").error("%s", exc, extra=keys_only)
            return EXIT_STARTUP_FAILED
        await stop.wait()
        clean = await runtime.stop()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
    return EXIT_OK if clean else EXIT_UNCLEAN
