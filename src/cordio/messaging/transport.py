"""The messaging transport: ``@app.consume(source)`` handlers and their consumers."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from pydantic import TypeAdapter

from cordio.errors import DependencyError
from cordio.handler import HandlerSpec
from cordio.inject import Dep, DepKind, payload_adapter, strip_annotated
from cordio.messaging.broker import Broker, broker_class
from cordio.messaging.connection import Listener, State
from cordio.messaging.consumer import Consumer
from cordio.messaging.dedup import DedupSettings, dedup_store
from cordio.messaging.memory import MemoryBroker
from cordio.messaging.message import Message
from cordio.messaging.publisher import Publisher
from cordio.messaging.settings import BrokerSettings
from cordio.resource import ResourceSpec, make_spec
from cordio.settings import Settings
from cordio.transport import Documents, RunContext, TransportBase

if TYPE_CHECKING:
    import click

    from cordio.app import App
    from cordio.observe.tracing import Telemetry
    from cordio.plan import Plan

F = TypeVar("F", bound=Callable[..., Any])
L = TypeVar("L", bound=Listener)
STATES: tuple[State, ...] = ("connected", "disconnected", "reconnected")


def _only(states: frozenset[str], listener: Listener) -> Listener:
    def filtered(state: State) -> Any:
        return listener(state) if state in states else None

    return filtered


@dataclass(frozen=True)
class ConsumerMeta:
    """What a message handler consumes (its :attr:`~cordio.handler.HandlerSpec.meta`);
    the options of :meth:`MessagingTransport.consume`."""

    source: str
    max_concurrency: int = 1
    prefetch: int | None = None
    dedup: bool = False
    threads: int | None = None


@dataclass(frozen=True)
class Payload:
    """The binding of the parameter that receives the decoded, validated payload."""

    adapter: TypeAdapter[Any]


@dataclass(frozen=True)
class RawMessage:
    """The binding of a parameter annotated :class:`~cordio.messaging.Message`."""


def _payloads(deps: Iterable[Dep]) -> list[Dep]:
    return [d for d in deps if d.kind is DepKind.EVENT and isinstance(d.binding, Payload)]


class MessageBinder:
    """Which parameters of a consumer carry the message: the payload and the raw message.

    The payload is a pydantic model parameter (found before resources), or, after resources
    and settings had their turn, any other parameter whose type pydantic can validate; at
    most one. A parameter of any other type is no payload: the resolver reports it as
    matching nothing (a :class:`~cordio.errors.MissingDependencyError` naming the handler,
    the parameter and the registered resources).
    """

    def bind(self, name: str, annotation: Any, default: Any, *, strong: bool) -> Any:
        if strip_annotated(annotation)[0] is Message:
            return RawMessage()
        adapter = payload_adapter(annotation, strong=strong)
        return None if adapter is None else Payload(adapter)

    def check(self, owner: str, deps: list[Any]) -> None:
        """Refuse a handler with more than one payload parameter.

        Raises:
            DependencyError: naming the handler and every parameter claiming the payload.
        """
        claims = [d.param for d in _payloads(deps)]
        if len(claims) > 1:
            names = ", ".join(repr(p) for p in claims)
            raise DependencyError(
                f"{owner}: parameters {names} all claim the message payload; only one may"
                " (the others must be resources, settings sections or Message: register the"
                " resource they are meant to be, or annotate them with its type)"
            )


def make_broker(cfg: BrokerSettings, destinations: set[str] | None = None) -> Broker:
    """The (not yet connected) broker ``broker.url`` names (its scheme in
    :data:`~cordio.messaging.settings.BROKERS`); ``destinations``: the names the app
    publishes to or consumes from (see :attr:`Broker.destinations`)."""
    return (broker_class(cfg.url) or MemoryBroker).from_settings(cfg, destinations)


async def broker_connected(connection: Broker) -> bool:
    """Readiness check of the broker resource: is the connection up now?"""
    return bool(getattr(connection, "is_connected", True))


class LagProbe:
    """A service asking the broker every ``interval`` seconds how many messages wait for
    each consumer (:meth:`Consumer.backlog`); :meth:`read` gives the last answers for
    ``cordio_consumer_lag``. A broker that cannot say leaves the consumer out."""

    def __init__(self, consumers: list[Consumer], interval: float) -> None:
        self.consumers = consumers
        self.interval = interval
        self.lag: dict[Consumer, int] = {}
        self._task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"<LagProbe every {self.interval:g} s>"

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="cordio.lag")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def probe(self) -> None:
        """Ask once for every consumer."""
        found = await asyncio.gather(*(c.backlog() for c in self.consumers))
        for consumer, backlog in zip(self.consumers, found, strict=True):
            if backlog is None:
                self.lag.pop(consumer, None)
            else:
                self.lag[consumer] = backlog

    async def _run(self) -> None:
        while True:
            await self.probe()
            await asyncio.sleep(self.interval)

    def read(self) -> list[tuple[Sequence[str], float]]:
        return [(("messaging", c.name, c.source), n) for c, n in self.lag.items()]


def _report(run: RunContext, consumers: list[Consumer]) -> None:
    """Export the consumers' settlements and the publisher's outcomes, read when scraped:
    ``cordio_messages_total{transport, handler, outcome}`` (``ack``, ``requeue``,
    ``dead_letter``, ``duplicate``) and ``cordio_publishes_total{destination, outcome}``
    (``ok``, ``error``: a publish that raised, whatever the confirm mode)."""
    metrics = run.metrics
    assert metrics is not None

    def settled() -> list[tuple[Sequence[str], float]]:
        rows: list[tuple[Sequence[str], float]] = []
        for c in consumers:
            for outcome, value in (
                ("ack", c.acked),
                ("requeue", c.requeued),
                ("dead_letter", c.dead_lettered),
                ("duplicate", c.duplicates),
            ):
                rows.append((("messaging", c.name, outcome), value))
        return rows

    metrics.report(
        "cordio_messages",
        "Messages settled by consumers, by outcome",
        ("transport", "handler", "outcome"),
        settled,
    )

    def published() -> list[tuple[Sequence[str], float]]:
        try:
            found = run.resource("publisher")
        except Exception:  # not started in this run: nothing published
            return []
        if not isinstance(found, Publisher):
            return []
        rows: list[tuple[Sequence[str], float]] = [
            ((d, "ok"), float(n)) for d, n in found.published.items()
        ]
        rows += [((d, "error"), float(n)) for d, n in found.failed.items()]
        return rows

    metrics.report(
        "cordio_publishes",
        "Messages published, by destination and outcome",
        ("destination", "outcome"),
        published,
    )


def publisher(broker: Broker, cfg: BrokerSettings) -> Publisher:
    """Publishes to the app's broker."""
    return Publisher(broker, cfg.max_message_bytes)


class MessagingTransport(TransportBase):
    """``app.messaging`` (``app.consume``): register message handlers; run a consumer for
    each; the ``broker``, ``publisher`` and ``dedup`` resources."""

    name: ClassVar[str] = "messaging"
    provides: ClassVar[tuple[type, ...]] = (Broker, Publisher)
    documents_published: ClassVar[tuple[str, ...]] = ("asyncapi",)

    def __init__(self, app: App) -> None:
        super().__init__(app)
        self.consumers: list[HandlerSpec[ConsumerMeta]] = []
        self.publications: list[tuple[str, Any]] = []
        self.listeners: list[tuple[frozenset[str], Listener]] = []

    async def broker(self, cfg: BrokerSettings) -> AsyncIterator[Broker]:
        """The broker resource: the broker ``broker.url`` names, connected while the app
        runs, with the app's connection-state hooks; it may create what the app consumes
        from or declared with :meth:`publishes`."""
        connection = make_broker(cfg, self.destinations())
        for states, listener in self.listeners:
            connection.state.add_listener(_only(states, listener))
        await connection.connect()
        try:
            yield connection
        finally:
            await connection.close()

    def on_state(self, *states: str) -> Callable[[L], L]:
        """Register a hook called with the state name when the broker connection changes.

        Args:
            states: any of ``connected`` (first connect), ``disconnected``,
                ``reconnected``; none means all three.

        Raises:
            ValueError: an unknown state name.
        """
        unknown = set(states) - set(STATES)
        if unknown:
            raise ValueError(f"unknown connection states {sorted(unknown)}; use {STATES}")

        def register(func: L) -> L:
            self.listeners.append((frozenset(states or STATES), func))
            return func

        return register

    def publishes(self, destination: str, payload: Any) -> None:
        """Declare that the app publishes ``payload`` (a type) to ``destination``: it is in
        the AsyncAPI document, and publishing to it creates the queue (NATS: a stream) if
        the broker has none yet, as for a source the app consumes."""
        self.publications.append((destination, payload))

    def destinations(self) -> set[str]:
        """The names publishing may create a queue (stream) for: the consumers' sources
        and the destinations declared with :meth:`publishes`."""
        return {spec.meta.source for spec in self.consumers} | {
            destination for destination, _ in self.publications
        }

    def asyncapi(self, plan: Plan | None = None, url: str = "memory://") -> dict[str, Any]:
        """The AsyncAPI 3.0 document of the consumers and declared publications.

        Args:
            plan: the app's plan (default: planned now, without starting).
            url: the broker URL the document names (default ``memory://``).

        Raises:
            DependencyError: the app's handlers or resources cannot be resolved.
        """
        from cordio.messaging.asyncapi import build_asyncapi
        from cordio.plan import build_plan
        from cordio.resource import resolve_hints

        plan = plan or build_plan(self.app)
        receives = []
        for spec in self.consumers:
            hints = resolve_hints(spec.func, spec.name, spec.localns)
            payload = next(
                (hints.get(d.param) for d in _payloads(plan.handler_deps[spec.name])), None
            )
            receives.append((spec.name, spec.meta.source, payload))
        return build_asyncapi(
            self.app.name, self.app.version or "0", url, receives, self.publications
        )

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
        """Register a handler for the messages of ``source``.

        Args:
            source: queue (or subject) name.
            max_concurrency: handler calls running at once; 1 (default) handles messages
                one at a time, in order.
            prefetch: unsettled deliveries at most (default ``broker.prefetch``).
            name: handler name (default: the function's name).
            dedup: skip messages whose id this handler already handled, using the ``dedup``
                store (``dedup.url``; see :mod:`cordio.messaging.dedup`). Default false.
            threads: hand each message to a pool of this many threads of the consumer's own:
                the handler must be a plain (sync) function; ``threads`` calls run at once,
                each message is acked after its call returns, and ``prefetch`` bounds what
                waits (back-pressure). Default: no pool of its own.

        Raises:
            ValueError: ``max_concurrency`` or ``threads`` below 1, ``threads`` with an
                async handler or with a different ``max_concurrency``, or the name is
                taken.
        """
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        if threads is not None and threads < 1:
            raise ValueError("threads must be at least 1")
        if threads is not None and max_concurrency not in (1, threads):
            raise ValueError(
                f"threads={threads} runs {threads} calls at once; leave max_concurrency out"
            )
        from cordio.resource import caller_locals

        localns = caller_locals(3)

        def register(func: F) -> F:
            handler_name = name or func.__name__
            if threads is not None and inspect.iscoroutinefunction(func):
                raise ValueError(
                    f"handler {handler_name!r}: threads= runs a plain (sync) function in"
                    " threads; this one is async"
                )
            if any(h.name == handler_name for h in self.app.all_handlers()):
                raise ValueError(f"handler name {handler_name!r} is already used")
            self.consumers.append(
                HandlerSpec(
                    name=handler_name,
                    func=func,
                    transport="messaging",
                    binder=MessageBinder(),
                    meta=ConsumerMeta(
                        source=source,
                        max_concurrency=max_concurrency,
                        prefetch=prefetch,
                        dedup=dedup,
                        threads=threads,
                    ),
                    localns=localns,
                )
            )
            return func

        return register

    # -- the transport contract ---------------------------------------------------------

    def attach(self, app: App) -> None:
        app.resource(self.broker, name="broker", check=broker_connected)
        app.resource(dedup_store, name="dedup")
        app.resource(publisher, name="publisher")

    def handlers(self) -> list[HandlerSpec[Any]]:
        return list(self.consumers)

    def resources(self) -> Iterable[str]:
        if not self.consumers:
            return ()
        needs = ["broker", "publisher"]  # consumers' apps publish too (replies)
        if any(spec.meta.dedup for spec in self.consumers):
            needs.append("dedup")
        return needs

    def sections(self) -> list[type[Settings]]:
        if any(spec.meta.dedup for spec in self.consumers):
            return [BrokerSettings, DedupSettings]
        return [BrokerSettings]

    def documents(self, plan: Plan, run: RunContext | None = None) -> Documents:
        url = run.section(BrokerSettings).url if run is not None else "memory://"
        return {"asyncapi": lambda: self.asyncapi(plan, url)}

    @classmethod
    def commands(cls) -> click.Group:
        from cordio.messaging.commands import messaging

        return messaging

    def test_double(self) -> Mapping[str, Any]:
        """The ``broker`` resource on ``memory://`` (topology settings still apply)."""
        return {"broker": self._memory_broker(self.app.resources["broker"])}

    def _memory_broker(self, original: ResourceSpec) -> ResourceSpec:
        """The app's own ``broker`` factory with the URL replaced, keeping the original's
        readiness check (readiness follows the connection)."""

        async def memory_broker(cfg: BrokerSettings) -> AsyncIterator[Any]:
            async for broker in self.broker(cfg.model_copy(update={"url": "memory://"})):
                yield broker

        memory_broker.__annotations__ = {"cfg": BrokerSettings, "return": AsyncIterator[Any]}
        return make_spec(
            memory_broker,
            name=original.name,
            provides=original.provides,
            scope=original.scope,
            check=original.check,
            check_timeout=original.check_timeout,
        )

    def telemetry(self, spec: HandlerSpec[Any]) -> Telemetry:
        """``orders.created process`` CONSUMER spans: OpenTelemetry messaging semantic
        conventions."""
        from cordio.observe.tracing import Telemetry, code_attributes

        source = spec.meta.source
        attributes = {
            "messaging.destination.name": source,
            "messaging.operation.type": "process",
            **code_attributes(spec.func),
        }
        return Telemetry(f"{source} process", "consumer", attributes, targets=(source,))

    def services(self, run: RunContext) -> list[Any]:
        consumers = self._consumers(run) if self.consumers else []
        if run.metrics is None:
            return list(consumers)
        _report(run, consumers)
        interval = run.section(BrokerSettings).lag_interval
        if not (consumers and interval):
            return list(consumers)
        probe = LagProbe(consumers, interval)
        run.metrics.report(
            "cordio_consumer_lag",
            "Messages waiting for a consumer, as the broker last reported (broker.lag_interval)",
            ("transport", "handler", "source"),
            probe.read,
            kind="gauge",
        )
        return [*consumers, probe]

    def _consumers(self, run: RunContext) -> list[Consumer]:
        settings = run.section(BrokerSettings)
        connection = run.resource("broker")
        consumers = []
        for spec in self.consumers:
            meta = spec.meta
            events = [d for d in run.deps(spec.name) if d.kind is DepKind.EVENT]
            payloads = [(d.param, d.binding.adapter) for d in _payloads(events)]
            raw = next((d.param for d in events if isinstance(d.binding, RawMessage)), None)
            consumers.append(
                Consumer(
                    spec.name,
                    meta.source,
                    run.invoker(spec.name),
                    payloads[0] if payloads else None,
                    raw,
                    connection,
                    settings,
                    max_concurrency=meta.max_concurrency,
                    prefetch=meta.prefetch,
                    dedup=run.resource("dedup") if meta.dedup else None,
                    dedup_settings=run.section(DedupSettings) if meta.dedup else None,
                    threads=meta.threads,
                )
            )
        return consumers
