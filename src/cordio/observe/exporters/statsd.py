"""StatsD over UDP: the app's registry as StatsD lines, every ``metrics.statsd.interval``
seconds.

What is sent, for a metric ``name`` (after ``metrics.statsd.prefix``):

- a counter: ``name_total:<delta>|c``, what it grew by since the last push (none when it
  did not grow);
- a gauge: ``name:<value>|g`` at every push (a negative value as ``name:0|g`` then
  ``name:-5|g``, since a signed gauge value is relative in StatsD);
- a histogram: ``name_sum`` and ``name_count`` as counters (``|c``, deltas), and each
  bucket as ``name_bucket`` with an ``le`` label, its count's delta (``|c``).

Labels are DogStatsD tags (``|#transport:http,handler:get_item``) with
``metrics.statsd.dogstatsd``; otherwise they are folded into the name, label then value
(``name.transport.http.handler.get_item``), characters other than letters, digits, ``_``
and ``-`` replaced by ``_``. Lines are packed into datagrams of at most 1432 bytes.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from cordio.observe.exporters.push import (
    Deltas,
    PushExporter,
    Sample,
    dotted_prefix,
    number,
    path_part,
)

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

#: Bytes of one datagram: fits an Ethernet MTU with IP and UDP headers.
PACKET = 1432

_TAG = re.compile(r"[^A-Za-z0-9_\-:./]")


def _tag(text: str) -> str:
    return _TAG.sub("_", text)


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, exporter: StatsdExporter) -> None:
        self.exporter = exporter

    def error_received(self, exc: Exception) -> None:
        # an ICMP error for an earlier datagram (nothing listening): the next push says it
        self.exporter.error = exc

    def connection_lost(self, exc: Exception | None) -> None:
        self.exporter.transport = None


class StatsdExporter(PushExporter):
    """Push to a StatsD agent at ``host:port`` over UDP.

    Args:
        prefix: dotted prefix of every name.
        dogstatsd: labels as DogStatsD tags rather than parts of the name.
        (others): as :class:`~cordio.observe.exporters.push.PushExporter`.
    """

    kind = "statsd"

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        host: str,
        port: int,
        interval: float,
        prefix: str = "",
        dogstatsd: bool = False,
        names: Sequence[str] = (),
        instance: str | None = None,
    ) -> None:
        super().__init__(registry, interval=interval, names=names, instance=instance)
        self.address = (host, port)
        self.prefix = dotted_prefix(prefix)
        self.dogstatsd = dogstatsd
        self.deltas = Deltas()
        self.transport: asyncio.DatagramTransport | None = None
        self.error: Exception | None = None

    def lines(self, samples: list[Sample]) -> list[str]:
        """The StatsD lines for ``samples`` (counters against the last commit)."""
        lines = []
        for sample in samples:
            name, tags = self._name(sample)
            if sample.cumulative:
                delta = self.deltas.delta(sample)
                if delta:
                    lines.append(f"{name}:{number(delta)}|c{tags}")
            else:
                if sample.value < 0:
                    lines.append(f"{name}:0|g{tags}")
                lines.append(f"{name}:{number(sample.value)}|g{tags}")
        return lines

    def _name(self, sample: Sample) -> tuple[str, str]:
        labels = sample.labels
        if self.instance is not None:
            labels = (*labels, ("instance", self.instance))
        if self.dogstatsd:
            tags = ",".join(f"{_tag(k)}:{_tag(v)}" for k, v in labels)
            return self.prefix + path_part(sample.name), f"|#{tags}" if tags else ""
        parts = [path_part(sample.name)]
        for key, value in labels:
            parts += (path_part(key), path_part(value))
        return self.prefix + ".".join(parts), ""

    async def send(self, samples: list[Sample], now: float) -> None:
        lines = self.lines(samples)
        error, self.error = self.error, None
        if self.transport is None or self.transport.is_closing():
            loop = asyncio.get_running_loop()
            self.transport, _ = await loop.create_datagram_endpoint(
                lambda: _Datagrams(self), remote_addr=self.address
            )
        for packet in _packets(lines):
            self.transport.sendto(packet)
        self.deltas.commit(samples)
        if error is not None:
            raise error

    async def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
            self.transport = None


def _packets(lines: list[str]) -> Iterator[bytes]:
    packet: list[bytes] = []
    size = 0
    for line in lines:
        data = line.encode()
        if packet and size + 1 + len(data) > PACKET:
            yield b"\n".join(packet)
            packet, size = [], 0
        size += len(data) + (1 if packet else 0)
        packet.append(data)
    if packet:
        yield b"\n".join(packet)
