"""The app's metrics: one prometheus-client registry per app, every handler measured with
no code, user metrics declared on the app, process and event-loop metrics.

Every handler of every transport (HTTP route, consumer, timer, ZeroMQ service) gets, labelled
by ``transport`` and ``handler`` (the handler's name: bounded, never a raw path or message
id):

- ``cordio_handler_calls_total``: calls finished;
- ``cordio_handler_errors_total`` (also labelled ``exception``, the class name): calls that
  raised, whether or not an ``OnError`` rule answered for them; ack / nack / reject
  signals are not errors;
- ``cordio_handler_duration_seconds``: a histogram of the call's time, in seconds (buckets
  from ``metrics.buckets``);
- ``cordio_handler_in_flight``: calls running now.

Beside them: ``cordio_errors_total{where, exception, status}`` (exceptions an ``OnError``
rule counted, :mod:`cordio.observe.recorder`), ``cordio_event_loop_lag_seconds`` (how late
the loop ran a callback scheduled ``metrics.loop_lag_interval`` seconds ahead), and
prometheus-client's process (CPU seconds, resident memory, open file descriptors), garbage
collector and platform collectors (``metrics.process``).

The registry is the app's own (:attr:`cordio.App.metrics`), not prometheus-client's global
one: two apps in one process, a reload or a second run of an app never meet a
"Duplicated timeseries" error. The recording costs about 2 µs per call, made after the
handler returned; nothing is exported on the request path (``/metrics`` is read when
scraped).

Needs ``cordio[metrics]`` (prometheus-client); without it handlers are not measured and
declaring a metric raises :class:`~cordio.errors.MissingExtraError`.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import re
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field, field_validator

from cordio.settings import Settings

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

log = logging.getLogger("cordio.metrics")

#: Names every Prometheus version and tool accepts (the data model's classic character set).
METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
#: Latency buckets in seconds (prometheus-client's defaults).
DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)


class _PushSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = False
    interval: float = Field(10.0, gt=0)
    names: tuple[str, ...] = ()
    instance: bool = False


class StatsdSettings(_PushSettings):
    """``metrics.statsd``: push the registry to a StatsD (or DogStatsD) agent over UDP.

    Attributes:
        enabled: push (default false).
        host: the agent's host (default ``127.0.0.1``).
        port: its UDP port (default 8125).
        prefix: dotted prefix of every name (default none).
        dogstatsd: labels as DogStatsD tags ``|#k:v`` instead of folded into the name.
        interval: seconds between pushes (default 10).
        names: push only the metrics whose name starts with one of these (default all).
        instance: add ``metrics.instance`` as a tag or name part (default false: counters
            of several processes add up in the agent).
    """

    host: str = "127.0.0.1"
    port: int = Field(8125, ge=1, le=65535)
    prefix: str = ""
    dogstatsd: bool = False


class GraphiteSettings(_PushSettings):
    """``metrics.graphite``: push the registry to Graphite (carbon's plaintext protocol)
    over TCP.

    Attributes:
        enabled: push (default false).
        host: carbon's host (default ``127.0.0.1``).
        port: its plaintext TCP port (default 2003).
        prefix: dotted prefix of every path (default none).
        interval: seconds between pushes (default 10).
        names: push only the metrics whose name starts with one of these (default all).
        instance: put ``metrics.instance`` in every path (default true: Graphite gets
            running totals, which must not mix between processes).
        buffer: lines kept while carbon is unreachable; older ones are dropped (and
            counted) beyond it (default 10000).
    """

    host: str = "127.0.0.1"
    port: int = Field(2003, ge=1, le=65535)
    prefix: str = ""
    instance: bool = True
    buffer: int = Field(10_000, ge=1)


class CloudWatchSettings(_PushSettings):
    """``metrics.cloudwatch``: push the registry to Amazon CloudWatch (``PutMetricData``),
    with ``cordio[aws]``.

    Attributes:
        enabled: push (default false).
        namespace: the CloudWatch namespace (default: the app's name).
        region: the AWS region (default: the SDK's, ``AWS_DEFAULT_REGION``...).
        endpoint_url: another endpoint than AWS's (a VPC endpoint, a local stand-in).
        interval: seconds between pushes (default 60).
        names: push only the metrics whose name starts with one of these (default all).
        instance: add ``metrics.instance`` as an ``instance`` dimension (default false).
        dimensions: dimensions added to every datum (``{"env": "prod"}``).
    """

    namespace: str = ""
    region: str | None = None
    endpoint_url: str | None = None
    interval: float = Field(60.0, gt=0)
    dimensions: dict[str, str] = Field(default_factory=dict)


class MetricsSettings(Settings, section="metrics"):
    """The ``metrics`` section.

    Attributes:
        enabled: measure handlers and serve ``/metrics`` (default true; needs
            ``cordio[metrics]``).
        buckets: upper bounds of the handler latency histogram, seconds, increasing
            (default prometheus-client's, 5 ms to 10 s).
        process: export process, garbage collector and platform metrics (default true).
        loop_lag_interval: seconds between event-loop lag probes (default 1; 0: none).
        instance: this process's name in what push exporters send (default
            ``<hostname>:<pid>``).
        statsd: push to StatsD (:class:`StatsdSettings`).
        graphite: push to Graphite (:class:`GraphiteSettings`).
        cloudwatch: push to CloudWatch (:class:`CloudWatchSettings`).
    """

    enabled: bool = True
    buckets: tuple[float, ...] = DEFAULT_BUCKETS
    process: bool = True
    loop_lag_interval: float = Field(1.0, ge=0)
    instance: str = ""
    statsd: StatsdSettings = Field(default_factory=StatsdSettings)
    graphite: GraphiteSettings = Field(default_factory=GraphiteSettings)
    cloudwatch: CloudWatchSettings = Field(default_factory=CloudWatchSettings)

    @field_validator("buckets")
    @classmethod
    def _increasing(cls, buckets: tuple[float, ...]) -> tuple[float, ...]:
        if not buckets:
            raise ValueError("at least one bucket")
        if any(not math.isfinite(b) or b <= 0 for b in buckets):
            raise ValueError("buckets are positive numbers of seconds")
        if any(a >= b for a, b in itertools.pairwise(buckets)):
            raise ValueError("buckets must increase")
        return buckets


def available() -> bool:
    """Whether prometheus-client is installed."""
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        return False
    return True


class HandlerMetrics:
    """One handler's series, resolved once so a call only increments them."""

    __slots__ = ("_errors", "_family", "_labels", "calls", "duration", "in_flight")

    def __init__(self, metrics: Metrics, transport: str, handler: str) -> None:
        families = metrics.families()
        self._labels = (transport, handler)
        self.calls = families.calls.labels(transport, handler)
        self.duration = families.duration.labels(transport, handler)
        self.in_flight = families.in_flight.labels(transport, handler)
        self._family = families.errors
        self._errors: dict[type[BaseException], Any] = {}

    def error(self, exc: BaseException) -> None:
        """Count a call that raised ``exc``."""
        kind = type(exc)
        child = self._errors.get(kind)
        if child is None:
            child = self._errors[kind] = self._family.labels(*self._labels, kind.__name__)
        child.inc()


class _Families:
    """The metric families cordio itself records, made once per registry."""

    def __init__(self, registry: CollectorRegistry, buckets: Sequence[float]) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        labels = ("transport", "handler")
        self.buckets = tuple(buckets)
        self.calls = Counter(
            "cordio_handler_calls", "Handler calls finished", labels, registry=registry
        )
        self.errors = Counter(
            "cordio_handler_errors",
            "Handler calls that raised, by exception class",
            (*labels, "exception"),
            registry=registry,
        )
        self.duration = Histogram(
            "cordio_handler_duration_seconds",
            "Time of a handler call, in seconds",
            labels,
            buckets=buckets,
            registry=registry,
        )
        self.in_flight = Gauge(
            "cordio_handler_in_flight",
            "Handler calls running now",
            labels,
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.handled = Counter(
            "cordio_errors",
            "Exceptions counted by an OnError rule",
            ("where", "exception", "status"),
            registry=registry,
        )
        self.stage_duration = Histogram(
            "cordio_stage_duration_seconds",
            "Time spent in a business stage (cordio.stage), in seconds",
            ("stage", "outcome"),
            buckets=buckets,
            registry=registry,
        )
        self.loop_lag = Gauge(
            "cordio_event_loop_lag_seconds",
            "How late the event loop ran the last lag probe, in seconds",
            registry=registry,
        )


class _Reported:
    """A family whose samples a transport reports at scrape time (:meth:`Metrics.report`)."""

    def __init__(self, name: str, documentation: str, labels: Sequence[str], kind: str) -> None:
        self.name = name
        self.documentation = documentation
        self.labels = list(labels)
        self.kind = kind
        self.read: Callable[[], Iterable[tuple[Sequence[str], float]]] = tuple

    def _family(self) -> Any:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        if self.kind == "counter":
            return CounterMetricFamily(self.name, self.documentation, labels=self.labels)
        return GaugeMetricFamily(self.name, self.documentation, labels=self.labels)

    def describe(self) -> list[Any]:
        return [self._family()]

    def collect(self) -> list[Any]:
        family = self._family()
        try:
            for values, value in self.read():
                family.add_metric([str(v) for v in values], float(value))
        except Exception:  # a scrape never fails for one reader
            log.exception("reading metric %s failed", self.name)
        return [family]


class Metrics:
    """The metrics of one app: a prometheus-client registry of its own, cordio's handler
    metrics and the user's (``app.metrics.counter(...)``). Safe to share between tasks
    (prometheus-client's metrics are thread-safe).

    Args:
        app_name: the app's name (for error messages).

    Attributes:
        registry: the ``CollectorRegistry`` that ``/metrics`` exports.
    """

    def __init__(self, app_name: str) -> None:
        from prometheus_client import CollectorRegistry

        self.app_name = app_name
        self.registry = CollectorRegistry()
        self._families: _Families | None = None
        self._process = False
        self._declared: dict[str, Any] = {}
        self._reported: dict[str, _Reported] = {}

    def __repr__(self) -> str:
        return f"<Metrics of {self.app_name!r}>"

    # -- configuration (at start) ----------------------------------------------------------

    def configure(self, settings: MetricsSettings) -> None:
        """Make cordio's metric families (once per app: a later run keeps the buckets of the
        first) and the process collectors when ``settings.process``."""
        if self._families is None:
            self._families = _Families(self.registry, settings.buckets)
        elif self._families.buckets != tuple(settings.buckets):
            log.warning(
                "metrics.buckets changed after the first run of %s; the histogram keeps %s",
                self.app_name,
                list(self._families.buckets),
            )
        if settings.process and not self._process:
            from prometheus_client import GCCollector, PlatformCollector, ProcessCollector

            ProcessCollector(registry=self.registry)
            GCCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
            self._process = True

    def families(self) -> _Families:
        if self._families is None:
            self.configure(MetricsSettings())
        assert self._families is not None
        return self._families

    def handler(self, transport: str, name: str) -> HandlerMetrics:
        """The series of handler ``name`` of ``transport``."""
        return HandlerMetrics(self, transport, name)

    def report(
        self,
        name: str,
        documentation: str,
        labels: Sequence[str],
        read: Callable[[], Iterable[tuple[Sequence[str], float]]],
        *,
        kind: Literal["counter", "gauge"] = "counter",
    ) -> None:
        """Export what a transport counts itself, read when scraped (nothing on the hot
        path): ``read()`` gives ``(label values, value)`` pairs. Reporting ``name`` again
        (a later run) replaces the reader; the family is registered once.

        Args:
            name: the family's name (a counter's without ``_total``).
            documentation: its help text.
            labels: its label names.
            read: called at each scrape; must be cheap and must not raise.
            kind: ``counter`` (monotonic totals) or ``gauge``.
        """
        found = self._reported.get(name)
        if found is None:
            found = self._reported[name] = _Reported(name, documentation, labels, kind)
            self.registry.register(found)
        found.read = read

    def count_handled(self, where: str, exc: BaseException, status: int | None) -> None:
        """Count an exception an ``OnError`` rule handled (``cordio_errors_total``)."""
        self.families().handled.labels(where, type(exc).__name__, str(status or "")).inc()

    async def probe_loop_lag(self, interval: float) -> None:
        """Measure the event loop's lag every ``interval`` seconds, until cancelled."""
        loop = asyncio.get_running_loop()
        gauge = self.families().loop_lag
        while True:
            expected = loop.time() + interval
            await asyncio.sleep(interval)
            gauge.set(max(0.0, loop.time() - expected))

    # -- user metrics -------------------------------------------------------------------------

    def counter(self, name: str, documentation: str, labels: Sequence[str] = ()) -> Counter:
        """A prometheus-client ``Counter`` in the app's registry; declared again with the
        same type and labels, the same one (a reloaded module does not fail).

        Raises:
            ValueError: ``name`` is declared already with another type or labels, is not
                a valid metric name (``[a-zA-Z_:][a-zA-Z0-9_:]*``, not ``cordio_...``), or
                a label name is not valid (``[a-zA-Z_][a-zA-Z0-9_]*``, not ``__...``).
        """
        from prometheus_client import Counter

        return cast("Counter", self._declare(Counter, name, documentation, labels))

    def gauge(self, name: str, documentation: str, labels: Sequence[str] = ()) -> Gauge:
        """A prometheus-client ``Gauge`` in the app's registry (see :meth:`counter`)."""
        from prometheus_client import Gauge

        return cast("Gauge", self._declare(Gauge, name, documentation, labels))

    def histogram(
        self,
        name: str,
        documentation: str,
        labels: Sequence[str] = (),
        buckets: Sequence[float] = DEFAULT_BUCKETS,
    ) -> Histogram:
        """A prometheus-client ``Histogram`` in the app's registry (see :meth:`counter`);
        ``buckets`` are upper bounds (seconds for a duration)."""
        from prometheus_client import Histogram

        metric = self._declare(Histogram, name, documentation, labels, buckets=tuple(buckets))
        return cast("Histogram", metric)

    def _declare(
        self, kind: type[Any], name: str, documentation: str, labels: Sequence[str], **extra: Any
    ) -> Any:
        found = self._declared.get(name)
        if found is not None:
            metric, declared_labels = found
            if type(metric) is not kind or declared_labels != tuple(labels):
                raise ValueError(
                    f"metric {name!r} is declared already as a {type(metric).__name__} "
                    f"with labels {list(declared_labels)}"
                )
            return metric
        if not METRIC_NAME.fullmatch(name):
            raise ValueError(f"metric name {name!r} is not [a-zA-Z_:][a-zA-Z0-9_:]*")
        for label in labels:
            if not LABEL_NAME.fullmatch(label) or label.startswith("__"):
                raise ValueError(f"metric {name!r}: label name {label!r} is not valid")
        if name.startswith("cordio_"):
            raise ValueError(f"metric {name!r}: the cordio_ prefix is cordio's own")
        metric = kind(name, documentation, tuple(labels), registry=self.registry, **extra)
        self._declared[name] = (metric, tuple(labels))
        return metric

    def get(self, name: str) -> Any:
        """The user metric declared as ``name``.

        Raises:
            KeyError: none is.
        """
        try:
            return self._declared[name][0]
        except KeyError:
            raise KeyError(f"no metric {name!r} is declared on {self.app_name!r}") from None
