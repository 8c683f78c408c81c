"""What every push exporter shares: reading the app's registry, counters turned into deltas,
the background loop, and failures that are counted and logged but never raised.

A push exporter reads the app's prometheus-client registry (``registry.collect()``) every
``interval`` seconds in a task of its own, started with the app; handlers only increment
prometheus-client's metrics, as they do without exporters. A push that fails (a server
down, a name that does not resolve, a rejected request) is counted in
``cordio_metrics_export_failures_total{exporter}`` and logged, at most once a minute per
exporter; it never raises out of the exporter's task.
"""

from __future__ import annotations

import abc
import asyncio
import logging
import math
import os
import re
import socket
import time
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

log = logging.getLogger("cordio.metrics.export")

#: Seconds between two log lines about the failures of one exporter.
LOG_EVERY = 60.0

_CUMULATIVE = {
    "counter": ("_total",),
    "histogram": ("_sum", "_count", "_bucket"),
    "summary": ("_sum", "_count"),
}


@dataclass(frozen=True, slots=True)
class Sample:
    """One series of the registry as read at a push.

    Attributes:
        name: the sample's name (``cordio_handler_calls_total``, ``..._bucket``).
        labels: its labels, in the family's order (a bucket's ``le`` last).
        value: its value: a running total when ``cumulative``.
        cumulative: a counter's total, a histogram's or summary's sum, count or bucket
            (only ever grows); otherwise a gauge.
    """

    name: str
    labels: tuple[tuple[str, str], ...]
    value: float
    cumulative: bool

    @property
    def key(self) -> tuple[str, tuple[tuple[str, str], ...]]:
        return (self.name, self.labels)


def read(registry: CollectorRegistry, names: Sequence[str] = ()) -> list[Sample]:
    """Every sample of ``registry`` (those of the metrics whose name starts with one of
    ``names``, when given), without the ``_created`` timestamps and values that are not
    finite numbers."""
    found = []
    prefixes = tuple(names)
    for family in registry.collect():
        if prefixes and not family.name.startswith(prefixes):
            continue
        suffixes = _CUMULATIVE.get(family.type, ())
        for sample in family.samples:
            if sample.name.endswith("_created") or not math.isfinite(sample.value):
                continue
            cumulative = bool(suffixes) and sample.name.endswith(suffixes)
            if family.type == "counter" and not cumulative:
                continue  # a counter's other samples are timestamps
            labels = tuple(sample.labels.items())
            found.append(Sample(sample.name, labels, float(sample.value), cumulative))
    return found


class Deltas:
    """Running totals turned into what they grew by since the last push that went out.

    :meth:`compute` does not forget the totals it read; :meth:`commit` does, once the
    points made from them were sent, so a failed push is sent again with the next one and
    the deltas received always add up to the totals.
    """

    def __init__(self) -> None:
        self._last: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}

    def delta(self, sample: Sample) -> float:
        """What ``sample`` grew by since the last commit (its whole value the first time,
        or after a reset)."""
        before = self._last.get(sample.key, 0.0)
        grown = sample.value - before
        return sample.value if grown < 0 else grown

    def commit(self, samples: Iterable[Sample]) -> None:
        """Remember the totals of ``samples`` as sent."""
        for sample in samples:
            if sample.cumulative:
                self._last[sample.key] = sample.value


def default_instance() -> str:
    """``<hostname>:<pid>``, this process's name unless ``metrics.instance`` says one."""
    return f"{socket.gethostname()}:{os.getpid()}"


_PATH_PART = re.compile(r"[^A-Za-z0-9_\-]")


def path_part(text: str) -> str:
    """``text`` as one component of a dotted StatsD or Graphite name: characters other
    than letters, digits, ``_`` and ``-`` become ``_``."""
    return _PATH_PART.sub("_", text) or "_"


def dotted_prefix(prefix: str) -> str:
    """A configured prefix's components, sanitised, each followed by a dot."""
    return "".join(path_part(part) + "." for part in prefix.split(".") if part)


def number(value: float) -> str:
    """``value`` as its shortest exact text (``3``, ``0.25``, ``1e-05``)."""
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


class _Counters:
    """The exporters' own counters in an app's registry (made once per registry)."""

    _made: ClassVar[weakref.WeakKeyDictionary[Any, _Counters]] = weakref.WeakKeyDictionary()

    def __init__(self, registry: CollectorRegistry) -> None:
        from prometheus_client import Counter

        self.pushes = Counter(
            "cordio_metrics_exports", "Pushes of the metrics", ("exporter",), registry=registry
        )
        self.failures = Counter(
            "cordio_metrics_export_failures",
            "Pushes of the metrics that failed",
            ("exporter",),
            registry=registry,
        )
        self.dropped = Counter(
            "cordio_metrics_dropped",
            "Lines an exporter dropped (its buffer was full while the server was down)",
            ("exporter",),
            registry=registry,
        )

    @classmethod
    def of(cls, registry: CollectorRegistry) -> _Counters:
        made = cls._made.get(registry)
        if made is None:
            made = cls._made[registry] = cls(registry)
        return made


class PushExporter(abc.ABC):
    """Base of the exporters: every ``interval`` seconds read the registry and
    :meth:`send` it.

    Args:
        registry: the app's registry.
        interval: seconds between pushes.
        names: prefixes of the metric names pushed (all when empty).
        instance: this process's name, or ``None`` to send none.

    Attributes:
        pushes: pushes that went out.
        failures: pushes that failed.
        dropped: lines dropped, never sent.
    """

    #: The exporter's name in logs and in its own metrics (``statsd``...).
    kind: ClassVar[str] = "push"
    #: Seconds the last push at shutdown may take.
    final_timeout: ClassVar[float] = 5.0

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        interval: float,
        names: Sequence[str] = (),
        instance: str | None = None,
    ) -> None:
        self.registry = registry
        self.interval = interval
        self.names = tuple(names)
        self.instance = instance
        self.pushes = 0
        self.failures = 0
        self.dropped = 0
        self._counters = _Counters.of(registry)
        self._lock = asyncio.Lock()
        self._logged_at = -math.inf
        self._unlogged = 0

    def __repr__(self) -> str:
        return f"<{type(self).__name__} every {self.interval} s>"

    async def run(self) -> None:
        """Push every ``interval`` seconds until cancelled."""
        while True:
            await asyncio.sleep(self.interval)
            await self.push()

    async def push(self) -> bool:
        """Read the registry and send it now; return whether that worked. Never raises
        (but for cancellation): a failure is counted and logged."""
        async with self._lock:
            try:
                await self.send(read(self.registry, self.names), time.time())
            except Exception as exc:
                self.failures += 1
                self._counters.failures.labels(self.kind).inc()
                self._log_failure(exc)
                return False
            self.pushes += 1
            self._counters.pushes.labels(self.kind).inc()
            return True

    @abc.abstractmethod
    async def send(self, samples: list[Sample], now: float) -> None:
        """Send ``samples``, read at ``now`` (Unix time); raise when that failed."""

    async def close(self) -> None:
        """Release connections and clients (nothing by default)."""
        return

    async def stop(self) -> None:
        """The last push (bounded by :attr:`final_timeout`), then :meth:`close`."""
        try:
            async with asyncio.timeout(self.final_timeout):
                await self.push()
        except TimeoutError:
            self.failures += 1
            self._counters.failures.labels(self.kind).inc()
            log.warning(
                "metrics to %s: the last push took over %.0f s and was abandoned",
                self.kind,
                self.final_timeout,
            )
        finally:
            await self.close()

    def drop(self, count: int) -> None:
        """Count ``count`` lines dropped."""
        if count > 0:
            self.dropped += count
            self._counters.dropped.labels(self.kind).inc(count)

    def _log_failure(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._logged_at < LOG_EVERY:
            self._unlogged += 1
            return
        more = f" ({self._unlogged} more since the last report)" if self._unlogged else ""
        log.warning("metrics to %s: push failed: %r%s", self.kind, exc, more)
        self._logged_at = now
        self._unlogged = 0
