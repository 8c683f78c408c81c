"""Log records, or only error facts, published to a queue or subject through the app's
:class:`~cordio.messaging.Publisher`, off the request path.

``log.broker`` (:class:`~cordio.observe.sinks.settings.BrokerSinkSettings`): with
``select = "records"`` every record at ``level`` (default ``ERROR``) and above is
published; with ``select = "errors"`` only those carrying an exception (a traceback, or
cordio's ``error`` attribute on its lines about a handled exception). Each record is one
JSON message on ``destination`` (default ``logs``; created when missing with
``declare``)::

    {"ts": "2026-11-24T21:27:55.533Z", "level": "ERROR", "logger": "cordio.http",
     "message": "handler create_order failed on POST /orders", "app": "orders",
     "handler": "create_order", "trace_id": "4bf9...", "error": "KeyError",
     "exc": "Traceback ...", "fields": {...}}

(keys without a value left out). A batch's messages are published concurrently; one the
broker does not confirm within ``broker.publish_timeout`` is counted as failed and not
published again: the publisher already waited for the broker.

The app must use messaging (a consumer, or a ``Publisher`` parameter somewhere) so that the
``publisher`` resource runs; otherwise the app does not start and says why.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any, ClassVar

from cordio.observe.sinks.queue import Entry, QueueSink, clean
from cordio.observe.sinks.settings import BrokerSinkSettings


class _Select(logging.Filter):
    """Only records carrying an exception (``select = "errors"``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info
        return bool(exc and exc[0] is not None) or getattr(record, "error", None) is not None


def payload(item: Entry) -> dict[str, Any]:
    """The message published for a queued record: JSON-able, valid UTF-8."""
    ts = item["ts"]
    out: dict[str, Any] = {
        "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1000):03d}Z"
    }
    for key in ("level", "logger", "message", "app", "handler", "trace_id", "message_id"):
        if item[key] is not None:
            out[key] = clean(str(item[key]))
    for key in ("error", "exc"):
        if item[key] is not None:
            out[key] = clean(item[key])
    if item["fields"]:
        text = clean(json.dumps(item["fields"], default=str, ensure_ascii=False)) or "{}"
        out["fields"] = json.loads(text)
    return out


class BrokerSink(QueueSink):
    """Publishes queued records through ``publisher``.

    Args:
        settings: ``log.broker``.
        publisher: the app's :class:`~cordio.messaging.Publisher`.
    """

    kind: ClassVar[str] = "log.broker"

    def __init__(self, settings: BrokerSinkSettings, publisher: Any, **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        self.broker = settings
        self.publisher = publisher
        if settings.select == "errors":
            self.addFilter(_Select())

    async def write(self, batch: list[Entry]) -> int:
        results = await asyncio.gather(
            *(self._publish(item) for item in batch), return_exceptions=True
        )
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            self.last_error = errors[-1]
        for error in errors:
            if not isinstance(error, Exception):  # cancelled: not ours to swallow
                raise error
        return len(errors)

    async def _publish(self, item: Entry) -> None:
        await self.publisher.publish(
            self.broker.destination,
            payload(item),
            routing_key=self.broker.routing_key,
            declare=self.broker.declare,
        )
