"""The plan: everything about an app that is known before anything starts, built once.

:func:`build_plan` resolves every handler's, handler class's and service's parameters,
walks the resources they reach (only those start), orders them in start-up waves, collects
the settings sections the app reads and runs every transport's static checks. The result
is a frozen :class:`Plan`, consumed by :meth:`cordio.lifecycle.Runtime.start`,
:attr:`cordio.App.config`, the ``cordio`` command and :class:`~cordio.testing.TestApp` —
none of them plans again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from cordio.errors import DependencyError
from cordio.inject import Dep, DepKind, Resolver, start_order
from cordio.observe.logging import LogSettings
from cordio.observe.metrics import MetricsSettings
from cordio.observe.sentry import SentrySettings
from cordio.observe.tracing import TracingSettings
from cordio.policy.named import policies_settings
from cordio.resource import ResourceSpec, Scope, make_spec, resolve_hints
from cordio.settings import Settings, ShutdownSettings
from cordio.transport import providing

if TYPE_CHECKING:
    from cordio.app import App
    from cordio.handler import HandlerSpec
    from cordio.transport import Transport


@dataclass(frozen=True)
class Plan:
    """An app's resolved dependencies and start order.

    Attributes:
        transports: the app's transports, in the order their services start.
        handlers: every handler of every transport.
        handler_deps: handler name → how each parameter is filled.
        factory_deps: ``id(factory)`` → its parameters, for handler classes and service
            factories (built once at start-up).
        resources: name → spec of every registered resource, overrides applied.
        resource_deps: name → the parameters of each planned resource's factory.
        waves: app-scoped resources to start, in waves; each wave depends only on earlier
            ones, so its members start concurrently.
        event_specs: event-scoped resources the handlers reach, with their parameters.
        sections: section name → settings class, for every section the app reads (its
            own, the core's and its transports').
    """

    transports: tuple[Transport, ...]
    handlers: tuple[HandlerSpec[Any], ...]
    handler_deps: Mapping[str, list[Dep]]
    factory_deps: Mapping[int, list[Dep]]
    resources: Mapping[str, ResourceSpec]
    resource_deps: Mapping[str, list[Dep]]
    waves: tuple[tuple[str, ...], ...]
    event_specs: Mapping[str, tuple[ResourceSpec, list[Dep]]]
    sections: Mapping[str, type[Settings]]

    def bindings(self, handler: str) -> list[tuple[str, Any]]:
        """``(parameter, binding)`` of each parameter of ``handler`` carrying event data."""
        return [(d.param, d.binding) for d in self.handler_deps[handler] if d.kind is DepKind.EVENT]

    def uses_resources(self, handler: str) -> bool:
        """Whether ``handler`` takes any resource."""
        return any(d.kind is DepKind.RESOURCE for d in self.handler_deps[handler])


def switch_on_transports(app: App) -> None:
    """Create the transports whose types (:attr:`~cordio.transport.Transport.provides`)
    something in the app asks for, as if the app had touched them (``app.messaging``)."""
    functions: list[Any] = [h.func for h in app.all_handlers()]
    functions += [spec.factory for spec in app.resources.values() if callable(spec.factory)]
    functions += [h.cls for h in app.handler_classes]
    functions += list(app.service_factories)
    for func in functions:
        try:
            hints = resolve_hints(func, "")
        except Exception:  # reported properly by the planner
            continue
        for param, hint in hints.items():
            if param == "return":
                continue
            found = providing(_base(hint))
            if found is not None:
                app.transport(found)


def _base(hint: Any) -> Any:
    from cordio.inject import strip_annotated

    return strip_annotated(hint)[0]


def build_plan(app: App) -> Plan:
    """Plan ``app`` without starting anything.

    Raises:
        DependencyError: a parameter matches nothing or several things, resources form a
            cycle, an app-scoped resource asks for an event-scoped one, or a transport's
            check fails — naming the handler or resource and the parameter.
    """
    switch_on_transports(app)
    transports = tuple(app.transports())
    specs = dict(app.resources)
    for name, replacement in app.overrides.items():
        old = specs[name]
        if isinstance(replacement, ResourceSpec):  # a whole spec: its check too
            specs[name] = replacement
            continue
        specs[name] = make_spec(replacement, name=name, provides=old.provides, scope=old.scope)
    sections: dict[str, type[Settings]] = {c.__section__: c for c in app.settings_classes}
    resolver = Resolver(specs, sections)
    roots: list[str] = list(app.used)
    for transport in transports:
        roots.extend(transport.resources())
    handlers = tuple(h for t in transports for h in t.handlers())
    handler_deps: dict[str, list[Dep]] = {}
    for handler in handlers:
        owner = f"handler {handler.name!r}"
        hints = resolve_hints(handler.func, owner, handler.localns)
        skip = ("self",) if handler.owner is not None else ()
        deps = resolver.plan(owner, handler.func, hints, binder=handler.binder, skip=skip)
        handler_deps[handler.name] = deps
        roots.extend(_resources(deps))
    factory_deps: dict[int, list[Dep]] = {}
    factories: list[tuple[str, Any]] = [
        (f"handler class {h.cls.__qualname__!r}", h.cls) for h in app.handler_classes
    ]
    factories += [(f"service {getattr(f, '__qualname__', f)!r}", f) for f in app.service_factories]
    for owner, factory in factories:
        deps = resolver.plan(owner, factory, resolve_hints(factory, owner), skip=("self",))
        roots.extend(_resources(deps))
        factory_deps[id(factory)] = deps
    # Only resources reachable from handlers and services are planned (and started).
    edges: dict[str, list[str]] = {}
    resource_deps: dict[str, list[Dep]] = {}
    pending = list(dict.fromkeys(roots))
    while pending:
        name = pending.pop()
        if name in resource_deps:
            continue
        spec = specs[name]
        deps = [] if spec.kind == "value" else _plan_resource(resolver, spec, specs)
        resource_deps[name] = deps
        edges[name] = list(_resources(deps))
        pending.extend(edges[name])
    waves_all = start_order(roots, edges)
    event_specs = {
        name: (specs[name], resource_deps[name])
        for wave in waves_all
        for name in wave
        if specs[name].scope is Scope.EVENT
    }
    waves = tuple(tuple(n for n in wave if specs[n].scope is Scope.APP) for wave in waves_all)
    # the policies section even without policies: a policies.<name> the app does not
    # declare is an error in every app, not a warning in some
    core: list[type[Settings]] = [
        LogSettings,
        MetricsSettings,
        TracingSettings,
        SentrySettings,
        ShutdownSettings,
        policies_settings(app.policies),
    ]
    for transport in transports:
        core.extend(transport.sections())
    for section in core:
        sections.setdefault(section.__section__, section)
    plan = Plan(
        transports=transports,
        handlers=handlers,
        handler_deps=MappingProxyType(handler_deps),
        factory_deps=MappingProxyType(factory_deps),
        resources=MappingProxyType(specs),
        resource_deps=MappingProxyType(resource_deps),
        waves=tuple(w for w in waves if w),
        event_specs=MappingProxyType(event_specs),
        sections=MappingProxyType(sections),
    )
    for transport in transports:
        transport.check(plan)
    return plan


def _resources(deps: Iterable[Dep]) -> Iterable[str]:
    return (d.target for d in deps if d.kind is DepKind.RESOURCE)


def _plan_resource(
    resolver: Resolver, spec: ResourceSpec, specs: Mapping[str, ResourceSpec]
) -> list[Dep]:
    owner = f"resource {spec.name!r}"
    deps = resolver.plan(owner, spec.factory, spec.hints, skip=("self",))
    for dep in deps:
        if dep.kind is DepKind.CONTEXT and spec.scope < Scope.EVENT:
            raise DependencyError(
                f"{owner}: parameter {dep.param!r} asks for the event Context; only"
                " event-scoped resources (scope='event') can take it"
            )
        if dep.kind is DepKind.RESOURCE and specs[dep.target].scope > spec.scope:
            raise DependencyError(
                f"{owner}: parameter {dep.param!r} asks for event-scoped resource"
                f" {dep.target!r}; an app-scoped resource cannot hold one"
            )
    return deps
