"""Graphite over TCP (carbon's plaintext protocol): the app's registry as ``path value
timestamp`` lines, every ``metrics.graphite.interval`` seconds.

Graphite gets every sample's current value, as Prometheus does: counters and a
histogram's ``_sum``, ``_count`` and ``_bucket`` series as running totals (graph them with
``nonNegativeDerivative`` or ``perSecond``), gauges as they are. A path is
``<prefix>.<instance>.<name>.<label>.<value>...`` (``metrics.graphite.instance`` on, the
default: running totals of several processes must not share a path), its parts sanitised
(characters other than letters, digits, ``_`` and ``-`` become ``_``).

One connection is kept open. When carbon is down the lines wait in a buffer of
``metrics.graphite.buffer`` lines, the oldest dropped (and counted in
``cordio_metrics_dropped_total{exporter="graphite"}``) beyond it; connecting again is
tried at a push, after a back-off that doubles from the interval up to a minute. Lines are
forgotten once written; carbon keeps the last value of a path at a timestamp, so a line
sent twice after a reconnection changes nothing.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from cordio.observe.exporters.push import PushExporter, Sample, dotted_prefix, number, path_part

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

#: Seconds a connection or a write may take.
TIMEOUT = 5.0
#: Longest back-off between two attempts to connect, seconds.
BACKOFF_MAX = 60.0


class GraphiteUnreachable(ConnectionError):
    """No connection to carbon (not tried again yet, or it failed)."""


class GraphiteExporter(PushExporter):
    """Push to carbon at ``host:port`` over TCP.

    Args:
        prefix: dotted prefix of every path.
        buffer: lines kept while carbon is unreachable.
        (others): as :class:`~cordio.observe.exporters.push.PushExporter`.
    """

    kind = "graphite"

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        host: str,
        port: int,
        interval: float,
        prefix: str = "",
        buffer: int = 10_000,
        names: Sequence[str] = (),
        instance: str | None = None,
    ) -> None:
        super().__init__(registry, interval=interval, names=names, instance=instance)
        self.address = (host, port)
        self.prefix = dotted_prefix(prefix)
        if instance is not None:
            self.prefix += path_part(instance) + "."
        self.buffer: collections.deque[str] = collections.deque(maxlen=buffer)
        self.connects = 0
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._backoff = 0.0
        self._next_attempt = 0.0

    def lines(self, samples: list[Sample], now: float) -> list[str]:
        """The plaintext lines for ``samples`` read at ``now``."""
        stamp = int(now)
        lines = []
        for sample in samples:
            parts = [path_part(sample.name)]
            for key, value in sample.labels:
                parts += (path_part(key), path_part(value))
            lines.append(f"{self.prefix}{'.'.join(parts)} {number(sample.value)} {stamp}\n")
        return lines

    async def send(self, samples: list[Sample], now: float) -> None:
        lines = self.lines(samples, now)
        room = self.buffer.maxlen or 0
        self.drop(len(self.buffer) + len(lines) - room)
        self.buffer.extend(lines)
        writer = await self._connected()
        data = "".join(self.buffer).encode()
        sent = len(self.buffer)
        try:
            writer.write(data)
            async with asyncio.timeout(TIMEOUT):
                await writer.drain()
        except (OSError, TimeoutError):
            await self._disconnect()
            raise
        for _ in range(sent):
            self.buffer.popleft()

    async def _connected(self) -> asyncio.StreamWriter:
        reader, writer = self._reader, self._writer
        if reader is not None and writer is not None:
            if not (reader.at_eof() or writer.is_closing()):
                return writer
            await self._disconnect()  # carbon closed it
        now = time.monotonic()
        if now < self._next_attempt:
            raise GraphiteUnreachable(
                f"carbon at {self.address[0]}:{self.address[1]} is down; "
                f"next attempt in {self._next_attempt - now:.1f} s"
            )
        try:
            async with asyncio.timeout(TIMEOUT):
                reader, writer = await asyncio.open_connection(*self.address)
        except (OSError, TimeoutError) as exc:
            self._backoff = min(BACKOFF_MAX, max(self.interval, self._backoff * 2))
            self._next_attempt = time.monotonic() + self._backoff
            raise GraphiteUnreachable(
                f"cannot connect to carbon at {self.address[0]}:{self.address[1]}: {exc!r}"
            ) from exc
        self._reader, self._writer = reader, writer
        self._backoff = 0.0
        self._next_attempt = 0.0
        self.connects += 1
        return writer

    async def _disconnect(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            try:
                async with asyncio.timeout(1):
                    await writer.wait_closed()
            except (OSError, TimeoutError):
                pass

    async def close(self) -> None:
        await self._disconnect()
