"""Where the error pipeline records a handled exception besides the log: the recorder.

:func:`cordio.policy.commit.commit` writes the log line itself and hands everything else
to the current :class:`Recorder`: a metrics counter, the trace span's status, an error
tracker. :class:`SinkRecorder` (the default) records to what is installed —

- the Prometheus counter ``cordio_errors_total{where, exception, status}``
  (prometheus-client, extra ``cordio[metrics]``): in the running app's registry
  (:mod:`cordio.observe.metrics`), or in prometheus-client's global one outside an app;
- the current OpenTelemetry span: status ERROR and the exception as an event
  (opentelemetry-api, extra ``cordio[otel]``);
- a Sentry event (sentry-sdk, extra ``cordio[sentry]``), only when the rule asks.

A run of an app may use another recorder (:func:`use_recorder`, for the tasks of that
run); observability integrations plug in here.
"""

from __future__ import annotations

from contextvars import ContextVar
from functools import cache
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from cordio.observe.metrics import Metrics


class Recorder(Protocol):
    """Records one handled exception."""

    def record(
        self,
        exc: BaseException,
        where: str,
        *,
        status: int | None,
        count: bool,
        span: bool,
        report: bool,
    ) -> None:
        """Record ``exc``, handled at ``where`` (``"handler get_order"``) and answered
        with ``status`` (or none): ``count`` it, mark the current ``span`` failed,
        ``report`` it to the error tracker. Must not raise and must not block."""


class SinkRecorder:
    """The default recorder: Prometheus, OpenTelemetry and Sentry, each when installed."""

    def record(
        self,
        exc: BaseException,
        where: str,
        *,
        status: int | None,
        count: bool,
        span: bool,
        report: bool,
    ) -> None:
        if count:
            metrics = _metrics.get()
            if metrics is not None:
                metrics.count_handled(where, exc, status)
            else:
                counter = _counter()
                if counter is not None:
                    counter.labels(where, type(exc).__name__, str(status or "")).inc()
        if span:
            _span_error(exc)
        if report:
            import sentry_sdk

            sentry_sdk.capture_exception(exc)


@cache
def _counter() -> Any:
    """The errors counter of code running outside an app, in prometheus-client's global
    registry; made once: prometheus-client refuses a second registration of one name in
    its registry."""
    try:
        from prometheus_client import Counter
    except ImportError:
        return None
    return Counter(
        "cordio_errors",
        "Exceptions handled by an OnError policy",
        ["where", "exception", "status"],
    )


def _span_error(exc: BaseException) -> None:
    try:
        from opentelemetry import trace
    except ImportError:
        return
    current = trace.get_current_span()
    if current.is_recording():
        current.record_exception(exc)
        current.set_status(trace.Status(trace.StatusCode.ERROR, type(exc).__name__))


_DEFAULT = SinkRecorder()
_current: ContextVar[Recorder] = ContextVar("cordio_recorder", default=_DEFAULT)
_metrics: ContextVar[Metrics | None] = ContextVar("cordio_metrics", default=None)


def current_metrics() -> Metrics | None:
    """The running app's metrics, or ``None`` (no app, or metrics off)."""
    return _metrics.get()


def use_metrics(metrics: Metrics | None) -> None:
    """Make ``metrics`` (the running app's; ``None``: none) where the current task, and the
    tasks it starts from now on, count what ``OnError`` rules count."""
    _metrics.set(metrics)


def current_recorder() -> Recorder:
    """The recorder of the running app's task (the :class:`SinkRecorder` by default)."""
    return _current.get()


def use_recorder(recorder: Recorder) -> None:
    """Make ``recorder`` the current task's, and that of the tasks it starts from now on."""
    _current.set(recorder)
