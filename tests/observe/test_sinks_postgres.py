"""log.postgres: records in a PostgreSQL table, written in batches off the request path;
a database that is down never slows a handler; nothing accepted is lost at shutdown."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator

import pytest

from cordio import App, StartupError
from cordio.config import EnvSource
from cordio.context import Context, _current
from cordio.observe.logging import LogSettings, add_filters, configure_logging
from cordio.observe.sinks.postgres import PostgresSink
from cordio.observe.sinks.settings import PostgresSinkSettings
from cordio.testing import TestApp
from tests.eventually import eventually

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
DOWN = "postgresql://postgres@127.0.0.1:1/test"  # nothing listens on port 1


@pytest.fixture
async def table(postgres_url: str) -> AsyncIterator[str]:
    import asyncpg

    name = "cordio_log_" + secrets.token_hex(4)
    yield name
    conn = await asyncpg.connect(postgres_url)
    try:
        await conn.execute(f'DROP TABLE IF EXISTS "{name}"')
    finally:
        await conn.close()


async def _rows(url: str, table: str) -> list[dict[str, object]]:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        return [dict(r) for r in await conn.fetch(f'SELECT * FROM "{table}" ORDER BY id')]
    finally:
        await conn.close()


def _sink(dsn: str, table: str = "cordio_log", **options: object) -> PostgresSink:
    settings = PostgresSinkSettings(enabled=True, dsn=dsn, table=table, **options)  # type: ignore[arg-type]
    sink = PostgresSink(settings)
    add_filters(sink, "svc", LogSettings())
    return sink


async def test_an_app_writes_rows_with_trace_ids(
    restore_logging: None, postgres_url: str, table: str
) -> None:
    environ = {
        "SVC__LOG__POSTGRES__ENABLED": "true",
        "SVC__LOG__POSTGRES__DSN": postgres_url,
        "SVC__LOG__POSTGRES__TABLE": table,
        "SVC__LOG__POSTGRES__FLUSH_INTERVAL": "0.05",
    }
    app = App("svc", config=[EnvSource("svc", environ=environ)])

    @app.http.get("/orders/{n}")
    async def get_order(n: int) -> dict[str, int]:
        logging.getLogger("svc.orders").info("order %d", n, extra={"fields": {"n": n}})
        if n < 0:
            raise KeyError(n)
        return {"n": n}

    async with TestApp(app) as client:
        assert (await client.get("/orders/7", headers={"traceparent": TRACEPARENT})).is_success
        assert (await client.get("/orders/-1")).status_code == 500
        sink = client.runtime.transport_info()["log"]["log.postgres"]  # type: ignore[union-attr]
        assert sink["dropped"] == 0

        async def written() -> list[dict[str, object]]:
            rows = await _rows(postgres_url, table)
            return rows if any(r["level"] == "ERROR" for r in rows) else []

        rows = await eventually(written, what="the rows of both requests")  # while running
        scraped = (await client.get("/metrics")).text
        assert 'cordio_log_lines_total{destination="log.postgres",outcome="dropped"} 0.0' in (
            scraped
        )
        assert 'cordio_log_lines_total{destination="log.postgres",outcome="written"}' in scraped
    rows = await _rows(postgres_url, table)
    (order,) = [r for r in rows if r["message"] == "order 7"]
    assert order["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert order["handler"] == "get_order"
    assert order["app"] == "svc"
    assert order["logger"] == "svc.orders"
    assert json.loads(str(order["fields"])) == {"n": 7}
    (failure,) = [r for r in rows if r["level"] == "ERROR"]
    assert failure["error"] == "KeyError"
    assert str(failure["exc"]).endswith("KeyError: -1")
    assert failure["trace_id"] not in (None, order["trace_id"])
    assert any(str(r["message"]).startswith("svc stopping") for r in rows)  # shutdown too


def _median_call(log: logging.Logger, calls: int) -> float:
    """The median time of one ``log.info`` call, in seconds."""
    times = []
    for i in range(calls):
        start = time.perf_counter()
        log.info("call %d", i)
        times.append(time.perf_counter() - start)
    return sorted(times)[calls // 2]


async def test_a_database_that_is_down_never_slows_the_caller(restore_logging: None) -> None:
    console = io.StringIO()
    configure_logging("svc", LogSettings(format="json"), console)
    log = logging.getLogger("svc.busy")
    without = _median_call(log, 2000)  # the console alone
    sink = _sink(DOWN, queue_size=100, batch_size=10, flush_interval=0.01, warn_interval=0.2)
    await sink.start()
    try:
        assert "not reachable at start" in console.getvalue()
        with_sink = _median_call(log, 2000)
        # the writer tries (and fails) in the meantime
        await eventually(lambda: sink._failures >= 1, what="a failed write")
        with_sink = max(with_sink, _median_call(log, 3000))
        # a queue append on top of the console's work, never a connect or a wait
        assert with_sink < 3 * without + 50e-6, (with_sink, without)
        # the queue holds 100 (and one batch being retried); the rest were dropped
        assert sink.accepted <= 110
        assert sink.dropped >= 5000 - 110

        def warnings() -> list[dict[str, object]]:
            lines = [json.loads(x) for x in console.getvalue().splitlines()]
            return [x for x in lines if "log records lost" in str(x["message"])]

        first = await eventually(warnings, what="the dropped-records warning")
        assert first[0]["logger"] == "cordio.observe.sinks.postgres"
        assert "Connect" in str(first[0]["message"]) or "refused" in str(first[0]["message"])
        log.info("one more")  # dropped too: a second warning after warn_interval
        await eventually(lambda: len(warnings()) >= 2, what="a second, later warning")
    finally:
        await sink.stop()
    assert sink.written == 0
    assert not any(isinstance(h, PostgresSink) for h in logging.getLogger().handlers)


async def test_shutdown_writes_everything_accepted(
    restore_logging: None, postgres_url: str, table: str
) -> None:
    configure_logging("svc", LogSettings(format="json"), io.StringIO())
    # a flush interval longer than the test: only the shutdown writes
    sink = _sink(postgres_url, table, flush_interval=3600, batch_size=10_000, queue_size=20_000)
    await sink.start()
    for i in range(5000):
        logging.getLogger("svc.flush").info("record %d", i)
    assert sink.written == 0
    await sink.stop()
    assert (sink.accepted, sink.written, sink.dropped, sink.failed) == (5000, 5000, 0, 0)
    rows = await _rows(postgres_url, table)
    assert [r["message"] for r in rows] == [f"record {i}" for i in range(5000)]


async def test_a_hundred_tasks_logging_at_once(
    restore_logging: None, postgres_url: str, table: str
) -> None:
    configure_logging("svc", LogSettings(format="json"), io.StringIO())
    sink = _sink(postgres_url, table, flush_interval=0.01, batch_size=50)
    await sink.start()
    go = asyncio.Event()

    async def task(n: int) -> None:
        _current.set(Context(f"h{n}", "test", trace_id=f"{n:032x}"))
        await go.wait()
        for i in range(20):
            logging.getLogger("svc.many").info("task %d line %d", n, i)
            await asyncio.sleep(0)

    tasks = [asyncio.create_task(task(n)) for n in range(100)]
    await asyncio.sleep(0)
    go.set()
    await asyncio.gather(*tasks)
    await sink.stop()
    assert sink.dropped == sink.failed == 0
    rows = await _rows(postgres_url, table)
    assert len(rows) == 2000
    for row in rows:
        n = int(str(row["message"]).split()[1])
        assert row["trace_id"] == f"{n:032x}"
        assert row["handler"] == f"h{n}"


async def test_logging_from_threads_reaches_the_table(
    restore_logging: None, postgres_url: str, table: str
) -> None:
    configure_logging("svc", LogSettings(format="json"), io.StringIO())
    sink = _sink(postgres_url, table, flush_interval=0.01, batch_size=20)
    await sink.start()

    def work(n: int) -> None:
        for i in range(50):
            logging.getLogger("svc.thread").info("thread %d line %d", n, i)

    await asyncio.gather(*(asyncio.to_thread(work, n) for n in range(8)))
    await eventually(lambda: sink.written == 400, what="400 rows written")
    await sink.stop()
    assert len(await _rows(postgres_url, table)) == 400


async def test_hostile_text_reaches_the_table_masked_and_bounded(
    restore_logging: None, postgres_url: str, table: str
) -> None:
    configure_logging("svc", LogSettings(format="json"), io.StringIO())
    settings = PostgresSinkSettings(enabled=True, dsn=postgres_url, table=table)  # type: ignore[arg-type]
    sink = PostgresSink(settings)
    add_filters(sink, "svc", LogSettings(max_message_chars=1000))
    await sink.start()
    log = logging.getLogger("svc.hostile")
    log.info("huge %s", "y" * 1_000_000)
    log.info("bytes %s nul \x00 end", b"caf\xe9".decode("utf-8", "surrogateescape"))
    log.info("odd fields", extra={"fields": {"k\x00": "v\x00", "b": b"\xff", "o": object()}})
    log.warning("connect postgresql://app:hunter2@db/orders with password=hunter2")
    try:
        raise ValueError("token=hunter2 refused")
    except ValueError:
        log.exception("login failed")
    await sink.stop()
    assert sink.failed == 0
    rows = await _rows(postgres_url, table)
    huge, odd, fields, secret, failed = rows
    assert len(str(huge["message"])) < 1100
    assert str(huge["message"]).endswith("more characters]")
    assert odd["message"] == "bytes caf\\udce9 nul \\x00 end"
    assert json.loads(str(fields["fields"]))["k\\x00"] == "v\\x00"
    assert "hunter2" not in repr(rows)
    assert "password=**********" in str(secret["message"])
    assert "token=**********" in str(failed["exc"])


async def test_the_resource_named_must_exist(restore_logging: None) -> None:
    environ = {
        "SVC__LOG__POSTGRES__ENABLED": "true",
        "SVC__LOG__POSTGRES__RESOURCE": "logdb",
    }
    app = App("svc", config=[EnvSource("svc", environ=environ)])
    with pytest.raises(StartupError, match=r"log\.postgres\.resource: the app has no running"):
        async with TestApp(app):
            pass


def test_settings_need_a_dsn_or_a_resource_and_a_plain_table_name() -> None:
    with pytest.raises(ValueError, match="either dsn or resource"):
        PostgresSinkSettings(enabled=True)
    with pytest.raises(ValueError, match="table name"):
        PostgresSinkSettings(table="logs; DROP TABLE x")
    assert PostgresSinkSettings(table="audit.log_lines").table == "audit.log_lines"


async def test_an_app_serves_while_its_log_database_is_down(restore_logging: None) -> None:
    environ = {
        "SVC__LOG__POSTGRES__ENABLED": "true",
        "SVC__LOG__POSTGRES__DSN": DOWN,
        "SVC__LOG__POSTGRES__QUEUE_SIZE": "20",
        "SVC__LOG__POSTGRES__SHUTDOWN_TIMEOUT": "0.5",
    }
    app = App("svc", config=[EnvSource("svc", environ=environ)])

    @app.http.get("/work")
    async def work() -> dict[str, bool]:
        for i in range(10):
            logging.getLogger("svc.work").info("step %d", i)
        return {"ok": True}

    client = TestApp(app)
    await client.__aenter__()
    try:
        for _ in range(50):
            start = time.perf_counter()
            assert (await client.get("/work")).is_success
            assert time.perf_counter() - start < 0.5
        assert client.runtime is not None
        info = client.runtime.transport_info()["log"]["log.postgres"]
        assert info["dropped"] > 0
    finally:
        start = time.perf_counter()
        await client.__aexit__(None, None, None)
    assert time.perf_counter() - start < 2  # the shutdown waits shutdown_timeout at most
