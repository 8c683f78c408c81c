"""Handler metrics on every transport, user metrics, the app's own registry, ``/metrics``."""

from __future__ import annotations

import asyncio
import shutil
from asyncio.subprocess import PIPE, STDOUT
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from cordio import App, Context
from cordio.config import EnvSource
from cordio.messaging import Nack, Publisher, Reject
from cordio.policy import OnError, respond
from cordio.testing import TestApp
from tests.eventually import eventually

TOKEN = "metrics-admin-token-0123456789"


class Missing(Exception):
    pass


def make_app(**settings: str) -> App:
    environ = {"SVC__BROKER__REQUEUE_DELAY": "0", "SVC__BROKER__MAX_ATTEMPTS": "3"}
    environ.update({f"SVC__{k}": v for k, v in settings.items()})
    app = App("svc", config=[EnvSource("svc", environ=environ)])

    @app.http.get("/items/{item_id}")
    @OnError({Missing: respond(404)})
    async def get_item(item_id: int) -> dict[str, int]:
        if item_id == 0:
            raise Missing("no item 0")
        if item_id < 0:
            raise RuntimeError("broken")
        return {"id": item_id}

    return app


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a Prometheus text exposition, by name and labels."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(text: str, name: str, **labels: str) -> float | None:
    return samples(text).get((name, frozenset(labels.items())))


async def test_every_http_call_is_counted_timed_and_its_errors_typed() -> None:
    async with TestApp(make_app()) as client:
        for item in (1, 2, 0, -1):
            await client.get(f"/items/{item}")
        await client.get("/items/not-a-number")  # refused before the handler: not a call
        scraped = await client.get("/metrics")
    assert scraped.status_code == 200
    assert scraped.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = scraped.text
    handler = {"transport": "http", "handler": "get_item"}
    assert value(text, "cordio_handler_calls_total", **handler) == 4
    assert value(text, "cordio_handler_errors_total", **handler, exception="Missing") == 1
    assert value(text, "cordio_handler_errors_total", **handler, exception="RuntimeError") == 1
    assert value(text, "cordio_handler_duration_seconds_count", **handler) == 4
    assert value(text, "cordio_handler_duration_seconds_bucket", **handler, le="+Inf") == 4
    assert value(text, "cordio_handler_in_flight", **handler) == 0
    # the OnError rule's count lands in the app's registry too
    handled = {"where": "get_item", "exception": "Missing", "status": "404"}
    assert value(text, "cordio_errors_total", **handled) == 1
    # no label carries a raw path or an id
    assert "/items/1" not in text
    assert "process_resident_memory_bytes" in text
    assert "python_gc_objects_collected_total" in text
    assert "cordio_event_loop_lag_seconds" in text


async def test_the_in_flight_gauge_counts_running_calls() -> None:
    app = App("svc")
    entered, release = asyncio.Event(), asyncio.Event()
    running = 0

    @app.http.get("/slow")
    async def slow() -> str:
        nonlocal running
        running += 1
        if running == 3:
            entered.set()
        await release.wait()
        return "done"

    async with TestApp(app) as client:
        calls = [asyncio.create_task(client.get("/slow")) for _ in range(3)]
        await entered.wait()
        text = (await client.get("/metrics")).text
        assert value(text, "cordio_handler_in_flight", transport="http", handler="slow") == 3
        release.set()
        await asyncio.gather(*calls)
        text = (await client.get("/metrics")).text
        assert value(text, "cordio_handler_in_flight", transport="http", handler="slow") == 0
        assert value(text, "cordio_handler_calls_total", transport="http", handler="slow") == 3


async def test_settling_signals_are_not_errors_and_consumers_are_labelled() -> None:
    app = make_app()
    seen: list[str] = []

    @app.consume("work")
    async def work(kind: str, ctx: Context) -> Any:
        seen.append(kind)
        if kind == "reject":
            return Reject("no such customer")
        if kind == "nack":
            raise Nack(requeue=False)
        if kind == "boom":
            raise ValueError("bad")
        return None

    @app.http.post("/publish/{kind}")
    async def publish(kind: str, publisher: Publisher) -> None:
        await publisher.publish("work", kind)

    @app.http.post("/nowhere")
    async def nowhere(publisher: Publisher) -> None:
        await publisher.publish("nowhere", "x")  # no such destination: PublishError

    async with TestApp(app) as client:
        for kind in ("ok", "reject", "nack", "boom"):
            await client.post(f"/publish/{kind}")
        assert (await client.post("/nowhere")).status_code == 500
        await eventually(lambda: len(seen) == 6)  # "boom" is tried 3 times
        text = (await client.get("/metrics")).text
    handler = {"transport": "messaging", "handler": "work"}
    assert value(text, "cordio_handler_calls_total", **handler) == 6
    errors = {
        labels: v
        for (name, labels), v in samples(text).items()
        if name == "cordio_handler_errors_total" and ("handler", "work") in labels
    }
    assert list(errors.values()) == [3]
    assert ("exception", "ValueError") in next(iter(errors))
    settled = {
        outcome: value(text, "cordio_messages_total", **handler, outcome=outcome)
        for outcome in ("ack", "requeue", "dead_letter", "duplicate")
    }
    assert settled == {"ack": 1, "requeue": 2, "dead_letter": 3, "duplicate": 0}
    assert value(text, "cordio_publishes_total", destination="work", outcome="ok") == 4
    assert value(text, "cordio_publishes_total", destination="nowhere", outcome="error") == 1


async def test_100_concurrent_calls_are_all_counted() -> None:
    app = App("svc")

    @app.http.get("/ping")
    async def ping() -> str:
        await asyncio.sleep(0)
        return "pong"

    async with TestApp(app) as client:
        await asyncio.gather(*(client.get("/ping") for _ in range(100)))
        text = (await client.get("/metrics")).text
    assert value(text, "cordio_handler_calls_total", transport="http", handler="ping") == 100
    assert (
        value(text, "cordio_handler_duration_seconds_count", transport="http", handler="ping")
        == 100
    )


async def test_openmetrics_when_asked_and_a_hostile_accept_header_still_gets_text() -> None:
    async with TestApp(make_app()) as client:
        await client.get("/items/1")
        om = await client.get("/metrics", headers={"Accept": "application/openmetrics-text"})
        assert om.headers["content-type"].startswith("application/openmetrics-text")
        assert om.text.endswith("# EOF\n")
        for hostile in (
            "application/openmetrics-text; version=banana",
            "text/plain; version=x.y.z; escaping=nonsense",
            ";;;,,,",
            "a" * 10_000,
        ):
            answer = await client.get("/metrics", headers={"Accept": hostile})
            assert answer.status_code == 200, hostile
            assert "cordio_handler_calls_total" in answer.text


async def test_metrics_off() -> None:
    async with TestApp(make_app(METRICS__ENABLED="false")) as client:
        await client.get("/items/1")
        off = await client.get("/metrics")
    assert off.status_code == 404
    assert "metrics.enabled" in off.json()["detail"]


async def test_metrics_behind_the_admin_token() -> None:
    async with TestApp(make_app(ADMIN__TOKEN=TOKEN)) as client:
        assert (await client.get("/metrics")).status_code == 401
        given = {"Authorization": f"Bearer {TOKEN}"}
        assert (await client.get("/metrics", headers=given)).status_code == 200


async def test_two_apps_and_two_runs_never_register_a_metric_twice() -> None:
    first, second = make_app(), make_app()
    texts = []
    for app in (first, second, first):
        placed = app.metrics.counter("orders_placed", "Orders placed", ["channel"])
        assert app.metrics.counter("orders_placed", "Orders placed", ["channel"]) is placed
        async with TestApp(app) as client:
            placed.labels("web").inc()
            await client.get("/items/1")
            texts.append((await client.get("/metrics")).text)
    handler = {"transport": "http", "handler": "get_item"}
    # each app counts its own; a second run of an app goes on counting in its registry
    assert [value(t, "orders_placed_total", channel="web") for t in texts] == [1, 1, 2]
    assert [value(t, "cordio_handler_calls_total", **handler) for t in texts] == [1, 1, 2]


async def test_user_metrics_are_exported_and_checked() -> None:
    app = make_app()
    placed = app.metrics.counter("orders_placed", "Orders placed", ["channel"])
    size = app.metrics.histogram("basket_size", "Items per order", buckets=(1, 5, 10))
    with pytest.raises(ValueError, match="declared already as a Counter"):
        app.metrics.gauge("orders_placed", "Orders placed", ["channel"])
    with pytest.raises(ValueError, match="with labels"):
        app.metrics.counter("orders_placed", "Orders placed", ["region"])
    with pytest.raises(ValueError, match="cordio_ prefix"):
        app.metrics.counter("cordio_mine", "no")
    with pytest.raises(ValueError, match="is not"):
        app.metrics.counter("no spaces allowed", "no")
    with pytest.raises(ValueError, match="label name '__reserved'"):
        app.metrics.counter("fine", "no", ["__reserved"])
    assert app.metrics.get("basket_size") is size
    with pytest.raises(KeyError, match="no metric 'nope'"):
        app.metrics.get("nope")
    async with TestApp(app) as client:
        placed.labels("web").inc(2)
        size.observe(3)
        text = (await client.get("/metrics")).text
    assert value(text, "orders_placed_total", channel="web") == 2
    assert value(text, "basket_size_bucket", le="5.0") == 1


@pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool (Debian package prometheus) is not installed"
)
async def test_promtool_accepts_the_exposition() -> None:
    app = make_app()
    app.metrics.counter("orders_placed", "Orders placed", ["channel"]).labels("web").inc()
    async with TestApp(app) as client:
        for item in (1, 0, -1):
            await client.get(f"/items/{item}")
        text = (await client.get("/metrics")).text
    promtool = await asyncio.create_subprocess_exec(
        "promtool", "check", "metrics", stdin=PIPE, stdout=PIPE, stderr=STDOUT
    )
    out, _ = await promtool.communicate(text.encode())
    assert promtool.returncode == 0, out.decode()


async def test_consumer_lag_is_what_the_broker_reports() -> None:
    app = make_app(BROKER__LAG_INTERVAL="0.05", BROKER__PREFETCH="1")
    release = asyncio.Event()

    @app.consume("slow")
    async def slow(n: int) -> None:
        await release.wait()

    @app.http.post("/fill")
    async def fill(publisher: Publisher) -> None:
        for n in range(5):
            await publisher.publish("slow", n)

    async with TestApp(app) as client:
        await client.post("/fill")
        lag = {"transport": "messaging", "handler": "slow", "source": "slow"}

        async def four_waiting() -> bool:
            text = (await client.get("/metrics")).text
            return value(text, "cordio_consumer_lag", **lag) == 4

        await eventually(four_waiting, what="a lag of 4")
        release.set()

        async def drained() -> bool:
            text = (await client.get("/metrics")).text
            return value(text, "cordio_consumer_lag", **lag) == 0

        await eventually(drained, what="the lag back to 0")


async def test_the_apps_metrics_are_injectable_by_type() -> None:
    from cordio.observe.metrics import Metrics

    app = App("svc")
    app.metrics.counter("orders_placed", "Orders placed", ["channel"])

    @app.http.post("/orders")
    async def place(metrics: Metrics) -> None:
        metrics.get("orders_placed").labels("web").inc()

    async with TestApp(app) as client:
        await client.post("/orders")
        await client.post("/orders")
        text = (await client.get("/metrics")).text
    assert value(text, "orders_placed_total", channel="web") == 2
