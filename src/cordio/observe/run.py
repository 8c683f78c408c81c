"""What one run of an app records besides its log lines, started and stopped with it.

:class:`Observation` holds, for one :class:`~cordio.lifecycle.Runtime`: the app's metrics
(configured for the run, the loop-lag probe, the push exporters, ``cordio_resource_pool``),
the run's tracer provider, the Sentry client, and the threads alive at start (those started
since and still running at the end are logged with their stacks). The runtime calls
:meth:`~Observation.start` before the resources start, :meth:`~Observation.instrument` on
every handler's invoker, :meth:`~Observation.stop_exporters` once no handler runs any more
and :meth:`~Observation.stop` last.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from cordio.observe import sentry
from cordio.observe.exporters import Exporters
from cordio.observe.masking import Masker
from cordio.observe.metrics import Metrics, MetricsSettings
from cordio.observe.metrics import available as metrics_available
from cordio.observe.recorder import use_metrics
from cordio.observe.tracing import TracingSettings, handler_tracing, use_tracer
from cordio.observe.tracing import provider as tracing_provider

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Tracer

    from cordio.app import App
    from cordio.config.loader import Config
    from cordio.handler import HandlerSpec, Invoker
    from cordio.tasks import TaskGroup
    from cordio.transport import Transport

log = logging.getLogger("cordio.lifecycle")

#: Seconds the spans still queued at shutdown get to be exported.
SPAN_FLUSH = 5.0


class Observation:
    """The metrics, spans, Sentry client and thread watch of one run (see the module).

    Attributes:
        metrics: the app's metrics when measured this run (``metrics.enabled`` and
            prometheus-client installed), else ``None``.
        exporters: the push exporters of this run (none when metrics are off).
        tracer: the run's tracer (``None`` with ``tracing.exporter = "none"``).
    """

    def __init__(self) -> None:
        self.metrics: Metrics | None = None
        self.exporters = Exporters([])
        self.tracer: Tracer | None = None
        self._tracing = TracingSettings()
        self._provider: TracerProvider | None = None
        self._sentry: Any = None
        self._threads: set[int | None] = set()

    def start(
        self,
        app: App,
        config: Config,
        masker: Masker,
        tasks: TaskGroup,
        pools: Callable[[], list[tuple[Sequence[str], float]]],
    ) -> None:
        """Start recording for a run of ``app`` with ``config``: ``masker`` scrubs what
        leaves (spans, Sentry events), ``tasks`` runs the background work (loop lag,
        exporters), ``pools`` reads the resources' ``pool_sizes()``.

        Raises:
            MissingExtraError: an exporter or Sentry is configured without its extra.
        """
        self._threads = {t.ident for t in threading.enumerate()}
        self._sentry = sentry.start(
            config.get(sentry.SentrySettings), version=app.version, masker=masker
        )
        settings = config.get(MetricsSettings)
        if settings.enabled and metrics_available():
            metrics = self.metrics = app.metrics
            metrics.configure(settings)
            if settings.loop_lag_interval > 0:
                tasks.spawn(
                    metrics.probe_loop_lag(settings.loop_lag_interval), name="cordio.loop_lag"
                )
            self.exporters = Exporters.from_settings(metrics, settings)
            self.exporters.start(tasks)
            metrics.report(
                "cordio_resource_pool",
                "Sizes a resource reports of its pool (pool_sizes()), by resource and state",
                ("resource", "state"),
                pools,
                kind="gauge",
            )
        use_metrics(self.metrics)
        self._tracing = config.get(TracingSettings)
        if self._tracing.exporter != "none":
            self._provider = tracing_provider(app.name, app.version, self._tracing, masker=masker)
            self.tracer = self._provider.get_tracer("cordio")
        use_tracer(self.tracer)

    def instrument(
        self, invoker: Invoker, spec: HandlerSpec[Any], transports: Mapping[str, Transport]
    ) -> None:
        """Give a handler's invoker its metric series and its spans (named and described
        by its transport's :meth:`~cordio.transport.Transport.telemetry`)."""
        if self.metrics is not None:
            invoker.metrics = self.metrics.handler(spec.transport, spec.name)
        if self.tracer is not None:
            telemetry = transports[spec.transport].telemetry(spec)
            invoker.tracing = handler_tracing(self.tracer, spec.name, telemetry, self._tracing)

    async def stop_exporters(self) -> None:
        """The metrics' last push, once no handler runs any more (bounded, never fails)."""
        exporters, self.exporters = self.exporters, Exporters([])
        await exporters.stop()

    async def stop(self, app_name: str) -> None:
        """Export the spans still queued, report the threads left running, close Sentry."""
        await self._stop_tracing()
        self._report_threads(app_name)
        client, self._sentry = self._sentry, None
        await sentry.stop(client)

    async def _stop_tracing(self) -> None:
        """Export the spans still queued (at most :data:`SPAN_FLUSH` seconds) and close
        the exporter, in a thread: the SDK blocks."""
        provider, self._provider = self._provider, None
        self.tracer = None
        if provider is None:
            return
        use_tracer(None)

        def flush() -> None:
            provider.force_flush(int(SPAN_FLUSH * 1000))
            provider.shutdown()

        try:
            await asyncio.wait_for(asyncio.to_thread(flush), SPAN_FLUSH + 1)
        except Exception:
            log.warning("spans still queued at shutdown could not be exported", exc_info=True)

    def _report_threads(self, app_name: str) -> None:
        """Log, with their stacks, the threads started during the run that are still
        alive and would keep the process from exiting (not daemons; the event loop's own
        executor threads aside)."""
        from cordio.observe.introspect import thread_rows

        left = [
            t
            for t in threading.enumerate()
            if t.ident not in self._threads
            and t.is_alive()
            and not t.daemon
            and not t.name.startswith("asyncio_")
        ]
        for row in thread_rows(left, stacks=True):
            log.warning(
                "thread %r (native id %s) is still running after %s stopped:\n  %s",
                row["name"],
                row["native_id"],
                app_name,
                "\n  ".join(row.get("stack", [])),
            )
