"""Amazon CloudWatch: the app's registry as ``PutMetricData`` requests, every
``metrics.cloudwatch.interval`` seconds (needs ``cordio[aws]``, aiobotocore).

What is sent, in namespace ``metrics.cloudwatch.namespace`` (the app's name by default):

- a counter: ``name_total``, what it grew by since the last push that went out (unit
  ``Count``; none when it did not grow);
- a gauge: ``name``, its value at every push (unit ``None``);
- a histogram: ``name_sum`` and ``name_count``, deltas as for a counter (the buckets are
  not sent: each would be a CloudWatch metric of its own).

A sample's labels are its dimensions (empty values left out; at most 30, with
``metrics.cloudwatch.dimensions`` and ``instance``); the datums go in requests of at most
1000 datums and about 900 kB. Credentials and region are the SDK's own (environment,
profile, instance role), retries the SDK's ``standard`` mode (3 attempts). A request that
fails is sent again with the next push: its deltas are not forgotten until accepted.
"""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from cordio.errors import require_extra
from cordio.observe.exporters.push import Deltas, PushExporter, Sample, log

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

#: CloudWatch's limits of one request and of one datum.
MAX_DATUMS = 1000
MAX_BYTES = 900_000
MAX_DIMENSIONS = 30


class CloudWatchExporter(PushExporter):
    """Push to CloudWatch with ``PutMetricData``.

    Args:
        namespace: the CloudWatch namespace.
        region: the AWS region (``None``: the SDK's).
        endpoint_url: another endpoint than AWS's.
        dimensions: dimensions of every datum.
        (others): as :class:`~cordio.observe.exporters.push.PushExporter`.

    Raises:
        MissingExtraError: aiobotocore is not installed.
    """

    kind = "cloudwatch"

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        namespace: str,
        interval: float,
        region: str | None = None,
        endpoint_url: str | None = None,
        dimensions: Mapping[str, str] | None = None,
        names: Sequence[str] = (),
        instance: str | None = None,
    ) -> None:
        require_extra("aiobotocore", feature="metrics to CloudWatch", extra="aws")
        super().__init__(registry, interval=interval, names=names, instance=instance)
        self.namespace = namespace
        self.region = region
        self.endpoint_url = endpoint_url
        extra = dict(dimensions or {})
        if instance is not None:
            extra["instance"] = instance
        self.dimensions = [{"Name": k, "Value": v} for k, v in extra.items() if v]
        self.deltas = Deltas()
        self.requests = 0
        self._client: Any = None
        self._stack = contextlib.AsyncExitStack()
        self._warned_dimensions = False

    def datums(self, samples: list[Sample], now: float) -> list[tuple[dict[str, Any], Sample]]:
        """The ``MetricData`` entries for ``samples``, each with the sample it was made of."""
        stamp = datetime.datetime.fromtimestamp(now, datetime.UTC)
        found = []
        for sample in samples:
            if sample.name.endswith("_bucket") and sample.cumulative:
                continue
            if sample.cumulative:
                value = self.deltas.delta(sample)
                if not value:
                    continue
                unit = "Count" if not sample.name.endswith("_sum") else "None"
            else:
                value, unit = sample.value, "None"
            datum = {
                "MetricName": sample.name,
                "Dimensions": self._dimensions(sample),
                "Timestamp": stamp,
                "Value": value,
                "Unit": unit,
            }
            found.append((datum, sample))
        return found

    def _dimensions(self, sample: Sample) -> list[dict[str, str]]:
        dims = [{"Name": k, "Value": v[:1024]} for k, v in sample.labels if v]
        dims += self.dimensions
        if len(dims) > MAX_DIMENSIONS:
            if not self._warned_dimensions:
                log.warning(
                    "metrics to CloudWatch: %s has %d dimensions; the first %d are sent",
                    sample.name,
                    len(dims),
                    MAX_DIMENSIONS,
                )
                self._warned_dimensions = True
            dims = dims[:MAX_DIMENSIONS]
        return dims

    async def send(self, samples: list[Sample], now: float) -> None:
        client = await self._connected()
        for batch in _batches(self.datums(samples, now)):
            await client.put_metric_data(
                Namespace=self.namespace, MetricData=[datum for datum, _ in batch]
            )
            self.requests += 1
            self.deltas.commit(sample for _, sample in batch)

    async def _connected(self) -> Any:
        if self._client is None:
            from aiobotocore.config import AioConfig
            from aiobotocore.session import get_session

            config = AioConfig(
                retries={"mode": "standard", "max_attempts": 3},
                connect_timeout=5,
                read_timeout=10,
            )
            self._client = await self._stack.enter_async_context(
                get_session().create_client(
                    "cloudwatch",
                    region_name=self.region,
                    endpoint_url=self.endpoint_url,
                    config=config,
                )
            )
        return self._client

    async def close(self) -> None:
        stack, self._stack = self._stack, contextlib.AsyncExitStack()
        self._client = None
        await stack.aclose()


def _size(datum: dict[str, Any]) -> int:
    """About how many bytes ``datum`` takes in a request (query encoding, generous)."""
    size = 120 + len(datum["MetricName"])
    for dim in datum["Dimensions"]:
        size += 80 + len(dim["Name"]) + 3 * len(dim["Value"])
    return size


def _batches(
    datums: list[tuple[dict[str, Any], Sample]],
) -> Iterator[list[tuple[dict[str, Any], Sample]]]:
    batch: list[tuple[dict[str, Any], Sample]] = []
    size = 0
    for item in datums:
        grown = _size(item[0])
        if batch and (len(batch) == MAX_DATUMS or size + grown > MAX_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(item)
        size += grown
    if batch:
        yield batch
