"""Tracing: W3C Trace Context carried on every transport, and OpenTelemetry spans.

**Propagation** (always on, no extra needed). A handler's trace id comes from the event's
``traceparent`` (W3C Trace Context, https://www.w3.org/TR/trace-context/, section 3.2): the
HTTP request header, the message header, the ZeroMQ request's trace frame. What a handler
sends on — a message published through the ``Publisher``, a ZeroMQ request through the
``ZmqClient`` — carries ``traceparent`` (with the handler's trace id and a new parent id),
and the incoming ``tracestate`` and ``baggage`` unchanged, so one request is one trace id in
every log line from the HTTP handler to the consumer and on to the ZeroMQ worker.

**Spans** (``cordio[otel]``, ``tracing.exporter`` set). Every handler call is a span (kind
and name from its transport: ``GET /orders/{order_id}`` SERVER, ``orders.created process``
CONSUMER, ``pricing`` SERVER for a ZeroMQ service, the timer's name INTERNAL), child of the
incoming context, with the transport's attributes (OpenTelemetry semantic conventions: HTTP
server, messaging, RPC) and the handler's code location (``code.function``,
``code.filepath``, ``code.lineno``); an exception marks it ERROR (``Ack``/``Nack``/``Reject``
do not). Publishing is a PRODUCER span and a ZeroMQ request a CLIENT span, whose context
the message carries. Spans are exported in the background by the SDK's batch processor
(bounded queue: a slow or failing exporter drops spans, never slows a handler), to OTLP
over HTTP or gRPC, or Zipkin; sampled parent-based with ``tracing.sample_ratio`` for new
traces. ``tracing.suppress`` (glob patterns on handler names or HTTP routes) leaves
handlers out; ``tracing.header_attributes`` adds attributes from event headers (a tenant
id). :func:`stage` groups the spans and log lines of one business stage.

The tracer provider is the running app's own, never OpenTelemetry's global one: two apps in
one process export each with its own service name.
"""

from __future__ import annotations

import contextlib
import fnmatch
import logging
import os
import time
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from cordio.context import current_context
from cordio.observe.span_masking import masked_exporter
from cordio.settings import Settings

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span, Tracer

    from cordio.context import Context
    from cordio.observe.masking import Masker

log = logging.getLogger("cordio.tracing")

#: W3C Trace Context and Baggage headers cordio carries from an event to what it sends.
PROPAGATED = ("traceparent", "tracestate", "baggage")
#: The longest ``tracestate`` and ``baggage`` carried on, in characters (W3C Trace Context,
#: section 3.3.1.1: 512 for what a vendor must propagate; W3C Baggage, section 3.3.1.3:
#: 8192 bytes): a caller's oversized header never makes a publish fail.
CARRIED = {"tracestate": 512, "baggage": 8192}

Kind = Literal["server", "client", "producer", "consumer", "internal"]


class TracingSettings(Settings, section="tracing"):
    """The ``tracing`` section.

    Attributes:
        exporter: where spans go: ``none`` (default: no spans, trace context still
            carried), ``otlp-http``, ``otlp-grpc``, ``zipkin``, ``console`` (stdout, for
            trying it out). All but ``none`` need ``cordio[otel]``.
        endpoint: the collector's URL (default: the exporter's own default or the
            ``OTEL_EXPORTER_OTLP_ENDPOINT`` variable; Zipkin ``http://localhost:9411/api/v2/spans``).
        sample_ratio: share of new traces sampled, 0 to 1 (default 1); a trace that
            arrives sampled or not keeps its decision (parent-based).
        suppress: glob patterns of handler names or HTTP routes without spans
            (``["health_*", "/internal/*"]``).
        header_attributes: event header → span attribute (``{"x-tenant-id":
            "tenant.id"}``).
        attributes: attributes of the service's resource (``deployment.environment``).
    """

    exporter: Literal["none", "otlp-http", "otlp-grpc", "zipkin", "console"] = "none"
    endpoint: str = ""
    sample_ratio: float = Field(1.0, ge=0.0, le=1.0)
    suppress: list[str] = Field(default_factory=list)
    header_attributes: dict[str, str] = Field(default_factory=dict)
    attributes: dict[str, str] = Field(default_factory=dict)


@dataclass(frozen=True)
class Telemetry:
    """How a handler's span is named and described (its transport says:
    :meth:`cordio.transport.Transport.telemetry`).

    Attributes:
        name: the span's name (low cardinality: a route template, never a raw path).
        kind: the span's kind.
        attributes: attributes set on every span of the handler.
        targets: what :attr:`TracingSettings.suppress` patterns are matched against
            besides the handler's name (an HTTP route).
    """

    name: str
    kind: Kind = "internal"
    attributes: Mapping[str, Any] = field(default_factory=dict)
    targets: tuple[str, ...] = ()


# -- the running app's tracer ------------------------------------------------------------

_tracer: ContextVar[Tracer | None] = ContextVar("cordio_tracer", default=None)


def current_tracer() -> Tracer | None:
    """The running app's tracer, or ``None`` when it makes no spans."""
    return _tracer.get()


def use_tracer(tracer: Tracer | None) -> None:
    """Make ``tracer`` the current task's (and the tasks it starts from now on)."""
    _tracer.set(tracer)


def provider(
    app_name: str, version: str | None, settings: TracingSettings, masker: Masker | None = None
) -> TracerProvider:
    """A tracer provider of the app's own with the exporter and sampler of ``settings``;
    with ``masker`` (the run's), spans are exported with their secrets masked
    (:mod:`cordio.observe.span_masking`).

    Raises:
        MissingExtraError: opentelemetry-sdk (or the exporter) is not installed.
    """
    from cordio.errors import require_extra

    require_extra("opentelemetry.sdk", feature="Exporting spans", extra="otel")
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    resource = Resource.create(
        {"service.name": app_name, **({"service.version": version} if version else {})}
        | dict(settings.attributes)
    )
    sampler = ParentBased(TraceIdRatioBased(settings.sample_ratio))
    made = TracerProvider(resource=resource, sampler=sampler)
    exporter: Any
    endpoint = settings.endpoint or None
    if settings.exporter == "otlp-http":
        require_extra(
            "opentelemetry.exporter.otlp.proto.http", feature="OTLP over HTTP", extra="otel"
        )
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=endpoint)
    elif settings.exporter == "otlp-grpc":
        require_extra(
            "opentelemetry.exporter.otlp.proto.grpc", feature="OTLP over gRPC", extra="otel"
        )
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcExporter,
        )

        exporter = GrpcExporter(endpoint=endpoint, insecure=_insecure(endpoint))
    elif settings.exporter == "zipkin":
        require_extra("opentelemetry.exporter.zipkin.json", feature="Zipkin", extra="otel")
        from opentelemetry.exporter.zipkin.json import ZipkinExporter

        exporter = ZipkinExporter(endpoint=endpoint)
    else:
        exporter = ConsoleSpanExporter()
    made.add_span_processor(BatchSpanProcessor(masked_exporter(exporter, masker)))
    return made


def _insecure(endpoint: str | None) -> bool | None:
    return True if endpoint and endpoint.startswith("http://") else None


# -- a handler's spans --------------------------------------------------------------------


class HandlerTracing:
    """Starts and ends the spans of one handler's calls."""

    __slots__ = ("_attributes", "_headers", "_kind", "name", "tracer")

    def __init__(self, tracer: Tracer, telemetry: Telemetry, settings: TracingSettings) -> None:
        from opentelemetry.trace import SpanKind

        self.tracer = tracer
        self.name = telemetry.name
        self._kind = getattr(SpanKind, telemetry.kind.upper())
        self._attributes = dict(telemetry.attributes)
        self._headers = tuple(settings.header_attributes.items())

    def start(self, ctx: Context) -> tuple[Span, object]:
        """Start the call's span as a child of the event's trace context and make it
        current; the context's trace id becomes the span's."""
        from opentelemetry import context as otel_context
        from opentelemetry import trace
        from opentelemetry.propagate import extract

        headers = ctx.headers
        parent = extract(_Carrier(headers)) if headers else None
        span = self.tracer.start_span(
            self.name, context=parent, kind=self._kind, attributes=self._attributes
        )
        for header, attribute in self._headers:
            found = _header(headers, header)
            if found is not None:
                span.set_attribute(attribute, found)
        found_context = span.get_span_context()
        if found_context.is_valid:
            ctx._trace_id = format(found_context.trace_id, "032x")
        token = otel_context.attach(trace.set_span_in_context(span, parent))
        return span, token

    def end(self, span: Span, token: object, failure: BaseException | None, ctx: Context) -> None:
        """Detach the span's context and end it; ``failure`` marks it ERROR. When the
        transport answers after the handler (:attr:`Context.ends_span`), the span is left
        in ``ctx.span`` with the exception recorded, its status and end to the transport."""
        from opentelemetry import context as otel_context
        from opentelemetry.trace import Status, StatusCode

        otel_context.detach(token)  # type: ignore[arg-type]
        if failure is not None:
            span.record_exception(failure)
        if ctx.ends_span:
            ctx.span = span
            return
        if failure is not None:
            span.set_status(Status(StatusCode.ERROR, type(failure).__name__))
        span.end()


def handler_tracing(
    tracer: Tracer, handler: str, telemetry: Telemetry, settings: TracingSettings
) -> HandlerTracing | None:
    """The handler's spans, or ``None`` when ``settings.suppress`` leaves it out."""
    for pattern in settings.suppress:
        if any(fnmatch.fnmatchcase(t, pattern) for t in (handler, *telemetry.targets)):
            return None
    return HandlerTracing(tracer, telemetry, settings)


def code_attributes(func: Any) -> dict[str, Any]:
    """``code.function``, ``code.filepath`` and ``code.lineno`` of a handler function."""
    inner = getattr(func, "__wrapped__", func)
    code = getattr(inner, "__code__", None)
    found: dict[str, Any] = {"code.function": getattr(inner, "__qualname__", repr(inner))}
    if code is not None:
        found["code.filepath"] = code.co_filename
        found["code.lineno"] = code.co_firstlineno
    return found


# -- outgoing calls -----------------------------------------------------------------------


@contextlib.contextmanager
def outgoing(
    name: str, kind: Kind, attributes: Mapping[str, Any], headers: dict[str, str]
) -> Iterator[None]:
    """Around a call that sends something (a publish, a request): with a tracer, a span of
    ``kind`` whose context is written into ``headers``; without one, ``headers`` get the
    current handler's ``traceparent`` (a new parent id), ``tracestate`` and ``baggage``.
    Headers already there are kept."""
    tracer = _tracer.get()
    if tracer is None or not isinstance(headers, dict):
        if isinstance(headers, dict):
            propagate(headers)
        yield
        return
    from opentelemetry.propagate import inject
    from opentelemetry.trace import SpanKind

    with tracer.start_as_current_span(
        name, kind=getattr(SpanKind, kind.upper()), attributes=dict(attributes)
    ):
        carrier: dict[str, str] = {}
        inject(carrier)
        for key, value in carrier.items():
            headers.setdefault(key, value)
        yield


@contextlib.contextmanager
def span(
    name: str, *, kind: Kind = "internal", attributes: Mapping[str, Any] | None = None
) -> Iterator[Span | None]:
    """A span around the block when the app makes spans (``None`` otherwise): for calls
    cordio does not make itself, such as a database query::

        with span("SELECT orders", kind="client", attributes={
            "db.system.name": "postgresql", "db.query.text": sql,
        }):
            rows = await pool.fetch(sql, *args)

    An exception leaving the block marks the span ERROR. Never put a query's arguments or
    other secrets into attributes.
    """
    tracer = _tracer.get()
    if tracer is None:
        yield None
        return
    from opentelemetry.trace import SpanKind

    with tracer.start_as_current_span(
        name, kind=getattr(SpanKind, kind.upper()), attributes=dict(attributes or {})
    ) as found:
        yield found


def propagate(headers: dict[str, str]) -> None:
    """Write the current handler's trace context into ``headers`` (see :func:`outgoing`),
    when there is a handler and no ``traceparent`` is there yet."""
    ctx = current_context()
    if ctx is None or "traceparent" in headers:
        return
    headers["traceparent"] = f"00-{ctx.trace_id}-{os.urandom(8).hex()}-01"
    incoming = ctx.headers
    if incoming:
        for key, limit in CARRIED.items():
            found = _header(incoming, key)
            if (
                found is not None
                and key not in headers
                and len(found) <= limit
                and found.isprintable()
            ):
                headers[key] = found


def _header(headers: Any, name: str) -> str | None:
    try:
        found = headers.get(name)
    except (AttributeError, TypeError):
        return None
    return found if isinstance(found, str) else None


class _Carrier:
    """Event headers (a dict or Starlette's ``Headers``) as an OpenTelemetry carrier."""

    __slots__ = ("headers",)

    def __init__(self, headers: Any) -> None:
        self.headers = headers

    def get(self, key: str, default: Any = None) -> Any:
        found = _header(self.headers, key)
        return default if found is None else found

    def keys(self) -> list[str]:
        return [k for k in PROPAGATED if _header(self.headers, k) is not None]

    def __getitem__(self, key: str) -> str:
        found = _header(self.headers, key)
        if found is None:
            raise KeyError(key)
        return found

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and _header(self.headers, key) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())


# -- business stages ------------------------------------------------------------------------

_stage: ContextVar[str | None] = ContextVar("cordio_stage", default=None)


def current_stage() -> str | None:
    """The business stage of the running code (:func:`stage`), or ``None``."""
    return _stage.get()


@contextlib.contextmanager
def stage(name: str) -> Iterator[None]:
    """Group what runs inside the block as business stage ``name``: a span of that name
    (when the app makes spans), the ``stage`` field of every log line written inside, and
    ``cordio_stage_duration_seconds{stage, outcome}`` (``ok`` or ``error``) when the app
    is measured. Stage names are few and fixed in code (they are a metric label).

    ::

        with cordio.stage("payment"):
            await charge(order)
    """
    from cordio.observe.recorder import current_metrics

    token = _stage.set(name)
    metrics = current_metrics()
    started = time.perf_counter()
    outcome = "error"
    try:
        tracer = _tracer.get()
        if tracer is None:
            yield
        else:
            with tracer.start_as_current_span(name, attributes={"cordio.stage": name}):
                yield
        outcome = "ok"
    finally:
        _stage.reset(token)
        if metrics is not None:
            elapsed = time.perf_counter() - started
            metrics.families().stage_duration.labels(name, outcome).observe(elapsed)
