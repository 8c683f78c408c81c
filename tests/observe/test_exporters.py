"""Push exporters against real receivers: StatsD on a UDP socket, Graphite on a TCP server,
CloudWatch on moto's server; several at once; failing ones that never slow a handler."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from cordio import App
from cordio.config import EnvSource
from cordio.observe.exporters import Exporters
from cordio.observe.exporters.graphite import GraphiteExporter
from cordio.observe.exporters.push import default_instance
from cordio.observe.exporters.statsd import StatsdExporter
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
            assert {line.split(":")[0] for line in receiver.lines} == {
                "orders_total.channel.web"
            }


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
