"""The ZeroMQ transport: ``@app.zmq.service(name)`` handlers and ``@app.zmq.worker(name)``
classes as Majordomo workers, the in-app MDP broker, and the ``ZmqClient`` resource.

A service handler gets the request's payload (the first body frame, MessagePack or JSON, see
:mod:`cordio.zmq.payload`) validated into its payload parameter, like a message consumer;
a parameter annotated :class:`~cordio.zmq.mdp.Job` gets the raw request, one annotated
``bytes`` the first frame as it is. Its return value is the reply, in the request's format.
Every call runs through the error pipeline (:meth:`cordio.handler.Invoker.run`): an
``OnError`` rule's status becomes an MDP error reply with that status, a call a policy
refused a ``503``, any other failure a ``500`` without internals (logged with its trace id).
Bad input — an undecodable body, a payload that does not validate, an unknown method — is a
``400``/``422``/``404`` error reply, never a dead worker.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, cast

from pydantic import TypeAdapter, ValidationError

from cordio.context import Context, context_of, trace_id_from_traceparent, using_context
from cordio.handler import HandlerSpec
from cordio.inject import DepKind, payload_adapter, strip_annotated
from cordio.observe.masking import masked
from cordio.outcome import Outcome
from cordio.resource import caller_locals
from cordio.settings import Settings
from cordio.transport import RunContext, TransportBase
from cordio.zmq import admin
from cordio.zmq.client import ZmqClient
from cordio.zmq.payload import Format, PayloadError, decode, encode
from cordio.zmq.settings import ZmqSettings
from cordio.zmq.trace import split

if TYPE_CHECKING:
    import click
    from starlette.routing import Route

    from cordio.app import App
    from cordio.handler import Invoker
    from cordio.observe.tracing import Telemetry
    from cordio.plan import Plan
    from cordio.zmq.mdp import Job, MDPWorker
    from cordio.zmq.supervisor import WorkerSupervisor

log = logging.getLogger("cordio.zmq")

F = TypeVar("F", bound=Callable[..., Any])
C = TypeVar("C", bound=type)

#: Status codes of cordio's error replies (besides the broker's, :mod:`cordio.zmq.mdp.errors`).
BAD_REQUEST = 400
NOT_FOUND = 404
INVALID = 422
UNAVAILABLE = 503
FAILED = 500


@dataclass(frozen=True)
class ServiceMeta:
    """An MDP service handler (its :attr:`~cordio.handler.HandlerSpec.meta`).

    Attributes:
        service: the MDP service name.
        concurrency: connections to the broker, each one request at a time (default:
            ``zmq.concurrency``).
        method: for a worker class, the method this handler is; empty for a plain handler.
    """

    service: str
    concurrency: int | None = None
    method: str = ""


@dataclass(frozen=True)
class Payload:
    """The binding of the parameter that receives the validated payload."""

    adapter: TypeAdapter[Any]


@dataclass(frozen=True)
class RawJob:
    """The binding of a parameter annotated :class:`~cordio.zmq.mdp.Job`."""


@dataclass(frozen=True)
class RawBody:
    """The binding of a parameter annotated ``bytes``: the first body frame as it is."""


@dataclass(frozen=True)
class Argument:
    """The binding of a worker class method's parameter: one argument of the call."""

    name: str
    adapter: TypeAdapter[Any]
    required: bool


class ServiceBinder:
    """Which parameters of a service handler carry the request (at most one payload)."""

    def bind(self, name: str, annotation: Any, default: Any, *, strong: bool) -> Any:
        from cordio.zmq.mdp.job import Job

        base, _ = strip_annotated(annotation)
        if base is Job:
            return RawJob()
        if base is bytes:
            return RawBody()
        adapter = payload_adapter(annotation, strong=strong)
        return None if adapter is None else Payload(adapter)

    def check(self, owner: str, deps: list[Any]) -> None:
        """Refuse a handler with more than one payload parameter.

        Raises:
            DependencyError: naming the handler and the parameters.
        """
        from cordio.errors import DependencyError

        claims = [d.param for d in deps if isinstance(d.binding, Payload)]
        if len(claims) > 1:
            names = ", ".join(repr(p) for p in claims)
            raise DependencyError(
                f"{owner}: parameters {names} all claim the request payload; only one may"
            )


class ArgumentBinder:
    """Every parameter of a worker class method is an argument of the call (``self``
    aside)."""

    def bind(self, name: str, annotation: Any, default: Any, *, strong: bool) -> Any:
        kind = Any if annotation is inspect.Parameter.empty else annotation
        return Argument(name, TypeAdapter(kind), default is inspect.Parameter.empty)


class ZmqTransport(TransportBase):
    """``app.zmq``: MDP workers for handlers, the broker, the client resource."""

    name: ClassVar[str] = "zmq"
    provides: ClassVar[tuple[type, ...]] = (ZmqClient,)

    def __init__(self, app: App) -> None:
        super().__init__(app)
        self.specs: list[HandlerSpec[ServiceMeta]] = []

    # -- registration ---------------------------------------------------------------------

    def service(self, name: str, *, concurrency: int | None = None) -> Callable[[F], F]:
        """Make the handler an MDP worker for service ``name``::

            @app.zmq.service("pricing")
            async def price(request: PriceRequest, db: PriceTable) -> Price: ...

        Args:
            name: the MDP service name (not under ``mmi.``, which RFC 8 reserves).
            concurrency: requests at once (connections to the broker); default
                ``zmq.concurrency``.

        Raises:
            ValueError: an empty name, one under ``mmi.``, a service registered twice, a
                concurrency below 1, or a handler name that is taken.
        """
        _check_service(name, concurrency)
        localns = caller_locals()

        def register(func: F) -> F:
            self._add(func.__name__, func, ServiceMeta(name, concurrency), localns)
            return func

        return register

    def worker(self, name: str, *, concurrency: int | None = None) -> Callable[[C], C]:
        """Make a class's public methods the operations of MDP service ``name``::

            @app.zmq.worker("calc")
            class Calc:
                def __init__(self, table: RateTable) -> None: ...   # injected at start
                async def add(self, a: int, b: int) -> int:
                    return a + b

        A request is ``{"method": "add", "args": [1, 2], "kwargs": {}}`` (MessagePack or
        JSON); the arguments are validated against the method's signature. An unknown
        method is a ``404`` error reply, bad arguments a ``422``, a method that raises a
        ``500`` (or what an ``OnError`` rule says) — never a dead worker. Methods may be
        plain functions (run in a thread).

        Raises:
            ValueError: as :meth:`service`, or a class without public methods.
        """
        _check_service(name, concurrency)
        localns = caller_locals()

        def register(cls: C) -> C:
            methods = {
                attr: value
                for attr, value in vars(cls).items()
                if not attr.startswith("_")
                and inspect.isfunction(value)
                and attr not in ("setup", "teardown")
            }
            if not methods:
                raise ValueError(f"worker class {cls.__qualname__} has no public methods")
            for attr, func in methods.items():
                self._add(f"{name}.{attr}", func, ServiceMeta(name, concurrency, attr), localns)
            # a class of handlers like any other: injected __init__, setup and teardown
            return cast(C, self.app.handlers(cls))

        return register

    def _add(
        self, handler: str, func: Any, meta: ServiceMeta, localns: dict[str, Any] | None
    ) -> HandlerSpec[ServiceMeta]:
        if any(h.name == handler for h in self.app.all_handlers()):
            raise ValueError(f"handler name {handler!r} is already used")
        if not meta.method and any(s.meta.service == meta.service for s in self.specs):
            raise ValueError(f"MDP service {meta.service!r} is already served in this app")
        binder = ArgumentBinder() if meta.method else ServiceBinder()
        spec = HandlerSpec(
            name=handler,
            func=func,
            transport=self.name,
            meta=meta,
            binder=binder,
            localns=localns,
        )
        self.specs.append(spec)
        return spec

    # -- the transport contract -----------------------------------------------------------

    def attach(self, app: App) -> None:
        app.resource(zmq_client, name="zmq_client")

    def handlers(self) -> list[HandlerSpec[Any]]:
        return list(self.specs)

    def sections(self) -> list[type[Settings]]:
        return [ZmqSettings]

    @classmethod
    def commands(cls) -> click.Group:
        from cordio.zmq.commands import zmq

        return zmq

    def services(self, run: RunContext) -> list[Any]:
        settings = run.section(ZmqSettings)
        services: list[Any] = []
        if settings.broker.enabled:
            from cordio.zmq.broker import BrokerService

            broker = BrokerService(settings)
            run.exports[admin.BROKER] = broker
            services.append(broker)
            if run.metrics is not None:
                admin.report_broker(run.metrics, broker)
        workers: list[MDPWorker] = []
        if settings.workers.auto_start:
            supervisor, control = _supervised(settings)
            run.exports[admin.SUPERVISOR] = supervisor
            services.append(supervisor)
            workers.append(control)
        by_service: dict[str, list[HandlerSpec[ServiceMeta]]] = {}
        for spec in self.specs:
            by_service.setdefault(spec.meta.service, []).append(spec)
        workers.extend(self._worker(run, settings, n, specs) for n, specs in by_service.items())
        run.exports[admin.WORKERS] = workers
        services.extend(workers)
        return services

    def _worker(
        self,
        run: RunContext,
        settings: ZmqSettings,
        service: str,
        specs: list[HandlerSpec[ServiceMeta]],
    ) -> MDPWorker:
        from cordio.zmq.mdp import MDPWorker, Version, WorkerOptions

        if specs[0].meta.method:
            handle = _class_handler(service, {s.meta.method: _Call(s, run) for s in specs})
        else:
            handle = _service_handler(service, _Call(specs[0], run))
        options = WorkerOptions(
            version=Version.V02 if settings.version == "0.2" else Version.V01,
            heartbeat_interval=settings.heartbeat_interval,
            heartbeat_liveness=settings.heartbeat_liveness,
            concurrency=specs[0].meta.concurrency or settings.concurrency,
            stop_grace=run.shutdown_grace,
        )
        return MDPWorker(settings.url, service, handle, options, curve=settings.curve.client())

    def resources(self) -> Iterable[str]:
        return ()

    def info(self, run: RunContext) -> Mapping[str, Any]:
        """The in-app broker's bound endpoints (a port taken from the range shows here)."""
        broker = run.exports.get(admin.BROKER)
        if broker is None:
            return {}
        return {"broker": {"endpoints": list(broker.endpoints)}}

    def documents(self, plan: Plan, run: RunContext | None = None) -> Mapping[str, Any]:
        return {}

    def telemetry(self, spec: HandlerSpec[Any]) -> Telemetry:
        """``pricing`` (``calc/add`` for a worker class method) SERVER spans with
        ``rpc.system`` ``mdp``, ``rpc.service`` and ``rpc.method``: OpenTelemetry RPC
        semantic conventions."""
        from cordio.observe.tracing import Telemetry, code_attributes

        meta = spec.meta
        attributes = {
            "rpc.system": "mdp",
            "rpc.service": meta.service,
            **code_attributes(spec.func),
        }
        name = meta.service
        if meta.method:
            attributes["rpc.method"] = meta.method
            name = f"{meta.service}/{meta.method}"
        return Telemetry(name, "server", attributes, targets=(meta.service,))

    def admin_routes(self, run: RunContext) -> list[Route]:
        """``/admin/zmq`` (broker, workers, processes) and ``/admin/zmq/workers`` (list,
        scale): :mod:`cordio.zmq.admin`."""
        return admin.routes(run)


def _supervised(settings: ZmqSettings) -> tuple[WorkerSupervisor, MDPWorker]:
    """The supervisor of the local worker processes, and the ``cordio.workers`` control
    service through which it is scaled and listed."""
    from cordio.zmq.mdp import MDPError, MDPWorker, WorkerOptions
    from cordio.zmq.supervisor import CONTROL_SERVICE, MAX_PROCESSES, WorkerSupervisor

    cfg = settings.workers
    supervisor = WorkerSupervisor(
        cfg.target,
        cfg.count,
        restart_initial=cfg.restart_initial,
        restart_max=cfg.restart_max,
        stop_timeout=cfg.stop_timeout,
    )

    async def control(job: Job) -> bytes:
        try:
            request, fmt = decode(job.body)
        except PayloadError as exc:
            raise MDPError(CONTROL_SERVICE, str(exc), BAD_REQUEST) from None
        method = request.get("method") if isinstance(request, dict) else None
        args = request.get("args", []) if isinstance(request, dict) else []
        if method == "list":
            return encode(supervisor.list(), fmt)
        if (
            method == "scale"
            and len(args) == 1
            and type(args[0]) is int
            and 0 <= args[0] <= MAX_PROCESSES
        ):
            return encode(await supervisor.scale(args[0]), fmt)
        raise MDPError(
            CONTROL_SERVICE, f"methods: list(), scale(0 <= n <= {MAX_PROCESSES})", BAD_REQUEST
        )

    options = WorkerOptions(
        heartbeat_interval=settings.heartbeat_interval,
        heartbeat_liveness=settings.heartbeat_liveness,
    )
    worker = MDPWorker(
        settings.url, CONTROL_SERVICE, control, options, curve=settings.curve.client()
    )
    return supervisor, worker


class _Call:
    """One handler's compiled call with its bindings, for the request handlers below."""

    def __init__(self, spec: HandlerSpec[ServiceMeta], run: RunContext) -> None:
        self.name = spec.name
        self.invoker: Invoker = run.invoker(spec.name)
        events = [d for d in run.deps(spec.name) if d.kind is DepKind.EVENT]
        self.payload = next(
            ((d.param, d.binding) for d in events if isinstance(d.binding, Payload)), None
        )
        self.job = next((d.param for d in events if isinstance(d.binding, RawJob)), None)
        self.raw = next((d.param for d in events if isinstance(d.binding, RawBody)), None)
        self.arguments = [d.binding for d in events if isinstance(d.binding, Argument)]

    async def run(self, kwargs: dict[str, Any], job: Job, headers: dict[str, str]) -> Outcome:
        trace_id = trace_id_from_traceparent(headers.get("traceparent"))
        ctx = Context(self.name, "zmq", trace_id=trace_id, headers=headers)
        ctx.extra["service"] = job.service
        return await self.invoker.run(kwargs, ctx)


def _service_handler(service: str, call: _Call) -> Callable[[Job], Any]:
    async def handle(job: Job) -> bytes:
        from cordio.zmq.mdp import MDPError

        kwargs: dict[str, Any] = {}
        fmt: Format = "msgpack"
        body, headers = split(job.body)
        if call.job is not None:
            kwargs[call.job] = job
        if call.raw is not None:
            kwargs[call.raw] = body[0] if body else b""
        if call.payload is not None:
            param, binding = call.payload
            try:
                value, fmt = decode(body)
            except PayloadError as exc:
                raise MDPError(service, str(exc), BAD_REQUEST) from None
            try:
                kwargs[param] = binding.adapter.validate_python(value)
            except ValidationError as exc:
                raise MDPError(service, _problems(exc), INVALID) from None
        return _reply(service, call.name, await call.run(kwargs, job, headers), fmt)

    return handle


def _class_handler(service: str, calls: Mapping[str, _Call]) -> Callable[[Job], Any]:
    listed = ", ".join(sorted(calls))

    async def handle(job: Job) -> bytes:
        from cordio.zmq.mdp import MDPError

        body, headers = split(job.body)
        try:
            request, fmt = decode(body)
        except PayloadError as exc:
            raise MDPError(service, str(exc), BAD_REQUEST) from None
        if not isinstance(request, dict) or not isinstance(request.get("method"), str):
            raise MDPError(
                service,
                'a request is {"method": name, "args": [...], "kwargs": {...}}',
                BAD_REQUEST,
            )
        call = calls.get(request["method"])
        if call is None:
            raise MDPError(
                service, f"no method {request['method']!r}; methods: {listed}", NOT_FOUND
            )
        args, named = request.get("args", []), request.get("kwargs", {})
        if not isinstance(args, list) or not isinstance(named, dict):
            raise MDPError(service, "args must be a list and kwargs a map", BAD_REQUEST)
        arguments = _arguments(service, call, args, named)
        return _reply(service, call.name, await call.run(arguments, job, headers), fmt)

    return handle


def _arguments(service: str, call: _Call, args: list[Any], named: dict[str, Any]) -> dict[str, Any]:
    """The method's keyword arguments from a request's ``args`` and ``kwargs``, validated.

    Raises:
        MDPError: 422 naming every argument that is missing, unknown or invalid.
    """
    from cordio.zmq.mdp import MDPError

    params = call.arguments
    problems = []
    if len(args) > len(params):
        problems.append(f"{len(args)} positional arguments for {len(params)} parameters")
    values = dict(zip((p.name for p in params), args, strict=False))
    for key, value in named.items():
        if key in values:
            problems.append(f"{key!r} given twice")
        elif all(p.name != key for p in params):
            problems.append(f"unknown argument {key!r}")
        values[key] = value
    kwargs: dict[str, Any] = {}
    for param in params:
        if param.name not in values:
            if param.required:
                problems.append(f"missing argument {param.name!r}")
            continue
        try:
            kwargs[param.name] = param.adapter.validate_python(values[param.name])
        except ValidationError as exc:
            problems.append(_problems(exc, argument=param.name))
    if problems:
        raise MDPError(service, "; ".join(problems), INVALID)
    return kwargs


def _problems(exc: ValidationError, argument: str = "") -> str:
    """Each validation error as ``where: what``: the path inside the payload (``payload``
    for the payload itself), or the ``argument``'s name and the path inside it."""
    lines = []
    for error in exc.errors(include_url=False):
        path = [argument] if argument else []
        path += [str(p) for p in error["loc"]]
        lines.append(f"{'.'.join(path) or 'payload'}: {error['msg']}")
    return "; ".join(lines)


def _reply(service: str, handler: str, outcome: Outcome, fmt: Format) -> bytes:
    """The reply body for an outcome, or the MDPError that becomes an error reply."""
    from cordio.zmq.mdp import MDPError

    if outcome.ok:
        try:
            return encode(outcome.value, fmt)
        except Exception as exc:
            log.error("handler %s: its result cannot be encoded as %s: %r", handler, fmt, exc)
            raise MDPError(service, "the result cannot be encoded", FAILED) from None
    action = outcome.action
    if action is not None:
        status = action.status or FAILED
        detail = action.detail
        text = str(outcome.error) if detail is True else (detail or action.title or "failed")
        raise MDPError(service, masked(str(text)), status)
    if outcome.unavailable:
        raise MDPError(service, "a dependency is unavailable", UNAVAILABLE)
    if not outcome.recorded:
        failure = outcome.error or outcome.signal
        with using_context(context_of(failure) if failure is not None else None):
            log.error(
                "handler %s failed",
                handler,
                exc_info=outcome.error,
                extra={"error": type(failure).__name__},
            )
    raise MDPError(service, "internal error (see the service's log)", FAILED)


def _check_service(name: str, concurrency: int | None) -> None:
    if not name:
        raise ValueError("an MDP service name must not be empty")
    if name.startswith("mmi."):
        raise ValueError(f"{name!r}: the mmi. namespace belongs to the broker (RFC 8)")
    if concurrency is not None and concurrency < 1:
        raise ValueError("concurrency must be at least 1")


async def zmq_client(cfg: ZmqSettings) -> AsyncIterator[ZmqClient]:
    """The ``zmq_client`` resource: requests to MDP services through ``zmq.url``."""
    client = ZmqClient.from_settings(cfg)
    try:
        yield client
    finally:
        client.close()
