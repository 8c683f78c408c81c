"""Push exporters: the app's metrics sent to StatsD, Graphite and CloudWatch from
settings, several at once, beside ``GET /metrics``.

Each exporter enabled in ``metrics.statsd``, ``metrics.graphite`` or ``metrics.cloudwatch``
reads the app's registry every ``interval`` seconds in a background task started with the
app; at shutdown, once the services have stopped, each pushes a last time (up to 5 s) and
closes its connection. Handlers never wait for an exporter, and an exporter that fails
never fails a handler (:mod:`cordio.observe.exporters.push`).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from cordio.observe.exporters.push import PushExporter, default_instance, log

if TYPE_CHECKING:
    from cordio.observe.metrics import Metrics, MetricsSettings
    from cordio.tasks import TaskGroup

__all__ = ["Exporters", "PushExporter"]


class Exporters:
    """The push exporters of one run of an app.

    Attributes:
        exporters: the exporters by kind (``statsd``, ``graphite``, ``cloudwatch``).
    """

    def __init__(self, exporters: list[PushExporter]) -> None:
        self.exporters = {exporter.kind: exporter for exporter in exporters}
        self._tasks: list[asyncio.Task[Any]] = []

    def __bool__(self) -> bool:
        return bool(self.exporters)

    def __getitem__(self, kind: str) -> PushExporter:
        return self.exporters[kind]

    @classmethod
    def from_settings(cls, metrics: Metrics, settings: MetricsSettings) -> Exporters:
        """The exporters ``settings`` enable, for ``metrics``'s registry.

        Raises:
            MissingExtraError: CloudWatch is enabled without ``cordio[aws]``.
        """
        instance = settings.instance or default_instance()
        registry = metrics.registry
        found: list[PushExporter] = []
        statsd = settings.statsd
        if statsd.enabled:
            from cordio.observe.exporters.statsd import StatsdExporter

            found.append(
                StatsdExporter(
                    registry,
                    host=statsd.host,
                    port=statsd.port,
                    interval=statsd.interval,
                    prefix=statsd.prefix,
                    dogstatsd=statsd.dogstatsd,
                    names=statsd.names,
                    instance=instance if statsd.instance else None,
                )
            )
        graphite = settings.graphite
        if graphite.enabled:
            from cordio.observe.exporters.graphite import GraphiteExporter

            found.append(
                GraphiteExporter(
                    registry,
                    host=graphite.host,
                    port=graphite.port,
                    interval=graphite.interval,
                    prefix=graphite.prefix,
                    buffer=graphite.buffer,
                    names=graphite.names,
                    instance=instance if graphite.instance else None,
                )
            )
        cloudwatch = settings.cloudwatch
        if cloudwatch.enabled:
            from cordio.observe.exporters.cloudwatch import CloudWatchExporter

            found.append(
                CloudWatchExporter(
                    registry,
                    namespace=cloudwatch.namespace or metrics.app_name,
                    interval=cloudwatch.interval,
                    region=cloudwatch.region,
                    endpoint_url=cloudwatch.endpoint_url,
                    dimensions=cloudwatch.dimensions,
                    names=cloudwatch.names,
                    instance=instance if cloudwatch.instance else None,
                )
            )
        return cls(found)

    def start(self, tasks: TaskGroup) -> None:
        """Run each exporter's loop as a background task of the app."""
        for kind, exporter in self.exporters.items():
            self._tasks.append(tasks.spawn(exporter.run(), name=f"cordio.metrics.{kind}"))

    async def push(self) -> dict[str, bool]:
        """Push now, every exporter at once; whether each push worked, by kind."""
        kinds = list(self.exporters)
        done = await asyncio.gather(*(self.exporters[kind].push() for kind in kinds))
        return dict(zip(kinds, done, strict=True))

    async def stop(self) -> None:
        """Stop the loops, push a last time and close the connections."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        exporters = list(self.exporters.values())
        results = await asyncio.gather(*(e.stop() for e in exporters), return_exceptions=True)
        for exporter, result in zip(exporters, results, strict=True):
            if isinstance(result, Exception):
                log.warning("metrics to %s: closing failed: %r", exporter.kind, result)
