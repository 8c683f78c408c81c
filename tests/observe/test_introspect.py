"""``/admin/handlers``, ``/admin/tasks``, ``/admin/threads``, ``/admin/loggers``: what a
running app is doing, and a log level changed at run time."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import pytest

from cordio import App
from cordio.config import EnvSource
from cordio.observe.introspect import quantile
from cordio.testing import TestApp

TOKEN = "introspect-admin-token-0123456789"
GIVEN = {"Authorization": f"Bearer {TOKEN}"}


def make_app(**settings: str) -> App:
    environ = {f"SVC__{k}": v for k, v in settings.items()}
    app = App("svc", config=[EnvSource("svc", environ=environ)])

    @app.http.get("/items/{item_id}")
    async def get_item(item_id: int) -> dict[str, int]:
        if item_id < 0:
            raise RuntimeError("broken")
        return {"id": item_id}

    @app.consume("orders")
    async def on_order(order: dict[str, Any]) -> None:
        return None

    return app


async def test_handlers_lists_every_transport_with_calls_errors_and_latency() -> None:
    async with TestApp(make_app()) as client:
        for item in (1, 2, 3, -1):
            await client.get(f"/items/{item}")
        rows = {row["name"]: row for row in (await client.get("/admin/handlers")).json()}
    item = rows["get_item"]
    assert item["transport"] == "http"
    assert item["binding"]["path"] == "/items/{item_id}"
    assert item["binding"]["methods"] == ["GET"]
    assert (item["calls"], item["errors"], item["in_flight"]) == (4, 1, 0)
    assert 0 < item["p50"] <= item["p99"] <= 0.005  # the first bucket holds them all
    order = rows["on_order"]
    assert order["transport"] == "messaging"
    assert order["binding"]["source"] == "orders"
    assert order.get("calls", 0) == 0


def test_quantiles_interpolate_inside_the_bucket_like_promql() -> None:
    inf = float("inf")
    assert quantile(0.5, []) is None
    assert quantile(0.5, [(1.0, 0), (inf, 0)]) is None
    # 10 observations: 4 up to 1 s, 6 between 1 and 2 s
    assert quantile(0.5, [(1.0, 4), (2.0, 10), (inf, 10)]) == pytest.approx(1 + 1 / 6)
    assert quantile(0.2, [(1.0, 4), (2.0, 10), (inf, 10)]) == pytest.approx(0.5)
    assert quantile(0.99, [(1.0, 4), (2.0, 5), (inf, 10)]) == 2.0  # in +Inf: the top bound


async def test_tasks_and_threads_with_and_without_stacks() -> None:
    release = threading.Event()
    worker = threading.Thread(target=release.wait, name="nanny-test", daemon=True)
    worker.start()
    try:
        async with TestApp(make_app()) as client:
            parked = asyncio.Event()
            waiting = asyncio.create_task(parked.wait(), name="parked-task")
            await asyncio.sleep(0)
            tasks = (await client.get("/admin/tasks")).json()
            named = {t["name"]: t for t in tasks}
            assert named["parked-task"]["coroutine"] == "Event.wait"
            assert "stack" not in named["parked-task"]
            deep = {t["name"]: t for t in (await client.get("/admin/tasks?stacks=1")).json()}
            assert any("in wait" in line for line in deep["parked-task"]["stack"])
            threads = (await client.get("/admin/threads?stacks=1")).json()
            assert threads[0]["name"] == "MainThread"
            nanny = next(t for t in threads if t["name"] == "nanny-test")
            assert nanny["daemon"] is True
            assert nanny["alive"] is True
            assert any("in wait" in line for line in nanny["stack"])
            parked.set()
            await waiting
    finally:
        release.set()
        worker.join()


async def test_a_log_level_changed_at_run_time(caplog: pytest.LogCaptureFixture) -> None:
    target = logging.getLogger("cordio.test.introspect")
    target.setLevel(logging.NOTSET)
    try:
        async with TestApp(make_app(ADMIN__TOKEN=TOKEN)) as client:
            listed = (await client.get("/admin/loggers", headers=GIVEN)).json()
            assert listed["loggers"]["cordio.test.introspect"]["configured"] is None
            assert "DEBUG" in listed["levels"]
            assert (
                await client.post("/admin/loggers/cordio.test.introspect", json={"level": "DEBUG"})
            ).status_code == 401
            changed = await client.post(
                "/admin/loggers/cordio.test.introspect", json={"level": "DEBUG"}, headers=GIVEN
            )
            assert changed.json() == {
                "cordio.test.introspect": {"configured": "DEBUG", "effective": "DEBUG"}
            }
            assert target.level == logging.DEBUG
            assert "set to DEBUG through the admin surface" in caplog.text
            for hostile, status in (
                (b'{"level": "LOUD"}', 400),
                (b'{"level": 10}', 400),
                (b'{"level": "DEBUG", "x": 1}', 400),
                (b"[]", 400),
                (b"DEBUG", 400),
                (b'{"level": "' + b"D" * 4096 + b'"}', 413),
            ):
                answer = await client.post(
                    "/admin/loggers/cordio.test.introspect", content=hostile, headers=GIVEN
                )
                assert answer.status_code == status, hostile
            missing = await client.post(
                "/admin/loggers/no.such.logger", json={"level": "DEBUG"}, headers=GIVEN
            )
            assert missing.status_code == 404
            assert "no.such.logger" not in logging.root.manager.loggerDict  # none made
            inherit = await client.post(
                "/admin/loggers/cordio.test.introspect", json={"level": None}, headers=GIVEN
            )
            assert inherit.json()["cordio.test.introspect"]["configured"] is None
            assert target.level == logging.NOTSET
    finally:
        target.setLevel(logging.NOTSET)


async def test_admin_routes_do_not_shadow_the_apps_own() -> None:
    app = App("svc")

    @app.http.get("/tasks")
    async def my_tasks() -> list[str]:
        return ["write docs"]

    async with TestApp(app) as client:
        assert (await client.get("/tasks")).json() == ["write docs"]
        assert (await client.get("/admin/tasks")).status_code == 200


async def test_threads_left_running_at_shutdown_are_logged_with_their_stacks(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = App("svc")
    release = threading.Event()
    started: list[threading.Thread] = []

    @app.http.post("/spawn")
    async def spawn() -> str:
        thread = threading.Thread(target=release.wait, name="forgotten-worker")
        thread.start()
        started.append(thread)
        return "started"

    try:
        async with TestApp(app) as client:
            await client.post("/spawn")
    finally:
        release.set()
        for thread in started:
            thread.join()
    (line,) = [r.getMessage() for r in caplog.records if "still running" in r.getMessage()]
    assert "'forgotten-worker'" in line
    assert "in wait" in line  # its stack


async def test_policies_show_breaker_state_and_bulkhead_occupancy() -> None:
    from cordio.policy import Bulkhead, CircuitBreaker, Timeout

    app = App("svc")
    pricing = app.policy(
        "pricing", breaker=CircuitBreaker(min_calls=2, window=4), timeout=Timeout(2.0)
    )
    stock = app.policy("stock", bulkhead=Bulkhead(max_concurrent=3, max_queued=1))
    inside, release = asyncio.Event(), asyncio.Event()

    @pricing
    async def quote() -> str:
        raise ConnectionError("pricing is down")

    @stock
    async def count() -> int:
        inside.set()
        await release.wait()
        return 7

    @app.http.get("/quote")
    async def get_quote() -> str:
        return await quote()

    async with TestApp(app) as client:
        for _ in range(2):
            assert (await client.get("/quote")).status_code == 500
        held = asyncio.create_task(count())
        await inside.wait()
        rows = (await client.get("/admin/policies")).json()
        release.set()
        assert await held == 7
    assert rows["pricing"]["breaker"]["state"] == "open"
    assert rows["pricing"]["breaker"]["failures"] == 2
    assert rows["pricing"]["timeout"] == {"seconds": 2.0}
    assert rows["stock"]["bulkhead"] == {
        "name": "stock",
        "running": 1,
        "waiting": 0,
        "rejected": 0,
        "max_concurrent": 3,
        "max_queued": 1,
    }
