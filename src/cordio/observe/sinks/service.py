"""Starting and stopping the queued log destinations with the app.

The console and the file are plain handlers installed by
:func:`~cordio.observe.logging.configure_logging` before anything starts. The PostgreSQL
and broker destinations need the running app: its event loop for their writing task, and
for the broker the app's ``publisher`` resource. :class:`LogDestinations` is an internal
transport of every app, like the admin surface (:mod:`cordio.observe.admin`): it has no
handlers; its :meth:`~LogDestinations.services` gives, after the resources started, one
service per enabled destination (a :class:`~cordio.observe.sinks.queue.QueueSink`). The
app lists it first among its transports, so the destinations start before any transport
takes work and stop after every other service stopped — the lines of the shutdown itself
are written — and before the resources (the publisher's broker) are torn down. ``/info``
shows their counters under ``transports.log``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from cordio.errors import StartupError
from cordio.observe.logging import LogSettings, add_filters
from cordio.observe.sinks.queue import QueueSink
from cordio.transport import RunContext, TransportBase


class LogDestinations(TransportBase):
    """The queued log destinations (``log.postgres``, ``log.broker``) of a running app."""

    name: ClassVar[str] = "log"
    order: ClassVar[int] = -100  # first: started before, stopped after every other service

    sinks: list[QueueSink]

    def services(self, run: RunContext) -> list[Any]:
        settings = run.section(LogSettings)
        self.sinks = []
        if settings.postgres.enabled:
            from cordio.observe.sinks.postgres import PostgresSink

            pool = None
            if settings.postgres.resource is not None:
                pool = _resource(run, settings.postgres.resource, "log.postgres.resource")
            self.sinks.append(PostgresSink(settings.postgres, pool))
        if settings.broker.enabled:
            from cordio.observe.sinks.broker import BrokerSink

            publisher = _resource(run, "publisher", "log.broker.enabled")
            self.sinks.append(BrokerSink(settings.broker, publisher))
        for sink in self.sinks:
            add_filters(sink, run.app_name, settings, run.masker)
        if run.metrics is not None and self.sinks:
            sinks = list(self.sinks)

            def lines() -> list[tuple[Sequence[str], float]]:
                return [
                    ((sink.kind, outcome), float(sink.stats()[outcome]))
                    for sink in sinks
                    for outcome in ("written", "dropped", "failed")
                ]

            run.metrics.report(
                "cordio_log_lines",
                "Log lines of the queued destinations, by destination and outcome",
                ("destination", "outcome"),
                lines,
            )
        return list(self.sinks)

    def info(self, run: RunContext) -> Mapping[str, Any]:
        return {sink.kind: sink.stats() for sink in getattr(self, "sinks", [])}


def _resource(run: RunContext, name: str, key: str) -> Any:
    try:
        return run.resource(name)
    except KeyError:
        raise StartupError(
            f"{key}: the app has no running resource {name!r}; the log destination needs"
            " one the app uses (for the broker: a consumer, or a Publisher parameter)"
        ) from None
