"""Span attributes masked before they leave the process.

:func:`masked_exporter` wraps the span exporter of the app's tracer provider
(:mod:`cordio.observe.tracing`): every span it exports is a copy whose name, attributes,
events (an exception's ``exception.message`` and ``exception.stacktrace``), links'
attributes and status description went through the run's :class:`~cordio.observe.masking.Masker`
(known secrets, URL passwords, secret keys: ``http.request.header.authorization``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from cordio.observe.masking import Masker


class MaskingSpanExporter:
    """A span exporter handing masked copies of the spans to ``exporter``."""

    def __init__(self, exporter: Any, masker: Masker) -> None:
        self.exporter = exporter
        self.masker = masker

    def export(self, spans: Sequence[Any]) -> Any:
        return self.exporter.export([mask_span(span, self.masker) for span in spans])

    def shutdown(self) -> None:
        self.exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        flush = getattr(self.exporter, "force_flush", None)
        return bool(flush(timeout_millis)) if flush is not None else True


def masked_exporter(exporter: Any, masker: Masker | None) -> Any:
    """``exporter`` behind :class:`MaskingSpanExporter` (``exporter`` itself without a
    masker)."""
    return exporter if masker is None else MaskingSpanExporter(exporter, masker)


def mask_attributes(masker: Masker, attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    """Span attributes with every secret masked: the text (or texts) under a secret key
    (``http.request.header.authorization``), and secrets inside every string."""
    out: dict[str, Any] = {}
    for key, value in (attributes or {}).items():
        if isinstance(value, str | bytes | list | tuple) and value and masker.is_secret_key(key):
            out[key] = "**********"
        elif isinstance(value, str):
            out[key] = masker.text(value)
        elif isinstance(value, list | tuple):
            out[key] = tuple(masker.text(v) if isinstance(v, str) else v for v in value)
        else:
            out[key] = value
    return out


def mask_span(span: Any, masker: Masker) -> Any:
    """A copy of the finished ``span`` (an SDK ``ReadableSpan``) with secrets masked."""
    from opentelemetry.sdk.trace import Event, ReadableSpan
    from opentelemetry.trace import Link, Status

    status = span.status
    if status.description:
        status = Status(status.status_code, masker.text(status.description))
    return ReadableSpan(
        name=masker.text(span.name),
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=mask_attributes(masker, span.attributes),
        events=[
            Event(e.name, mask_attributes(masker, e.attributes), e.timestamp) for e in span.events
        ],
        links=[Link(link.context, mask_attributes(masker, link.attributes)) for link in span.links],
        kind=span.kind,
        status=status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )
