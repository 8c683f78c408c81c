"""Push exporters against real receivers: StatsD on a UDP socket, Graphite on a TCP server,
CloudWatch on moto's server; several at once; failing ones that never slow a handler."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from cordio import App
from cordio.config import EnvSource
from cordio.observe.exporters.graphite import GraphiteExporter
from cordio.observe.exporters.push import default_instance
from cordio.testing import TestApp
from tests.eventually import eventually

#: Only the metrics the tests declare, so the lines received are exactly known.
MINE = '["orders", "queue", "temperature", "basket"]'


def make_app(**settings: str) -> App:
    environ = {f"SVC__METRICS__{k.upper()}": v for k, v in settings.items()}
    app = App("svc", config=[EnvSource("svc", environ=environ)])

    @app.http.get("/ping")
    async def ping() -> dict[str, bool]:
        app.metrics.get("orders").labels("web").inc()
        return {"ok": True}

    app.metrics.counter("orders", "Orders placed", ["channel"])
    app.metrics.gauge("queue", "Queue depth")
    app.metrics.gauge("temperature", "Degrees", ["room"])
    app.metrics.histogram("basket", "Items per order", buckets=(1, 5))
    return app


class StatsdReceiver(asyncio.DatagramProtocol):
    """A StatsD agent: a UDP socket on 127.0.0.1 keeping every line it receives."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.datagrams = 0

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.datagrams += 1
        self.lines.extend(data.decode().split("\n"))

    async def take(self, count: int) -> list[str]:
        """The next ``count`` lines (waiting for them), sorted; none more arrived."""
        await eventually(lambda: len(self.lines) >= count, what=f"{count} StatsD lines")
        taken, self.lines = self.lines, []
        return sorted(taken)


@contextlib.asynccontextmanager
async def statsd_receiver() -> AsyncIterator[tuple[StatsdReceiver, int]]:
    loop = asyncio.get_running_loop()
    transport, receiver = await loop.create_datagram_endpoint(
        StatsdReceiver, local_addr=("127.0.0.1", 0)
    )
    try:
        yield receiver, transport.get_extra_info("sockname")[1]
    finally:
        transport.close()


class Carbon:
    """A carbon plaintext server on 127.0.0.1 (asyncio.start_server) that can go down and
    come back on the same port."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.port = 0
        self.connections = 0
        self.server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.append(writer)
        while line := await reader.readline():
            self.lines.append(line.decode().rstrip("\n"))
        writer.close()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self._writers:
            writer.close()
        self._writers.clear()
        await self.server.wait_closed()
        self.server = None

    def values(self) -> dict[str, float]:
        """The last value received of each path."""
        found = {}
        for line in self.lines:
            path, value, _ = line.split(" ")
            found[path] = float(value)
        return found


@contextlib.asynccontextmanager
async def carbon() -> AsyncIterator[Carbon]:
    server = Carbon()
    await server.start()
    try:
        yield server
    finally:
        if server.server is not None:
            await server.stop()


def statsd_settings(port: int, **more: str) -> dict[str, str]:
    return {
        "statsd__enabled": "true",
        "statsd__port": str(port),
        "statsd__names": MINE,
        "statsd__interval": "3600",  # the tests push themselves
        **more,
    }


# -- StatsD ------------------------------------------------------------------------------


async def test_statsd_lines_are_exact_and_counters_are_deltas_between_pushes() -> None:
    async with statsd_receiver() as (receiver, port):
        app = make_app(**statsd_settings(port, statsd__prefix="shop.eu-1"))
        async with TestApp(app) as client:
            for _ in range(3):
                await client.get("/ping")
            app.metrics.get("orders").labels("phone").inc(2)
            app.metrics.get("queue").set(7)
            app.metrics.get("temperature").labels("cold room").set(-4.5)
            basket = app.metrics.get("basket")
            basket.observe(3)
            basket.observe(0.5)
            assert client.runtime is not None
            exporters = client.runtime.exporters
            assert await exporters.push() == {"statsd": True}
            assert await receiver.take(10) == sorted(
                [
                    "shop.eu-1.orders_total.channel.web:3|c",
                    "shop.eu-1.orders_total.channel.phone:2|c",
                    "shop.eu-1.queue:7|g",
                    # a negative gauge: 0 first, as a signed value alone is relative
                    "shop.eu-1.temperature.room.cold_room:0|g",
                    "shop.eu-1.temperature.room.cold_room:-4.5|g",
                    "shop.eu-1.basket_bucket.le.1_0:1|c",
                    "shop.eu-1.basket_bucket.le.5_0:2|c",
                    "shop.eu-1.basket_bucket.le._Inf:2|c",
                    "shop.eu-1.basket_count:2|c",
                    "shop.eu-1.basket_sum:3.5|c",
                ]
            )
            # the next push: what counters grew by since (unchanged ones left out), and
            # gauges again
            await client.get("/ping")
            app.metrics.get("temperature").labels("cold room").set(2)
            basket.observe(10)
            assert await exporters.push() == {"statsd": True}
            assert await receiver.take(6) == sorted(
                [
                    "shop.eu-1.orders_total.channel.web:1|c",
                    "shop.eu-1.queue:7|g",
                    "shop.eu-1.temperature.room.cold_room:2|g",
                    "shop.eu-1.basket_bucket.le._Inf:1|c",
                    "shop.eu-1.basket_count:1|c",
                    "shop.eu-1.basket_sum:10|c",
                ]
            )
            app.metrics.get("orders").labels("web").inc(5)
        # the last push, at shutdown
        assert await receiver.take(3) == sorted(
            [
                "shop.eu-1.orders_total.channel.web:5|c",
                "shop.eu-1.queue:7|g",
                "shop.eu-1.temperature.room.cold_room:2|g",
            ]
        )


async def test_statsd_labels_as_dogstatsd_tags_with_the_instance() -> None:
    async with statsd_receiver() as (receiver, port):
        settings = statsd_settings(port, statsd__dogstatsd="true", statsd__instance="true")
        app = make_app(**settings, instance="api-1:42")
        async with TestApp(app) as client:
            await client.get("/ping")
            app.metrics.get("temperature").labels("hall, north|#1").set(20)
            assert client.runtime is not None
            assert await client.runtime.exporters.push() == {"statsd": True}
            assert await receiver.take(3) == sorted(
                [
                    "orders_total:1|c|#channel:web,instance:api-1:42",
                    "queue:0|g|#instance:api-1:42",
                    # characters StatsD uses as separators become _
                    "temperature:20|g|#room:hall__north__1,instance:api-1:42",
                ]
            )


async def test_deltas_of_concurrent_increments_add_up_to_the_total() -> None:
    """100 tasks increment a counter while pushes run; every delta received sums to the
    total exactly, none lost or counted twice."""
    async with statsd_receiver() as (receiver, port):
        app = make_app(**statsd_settings(port, statsd__names='["orders"]'))
        async with TestApp(app) as client:
            assert client.runtime is not None
            exporters = client.runtime.exporters
            orders = app.metrics.get("orders").labels("web")
            started = asyncio.Event()

            async def increment() -> None:
                await started.wait()
                for _ in range(10):
                    orders.inc()
                    await asyncio.sleep(0)

            async def keep_pushing() -> None:
                await started.wait()
                for _ in range(20):
                    await exporters.push()
                    await asyncio.sleep(0)

            tasks = [asyncio.create_task(increment()) for _ in range(100)]
            pusher = asyncio.create_task(keep_pushing())
            started.set()
            await asyncio.gather(*tasks, pusher)
            assert await exporters.push() == {"statsd": True}
            assert exporters["statsd"].pushes >= 2

            def received() -> float:
                return sum(float(line.split(":")[1].split("|")[0]) for line in receiver.lines)

            await eventually(lambda: received() == 1000, what="deltas summing to 1000")
            assert {line.split(":")[0] for line in receiver.lines} == {"orders_total.channel.web"}


async def test_statsd_agent_not_listening_is_counted_not_raised() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # nothing listens on port: the kernel answers "connection refused" to each datagram
    app = make_app(**statsd_settings(port))
    async with TestApp(app) as client:
        await client.get("/ping")
        assert client.runtime is not None
        exporter = client.runtime.exporters["statsd"]

        async def failed() -> bool:
            await exporter.push()
            return exporter.failures > 0

        await eventually(failed, what="a refused datagram counted")
        scraped = (await client.get("/metrics")).text
        assert 'cordio_metrics_export_failures_total{exporter="statsd"}' in scraped
        assert (await client.get("/ping")).status_code == 200


# -- Graphite ----------------------------------------------------------------------------


def graphite_settings(port: int, **more: str) -> dict[str, str]:
    return {
        "graphite__enabled": "true",
        "graphite__port": str(port),
        "graphite__names": MINE,
        "graphite__interval": "3600",
        **more,
    }


async def test_graphite_gets_running_totals_under_the_instance() -> None:
    async with carbon() as server:
        app = make_app(
            **graphite_settings(server.port, graphite__prefix="shop"), instance="api-1:42"
        )
        async with TestApp(app) as client:
            assert client.runtime is not None
            exporter = client.runtime.exporters["graphite"]
            await client.get("/ping")
            app.metrics.get("basket").observe(3)
            before = int(time.time())
            assert await exporter.push()
            await eventually(lambda: len(server.lines) == 7, what="7 carbon lines")
            first = server.lines[:]
            await client.get("/ping")
            assert await exporter.push()
            await eventually(lambda: len(server.lines) == 14, what="14 carbon lines")
        paths = sorted(line.split(" ")[0] for line in first)
        assert paths == sorted(
            [
                "shop.api-1_42.orders_total.channel.web",
                "shop.api-1_42.queue",
                "shop.api-1_42.basket_bucket.le.1_0",
                "shop.api-1_42.basket_bucket.le.5_0",
                "shop.api-1_42.basket_bucket.le._Inf",
                "shop.api-1_42.basket_count",
                "shop.api-1_42.basket_sum",
            ]
        )
        for line in first:
            _, _, stamp = line.split(" ")
            assert before <= int(stamp) <= time.time()
        values = server.values()
        assert values["shop.api-1_42.orders_total.channel.web"] == 2  # a running total
        assert values["shop.api-1_42.basket_sum"] == 3
        assert server.connections == 1  # one connection kept


async def latencies(client: TestApp, calls: int) -> list[float]:
    """Seconds each of ``calls`` GET /ping took, one after the other."""
    found = []
    for _ in range(calls):
        start = time.perf_counter()
        answer = await client.get("/ping")
        found.append(time.perf_counter() - start)
        assert answer.status_code == 200
    return found


async def test_graphite_down_then_back_drops_counted_and_reconnects() -> None:
    async with carbon() as server:
        # 7 lines a push, 10 kept while carbon is down: the second push drops some
        settings = graphite_settings(
            server.port, graphite__interval="0.05", graphite__buffer="10", graphite__instance="0"
        )
        app = make_app(**settings)
        async with TestApp(app) as client:
            assert client.runtime is not None
            exporter = client.runtime.exporters["graphite"]
            assert isinstance(exporter, GraphiteExporter)
            await client.get("/ping")
            await eventually(lambda: "orders_total.channel.web" in server.values())
            await server.stop()
            await eventually(lambda: exporter.dropped > 0, what="lines dropped")
            assert exporter.failures > 0
            assert len(exporter.buffer) == 10
            # carbon being down costs the handlers nothing
            assert max(await latencies(client, 50)) < 0.1
            scraped = (await client.get("/metrics")).text
            assert 'cordio_metrics_dropped_total{exporter="graphite"}' in scraped
            await server.start()  # back, on the same port
            await eventually(lambda: server.connections == 2, what="a reconnection")
            await eventually(
                lambda: server.values().get("orders_total.channel.web") == 51,
                what="the running total after the reconnection",
            )
            assert exporter.connects == 2


# -- CloudWatch (moto's server) ----------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, moto_url: str) -> str:
    """Dummy credentials for moto; its URL."""
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return moto_url


@contextlib.asynccontextmanager
async def cloudwatch(url: str) -> AsyncIterator[Any]:
    from aiobotocore.session import get_session

    async with get_session().create_client("cloudwatch", endpoint_url=url) as client:
        yield client


def cloudwatch_settings(url: str, namespace: str, **more: str) -> dict[str, str]:
    return {
        "cloudwatch__enabled": "true",
        "cloudwatch__endpoint_url": url,
        "cloudwatch__namespace": namespace,
        "cloudwatch__names": MINE,
        "cloudwatch__interval": "3600",
        **more,
    }


async def metric_sum(client: Any, namespace: str, name: str, dims: dict[str, str]) -> float:
    """The Sum of ``name`` with exactly ``dims`` over the last hour, read back."""
    now = time.time()
    answer = await client.get_metric_data(
        MetricDataQueries=[
            {
                "Id": "q",
                "MetricStat": {
                    "Metric": {
                        "Namespace": namespace,
                        "MetricName": name,
                        "Dimensions": [{"Name": k, "Value": v} for k, v in dims.items()],
                    },
                    "Period": 3600,
                    "Stat": "Sum",
                },
            }
        ],
        StartTime=now - 3600,
        EndTime=now + 60,
    )
    return float(sum(answer["MetricDataResults"][0]["Values"]))


async def test_cloudwatch_metrics_are_read_back_with_their_dimensions(aws: str) -> None:
    settings = cloudwatch_settings(aws, "Shop/Orders", cloudwatch__dimensions='{"env": "test"}')
    app = make_app(**settings)
    async with TestApp(app) as client:
        assert client.runtime is not None
        exporters = client.runtime.exporters
        for _ in range(3):
            await client.get("/ping")
        app.metrics.get("queue").set(4)
        app.metrics.get("basket").observe(2.5)
        assert await exporters.push() == {"cloudwatch": True}
        await client.get("/ping")
        assert await exporters.push() == {"cloudwatch": True}
    async with cloudwatch(aws) as cw:
        listed = await cw.list_metrics(Namespace="Shop/Orders")
        found = {
            (m["MetricName"], frozenset((d["Name"], d["Value"]) for d in m["Dimensions"]))
            for m in listed["Metrics"]
        }
        env = ("env", "test")
        assert found == {
            ("orders_total", frozenset({("channel", "web"), env})),
            ("queue", frozenset({env})),
            ("basket_sum", frozenset({env})),
            ("basket_count", frozenset({env})),
        }
        web = {"channel": "web", "env": "test"}
        # deltas: 3, then 1, and nothing at shutdown (unchanged)
        assert await metric_sum(cw, "Shop/Orders", "orders_total", web) == 4
        assert await metric_sum(cw, "Shop/Orders", "basket_sum", {"env": "test"}) == 2.5
        assert await metric_sum(cw, "Shop/Orders", "basket_count", {"env": "test"}) == 1


async def test_cloudwatch_datums_go_in_batches_of_at_most_1000(aws: str) -> None:
    app = make_app(**cloudwatch_settings(aws, "Shop/Wide", cloudwatch__names='["orders"]'))
    async with TestApp(app) as client:
        orders = app.metrics.get("orders")
        for channel in range(2500):
            orders.labels(f"c{channel}").inc()
        assert client.runtime is not None
        exporter = client.runtime.exporters["cloudwatch"]
        assert await exporter.push()
        assert exporter.requests == 3  # 1000 + 1000 + 500
    async with cloudwatch(aws) as cw:
        names = set()
        async for page in cw.get_paginator("list_metrics").paginate(Namespace="Shop/Wide"):
            names.update(m["Dimensions"][0]["Value"] for m in page["Metrics"])
        assert len(names) == 2500


# -- several at once, and failing ones ---------------------------------------------------


async def test_three_exporters_at_once_each_pushing_on_its_own(aws: str) -> None:
    async with statsd_receiver() as (receiver, port), carbon() as server:
        settings = {
            **statsd_settings(port, statsd__interval="0.05"),
            **graphite_settings(server.port, graphite__interval="0.05", graphite__instance="0"),
            **cloudwatch_settings(aws, "Shop/All", cloudwatch__interval="0.05"),
        }
        app = make_app(**settings)
        async with TestApp(app) as client:
            assert client.runtime is not None
            exporters = client.runtime.exporters
            assert sorted(exporters.exporters) == ["cloudwatch", "graphite", "statsd"]
            running = {t["name"] for t in client.runtime.tasks.running()}
            assert {"cordio.metrics.statsd", "cordio.metrics.graphite"} <= running
            for _ in range(5):
                await client.get("/ping")
            await eventually(lambda: server.values().get("orders_total.channel.web") == 5)
            await eventually(lambda: "orders_total.channel.web:5|c" in receiver.lines)
            await eventually(lambda: exporters["cloudwatch"].pushes > 0)
            await client.get("/ping")  # counted by the last pushes, at shutdown
        assert server.values()["orders_total.channel.web"] == 6
        await eventually(
            lambda: (
                sum(
                    float(line.split(":")[1].split("|")[0])
                    for line in receiver.lines
                    if line.startswith("orders_total.channel.web:")
                )
                == 6
            )
        )
        async with cloudwatch(aws) as cw:
            dims = {"channel": "web"}
            assert await metric_sum(cw, "Shop/All", "orders_total", dims) == 6


async def test_failing_exporters_never_slow_or_fail_a_handler(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """StatsD to a port nobody listens on, Graphite to a server that never accepts (its
    backlog full: connecting hangs), CloudWatch to a closed port, all pushing every 10 ms:
    the handlers answer as fast as ever and the failures are counted."""
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    closed = free_port()
    with socket.socket() as stuck, socket.socket() as filler:
        stuck.bind(("127.0.0.1", 0))
        stuck.listen(0)
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            filler.connect(stuck.getsockname())  # fills the backlog of one
        settings = {
            **statsd_settings(closed, statsd__interval="0.01"),
            **graphite_settings(stuck.getsockname()[1], graphite__interval="0.01"),
            **cloudwatch_settings(
                f"http://127.0.0.1:{closed}",
                "Shop/Down",
                cloudwatch__interval="0.01",
                cloudwatch__region="eu-west-1",
            ),
        }
        app = make_app(**settings)
        async with TestApp(app) as client:
            assert client.runtime is not None
            exporters = client.runtime.exporters
            baseline = sorted(await latencies(client, 20))
            for exporter in exporters.exporters.values():
                monkeypatch.setattr(exporter, "final_timeout", 0.5)
            timed = sorted(await latencies(client, 200))
            await eventually(
                lambda: exporters["statsd"].failures > 0 and exporters["cloudwatch"].failures > 0,
                what="failed pushes counted",
            )
            assert exporters["graphite"].pushes == 0  # still connecting, or given up
            started = time.monotonic()
        stopped_in = time.monotonic() - started
    assert timed[-1] < 0.1, timed[-5:]
    assert timed[len(timed) // 2] < max(0.01, 5 * baseline[len(baseline) // 2])
    # the last pushes are bounded: shutdown is not held by unreachable servers
    assert stopped_in < 3
    # failures logged, rate limited: one line per exporter however many pushes failed
    failed = [r for r in caplog.records if "push failed" in r.getMessage()]
    assert len({r.getMessage().split(":")[0] for r in failed}) == len(failed) <= 3


async def test_cloudwatch_request_that_failed_is_sent_again_with_the_next_push(aws: str) -> None:
    from prometheus_client import CollectorRegistry, Counter

    from cordio.observe.exporters.cloudwatch import CloudWatchExporter

    registry = CollectorRegistry()
    sent = Counter("sent", "Sent", registry=registry)
    exporter = CloudWatchExporter(
        registry,
        namespace="Shop/Retry",
        interval=60,
        endpoint_url=f"http://127.0.0.1:{free_port()}",  # nothing listens
        names=["sent"],
    )
    sent.inc(3)
    assert not await exporter.push()
    assert exporter.failures == 1
    await exporter.close()
    exporter.endpoint_url = aws  # the service is back
    sent.inc(2)
    assert await exporter.push()
    await exporter.stop()
    async with cloudwatch(aws) as cw:
        assert await metric_sum(cw, "Shop/Retry", "sent_total", {}) == 5


def test_the_instance_is_the_hostname_and_pid_unless_set() -> None:
    assert default_instance() == f"{socket.gethostname()}:{os.getpid()}"
