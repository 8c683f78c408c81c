"""The transport contract: the only way the core and a transport know each other.

A transport (HTTP, messaging, timers, ...) is a class with the members of
:class:`Transport`. The app creates one instance per app the first time it is asked for
(``app.transport(HttpTransport)``, or through a typed accessor such as ``app.http``), or
when a handler, resource or service asks for one of the types it :attr:`~Transport.provides`
(a ``Publisher`` parameter switches messaging on). From then on the core only calls the
contract:

1. :meth:`~Transport.attach` once, at creation: register the transport's resources.
2. At planning (:func:`cordio.plan.build_plan`, before anything starts):
   :meth:`~Transport.handlers`, :meth:`~Transport.resources`, :meth:`~Transport.sections`,
   then :meth:`~Transport.check` on the finished plan.
3. At start, after resources: :meth:`~Transport.services`, given a read-only
   :class:`RunContext`.
4. Any time: :meth:`~Transport.info` (for ``/info``), :meth:`~Transport.admin_routes`
   (served under ``/admin/<name>``), :meth:`~Transport.documents`
   (``openapi``, ``asyncapi``; served by the admin surface at ``/<name>.json`` and
   written by ``cordio docs <name>``), the class's :meth:`~Transport.commands` (added to
   the ``cordio`` command), and :meth:`~Transport.test_double` (what
   :class:`~cordio.testing.TestApp` swaps in to run without servers).

A package makes its transport known to the core and the ``cordio`` command with an entry
point in the group ``cordio.transports``::

    [project.entry-points."cordio.transports"]
    timers = "cordio.timers.transport:TimerTransport"

The core never imports a transport by name; ``docs/transports.md`` walks through the
timers package as the example.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar, runtime_checkable

if TYPE_CHECKING:
    import click
    from starlette.routing import Route

    from cordio.app import App
    from cordio.clock import Clock
    from cordio.config.loader import Config
    from cordio.handler import HandlerSpec, Invoker
    from cordio.inject import Dep
    from cordio.observe.masking import Masker
    from cordio.observe.metrics import Metrics
    from cordio.observe.tracing import Telemetry
    from cordio.plan import Plan
    from cordio.settings import Settings

ENTRY_POINTS = "cordio.transports"

S = TypeVar("S")

#: A document a transport publishes: name → a function building it (a JSON-able dict).
Documents = Mapping[str, Callable[[], dict[str, Any]]]


@runtime_checkable
class Transport(Protocol):
    """What a transport contributes to an app; every member is called by the core only.

    Attributes:
        name: the transport's unique name (``"http"``, ``"messaging"``, ``"timers"``); its
            handlers' :attr:`~cordio.handler.HandlerSpec.transport`.
        provides: types whose injection anywhere in the app switches the transport on
            (messaging: ``Publisher``, ``Broker``); empty when only registration does.
        documents_published: names of the documents :meth:`documents` gives, known without
            an app (for the ``cordio docs`` command); default none.
        order: where the transport's services start among the others: lower first (and
            stopped last); equal ones in the order they joined the app. Default 0; the
            queued log destinations are -100 (they outlive every other service), the admin
            surface 100.
    """

    name: ClassVar[str]
    provides: ClassVar[tuple[type, ...]]
    order: ClassVar[int]

    def __init__(self, app: App) -> None: ...

    def attach(self, app: App) -> None:
        """Register the transport's resources (``app.resource(...)``); called once, right
        after the transport is created. Nothing may start here."""

    def handlers(self) -> list[HandlerSpec[Any]]:
        """The handlers registered so far (planned, then given invokers at start)."""

    def resources(self) -> Iterable[str]:
        """Names of resources to start even when no parameter asks for them (messaging:
        ``broker`` while there are consumers)."""

    def sections(self) -> list[type[Settings]]:
        """The settings sections the transport reads (loaded, shown and checked by the
        ``config`` commands like the app's own)."""

    def check(self, plan: Plan) -> None:
        """Static checks on the finished plan, before any resource starts.

        Raises:
            DependencyError: naming the handler and what is wrong (an unbound path
                placeholder, an invalid schedule...).
        """

    def services(self, run: RunContext) -> list[Any]:
        """The services feeding the handlers (servers, consumers, schedulers), built after
        the resources started; started in order, stopped in reverse. May be empty."""

    def documents(self, plan: Plan, run: RunContext | None = None) -> Documents:
        """Documents describing the handlers (``{"openapi": build}``); may be empty.
        ``run`` is the running app when there is one (its settings may be read), ``None``
        when the document is written without starting (``cordio docs``)."""

    @classmethod
    def commands(cls) -> click.Group | None:
        """A click group added to the ``cordio`` command under :attr:`name` (``cordio
        messaging dead-letters ...``), or ``None``."""

    def test_double(self) -> Mapping[str, Any]:
        """Resource overrides that let :class:`~cordio.testing.TestApp` run the transport
        in-process without servers (messaging: the ``broker`` on ``memory://``)."""

    def info(self, run: RunContext) -> Mapping[str, Any]:
        """Facts about the running transport for ``/info`` (the endpoints a broker bound);
        JSON-able, cheap to compute; empty for nothing to say."""

    def telemetry(self, spec: HandlerSpec[Any]) -> Telemetry:
        """How the spans of a handler's calls are named and described (OpenTelemetry
        semantic conventions for the transport); default: the handler's name, INTERNAL,
        its code location."""

    def admin_routes(self, run: RunContext) -> list[Route]:
        """Starlette routes for operators, built at start: the admin surface serves each
        at ``/admin/<name><route.path>`` (``/`` is ``/admin/<name>`` itself) behind the
        admin token (``admin.token``: asked
        for by every route when set; without it, reads are open and every method but
        GET and HEAD is refused with 403). Default none."""


class TransportBase:
    """Defaults for the optional members of :class:`Transport`; subclass it and override
    what the transport has. ``app`` is the app the transport belongs to."""

    name: ClassVar[str] = ""
    provides: ClassVar[tuple[type, ...]] = ()
    order: ClassVar[int] = 0
    documents_published: ClassVar[tuple[str, ...]] = ()

    def __init__(self, app: App) -> None:
        self.app = app

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {self.app!r}>"

    def attach(self, app: App) -> None:
        return None

    def handlers(self) -> list[HandlerSpec[Any]]:
        return []

    def resources(self) -> Iterable[str]:
        return ()

    def sections(self) -> list[type[Settings]]:
        return []

    def check(self, plan: Plan) -> None:
        return None

    def services(self, run: RunContext) -> list[Any]:
        return []

    def documents(self, plan: Plan, run: RunContext | None = None) -> Documents:
        return {}

    @classmethod
    def commands(cls) -> click.Group | None:
        return None

    def test_double(self) -> Mapping[str, Any]:
        return {}

    def info(self, run: RunContext) -> Mapping[str, Any]:
        return {}

    def admin_routes(self, run: RunContext) -> list[Route]:
        return []

    def telemetry(self, spec: HandlerSpec[Any]) -> Telemetry:
        from cordio.observe.tracing import Telemetry, code_attributes

        return Telemetry(spec.name, "internal", code_attributes(spec.func))


class RunContext(Protocol):
    """What a transport's services see of the running app: read-only.

    Attributes:
        app_name: the app's name.
        version: the app's version, or ``None``.
        serve: whether to open network listeners (``False`` under
            :class:`~cordio.testing.TestApp` and ASGI hosts).
        plan: the app's :class:`~cordio.plan.Plan`.
        clock: the app's clock (a fake one under :class:`~cordio.testing.TestApp`);
            timers read it.
        shutdown_grace: seconds in-flight calls get to finish at shutdown.
        error_mappings: the app-wide ``OnError`` mappings, in order.
        exports: values a transport shares with others and with the test kit for this
            run (``"asgi"``: the ASGI app serving HTTP and the admin surface).
        state: ``starting``, ``ready``, ``stopping``, ``stopped`` or ``failed``.
    """

    @property
    def app_name(self) -> str: ...

    @property
    def version(self) -> str | None: ...

    @property
    def state(self) -> str: ...

    @property
    def serve(self) -> bool: ...

    @property
    def plan(self) -> Plan: ...

    @property
    def clock(self) -> Clock: ...

    @property
    def shutdown_grace(self) -> float: ...

    @property
    def error_mappings(self) -> tuple[Mapping[type[BaseException], Any], ...]: ...

    @property
    def exports(self) -> dict[str, Any]: ...

    @property
    def policies(self) -> Mapping[str, Any]:
        """The app's named policies (``app.policy(...)``), by name."""

    @property
    def metrics(self) -> Metrics | None:
        """The app's metrics (:mod:`cordio.observe.metrics`) when measured this run."""

    @property
    def config(self) -> Config:
        """The loaded configuration: every section, and where each value came from."""

    @property
    def masker(self) -> Masker:
        """What this run masks in what it shows (:mod:`cordio.observe.masking`)."""

    def section(self, cls: type[S]) -> S:
        """The loaded settings section ``cls``.

        Raises:
            KeyError: the app does not load that section.
        """

    def resource(self, target: str | type[S]) -> Any:
        """The running instance of an app-scoped resource, by name or by type.

        Raises:
            KeyError: no started resource has that name or type.
        """

    def invoker(self, handler: str) -> Invoker:
        """The compiled call of the handler named ``handler``."""

    def deps(self, handler: str) -> list[Dep]:
        """How each parameter of the handler named ``handler`` is filled."""

    def documents(self) -> Documents:
        """Every transport's documents, by name."""

    def transport_info(self) -> dict[str, Mapping[str, Any]]:
        """What each transport says of itself for ``/info`` (those with something to say)."""

    async def health(self) -> tuple[bool, dict[str, Any]]:
        """``(ready, body)`` as ``/health/ready`` answers it."""


@functools.cache
def installed() -> Mapping[str, EntryPoint]:
    """The transports installed packages declare (entry points ``cordio.transports``), by
    name; read once per process (installed metadata does not change while it runs)."""
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINTS)}


def load(name: str) -> type[Transport]:
    """The transport class installed under ``name``.

    Raises:
        KeyError: no installed transport has that name.
    """
    cls: type[Transport] = installed()[name].load()
    return cls


def providing(annotation: Any) -> type[Transport] | None:
    """The installed transport that provides ``annotation`` (a class), if any.

    Only a transport whose package holds the class's module is imported to find out, so
    asking about ordinary types costs no import.
    """
    module = getattr(annotation, "__module__", None)
    if not isinstance(annotation, type) or not isinstance(module, str):
        return None
    for entry in installed().values():
        package = entry.module.rsplit(".", 1)[0]
        if module == package or module.startswith(package + "."):
            cls = entry.load()
            if any(_is_subclass(annotation, provided) for provided in cls.provides):
                return cls  # type: ignore[no-any-return]
    return None


def _is_subclass(cls: type, of: type) -> bool:
    try:
        return cls is of or issubclass(cls, of)
    except TypeError:  # a Protocol that is not runtime-checkable: only itself matches
        return False
