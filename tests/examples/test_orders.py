"""The orders example as users run it: ``cordio run``, real HTTP, SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import POSTGRES_URL, free_port, need_server
from tests.eventually import eventually_sync
from tests.examples.service_process import ServiceProcess

pytestmark = pytest.mark.slow


@contextlib.contextmanager
def new_schema() -> Iterator[str]:
    """A fresh schema on the real PostgreSQL; its URL, dropped at exit."""
    import asyncpg

    schema = "orders_" + secrets.token_hex(4)

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(POSTGRES_URL)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run(f"CREATE SCHEMA {schema}"))
    try:
        yield f"{POSTGRES_URL}?search_path={schema}"
    finally:
        asyncio.run(run(f"DROP SCHEMA {schema} CASCADE"))


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database per test: a SQLite file, or a new schema on the real PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/orders.db"
        return
    need_server("PostgreSQL", "127.0.0.1", 5432)
    with new_schema() as url:
        yield url


def service(tmp_path: Path, db_url: str, **env: str) -> ServiceProcess:
    return ServiceProcess(
        "examples.orders:app", tmp_path, free_port(), {"ORDERS__DB__URL": db_url, **env}
    )


def test_create_get_list_and_survive_restart(tmp_path: Path, db_url: str) -> None:
    svc = service(tmp_path, db_url)
    with svc:
        created = httpx.post(svc.url + "/orders", json={"item": "tea", "quantity": 2})
        assert created.status_code == 201, created.text
        order = created.json()
        assert order["item"] == "tea"
        assert order["status"] == "new"
        got = httpx.get(f"{svc.url}/orders/{order['id']}").json()
        assert {**got, "status": "new"} == order  # the fulfilment consumer may be done
        missing = httpx.get(svc.url + "/orders/999999")
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/problem+json"
        assert missing.json()["title"] == "Order not found"
        ready = httpx.get(svc.url + "/health/ready").json()
        assert ready["resources"]["db_adapter"]["status"] == "up"
    assert svc.proc is not None
    assert svc.proc.returncode == 0

    again = service(tmp_path, db_url)
    with again:
        listed = httpx.get(again.url + "/orders").json()
        assert [o["id"] for o in listed["orders"]] == [order["id"]]


def test_bad_input_is_rejected_and_service_keeps_serving(tmp_path: Path, db_url: str) -> None:
    with service(tmp_path, db_url) as svc:
        bad = httpx.post(
            svc.url + "/orders",
            content=b'{"item": "", "quantity": "lots"',
            headers={"content-type": "application/json"},
        )
        assert bad.status_code == 422
        invalid = httpx.post(svc.url + "/orders", json={"item": "", "quantity": 0})
        locations = [e["loc"] for e in invalid.json()["errors"]]
        assert locations == [["body", "item"], ["body", "quantity"]]
        page = httpx.get(svc.url + "/orders", params={"limit": 0, "offset": -1})
        assert [e["loc"] for e in page.json()["errors"]] == [
            ["query", "limit"],
            ["query", "offset"],
        ]
        assert (
            httpx.post(svc.url + "/orders", json={"item": "ok", "quantity": 1}).status_code == 201
        )


def test_sigterm_drains_fifty_slow_requests(tmp_path: Path, db_url: str) -> None:
    svc = service(tmp_path, db_url, ORDERS__SHOP__WORK_DELAY="1.5", ORDERS__SHUTDOWN__DELAY="0.5")
    svc.start()

    async def scenario() -> tuple[list[int], list[int]]:
        limits = httpx.Limits(max_connections=60)
        async with httpx.AsyncClient(base_url=svc.url, limits=limits, timeout=30) as client:
            posts = [
                asyncio.ensure_future(
                    client.post("/orders", json={"item": f"slow-{i}", "quantity": 1})
                )
                for i in range(50)
            ]
            await svc.wait_in_flight(50)
            svc.signal(signal.SIGTERM)
            seen = await svc.wait_not_ready()
            responses = await asyncio.gather(*posts)
        return [r.status_code for r in responses], seen

    statuses, readiness = asyncio.run(scenario())
    assert statuses == [201] * 50
    assert readiness[-1] == 503, readiness
    assert svc.wait(30) == 0, svc.output()
    log = [json.loads(line) for line in svc.output().splitlines() if line.startswith("{")]
    messages = [entry["message"] for entry in log]
    stopping = next(i for i, m in enumerate(messages) if "readiness is now false" in m)
    stopped = next(i for i, m in enumerate(messages) if m.endswith("stopped"))
    assert stopping < stopped

    with service(tmp_path, db_url) as again:
        listed = httpx.get(again.url + "/orders", params={"limit": 100}).json()["orders"]
        assert sorted(o["item"] for o in listed) == sorted(f"slow-{i}" for i in range(50))


def test_second_signal_forces_exit(tmp_path: Path) -> None:
    svc = service(
        tmp_path,
        f"sqlite:///{tmp_path}/orders.db",
        ORDERS__SHOP__WORK_DELAY="30",
        ORDERS__SHUTDOWN__GRACE="60",
        ORDERS__SHUTDOWN__DELAY="30",
    )
    svc.start()

    async def scenario() -> int:
        async with httpx.AsyncClient(base_url=svc.url, timeout=30) as client:
            post = asyncio.ensure_future(client.post("/orders", json={"item": "x", "quantity": 1}))
            await svc.wait_in_flight(1)
            svc.signal(signal.SIGTERM)
            assert (await svc.wait_not_ready())[-1] == 503  # the first signal was taken
            svc.signal(signal.SIGINT)
            code = await asyncio.to_thread(svc.wait, 10)
            post.cancel()
            return code

    assert asyncio.run(scenario()) == 128 + signal.SIGINT


def test_grace_period_cancels_and_exit_code_says_unclean(tmp_path: Path) -> None:
    svc = service(
        tmp_path,
        f"sqlite:///{tmp_path}/orders.db",
        ORDERS__SHOP__WORK_DELAY="30",
        ORDERS__SHUTDOWN__GRACE="0.5",
    )
    svc.start()

    async def scenario() -> tuple[int, int]:
        async with httpx.AsyncClient(base_url=svc.url, timeout=30) as client:
            post = asyncio.ensure_future(client.post("/orders", json={"item": "x", "quantity": 1}))
            await svc.wait_in_flight(1)
            svc.signal(signal.SIGTERM)
            code = await asyncio.to_thread(svc.wait, 20)
            return code, (await post).status_code

    code, status = asyncio.run(scenario())
    assert code == 3, svc.output()
    # the cancelled handler's request is answered by the server (uvicorn) with a 500
    assert status == 500
    assert "were cancelled" in svc.output()


def test_bad_configuration_fails_start_listing_every_field(tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "main.toml").write_text('[db]\npool_size = "many"\n')
    svc = service(
        tmp_path,
        f"sqlite:///{tmp_path}/orders.db",
        ORDERS__HTTP__MAX_BODY="-5",
        ORDERS__SHOP__WORK_DELAY="soon",
    )
    svc.start(wait=False)
    assert svc.wait(30) == 1
    out = svc.output()
    assert "db.pool_size" in out
    assert "main.toml" in out
    assert "http.max_body" in out
    assert "env:ORDERS__HTTP__MAX_BODY" in out
    assert "shop.work_delay" in out
    assert "env:ORDERS__SHOP__WORK_DELAY" in out


def test_unreachable_database_fails_start_cleanly(tmp_path: Path) -> None:
    port = free_port()
    svc = service(tmp_path, f"postgresql://postgres@127.0.0.1:{port}/none")
    svc.start(wait=False)
    assert svc.wait(60) == 1
    assert "db_adapter" in svc.output()


async def forget_orders_created(broker: str, url: str) -> None:
    """Remove what earlier runs left on the shared servers."""
    if broker == "rabbitmq":
        import aio_pika

        connection = await aio_pika.connect(url)
        async with connection:
            channel = await connection.channel()
            for suffix in ("", ".retry", ".dead-letter"):
                await channel.queue_delete("orders.created" + suffix)
    elif broker == "nats":
        import nats

        nc = await nats.connect(url)
        js = nc.jetstream()
        for stream in ("CORDIO_orders_created", "CORDIO_orders_created_dead-letter"):
            try:
                await js.delete_stream(stream)
            except Exception:  # not there
                pass
        await nc.close()


def wait_fulfilled(url: str, order_id: int) -> dict[str, object]:
    def fulfilled() -> dict[str, object] | None:
        got = httpx.get(f"{url}/orders/{order_id}").json()
        return dict(got) if got["status"] == "fulfilled" else None

    return eventually_sync(fulfilled, timeout=20, interval=0.05, what=f"order {order_id}")


@pytest.mark.parametrize("broker", ["memory", "rabbitmq", "nats"])
def test_new_orders_are_fulfilled_through_the_broker(tmp_path: Path, broker: str) -> None:
    urls = {
        "memory": "memory://",
        "rabbitmq": "amqp://guest:guest@127.0.0.1:5672/",
        "nats": "nats://127.0.0.1:4222",
    }
    if broker == "rabbitmq":
        need_server("RabbitMQ", "127.0.0.1", 5672)
    if broker == "nats":
        need_server("NATS", "127.0.0.1", 4222)
    asyncio.run(forget_orders_created(broker, urls[broker]))
    svc = service(tmp_path, f"sqlite:///{tmp_path}/orders.db", ORDERS__BROKER__URL=urls[broker])
    with svc:
        order = httpx.post(svc.url + "/orders", json={"item": "tea", "quantity": 1}).json()
        assert float(order["unit_price"]) > 0
        assert wait_fulfilled(svc.url, order["id"])["status"] == "fulfilled"
        again = httpx.post(f"{svc.url}/orders/{order['id']}/fulfil")
        assert again.status_code == 409
        assert again.json()["title"] == "Order already fulfilled"
        assert httpx.post(svc.url + "/orders/424242/fulfil").status_code == 404


def test_failing_pricing_opens_the_breaker_and_answers_503_fast(tmp_path: Path) -> None:
    svc = service(
        tmp_path,
        f"sqlite:///{tmp_path}/orders.db",
        ORDERS__PRICING__STUB_FAILURE_RATE="1",
        ORDERS__POLICIES__PRICING__BREAKER__CONSECUTIVE_FAILURES="2",
        ORDERS__POLICIES__PRICING__BREAKER__RECOVERY_TIME="60",
    )
    with svc:
        new = {"item": "tea", "quantity": 1}
        statuses = [httpx.post(svc.url + "/orders", json=new) for _ in range(3)]
        assert [r.status_code for r in statuses] == [503, 503, 503]
        assert statuses[0].json()["title"] == "Pricing unavailable"
        assert "circuit 'pricing' is open" in statuses[2].json()["detail"]
        assert "circuit breaker pricing: closed -> open" in svc.output()


@pytest.mark.parametrize("broker", ["rabbitmq", "nats"])
def test_fulfilment_replicas_compete_for_new_orders(tmp_path: Path, broker: str) -> None:
    """The API and two ``examples.orders.worker`` processes on one broker and one database:
    every order is fulfilled once, and the workers take their share."""
    urls = {"rabbitmq": "amqp://guest:guest@127.0.0.1:5672/", "nats": "nats://127.0.0.1:4222"}
    need_server("PostgreSQL", "127.0.0.1", 5432)
    need_server(broker, "127.0.0.1", {"rabbitmq": 5672, "nats": 4222}[broker])
    asyncio.run(forget_orders_created(broker, urls[broker]))
    with new_schema() as schema_url:
        run_replicas(tmp_path, {"ORDERS__DB__URL": schema_url, "ORDERS__BROKER__URL": urls[broker]})


def run_replicas(tmp_path: Path, env: dict[str, str]) -> None:
    workers = []
    for _ in range(2):
        port = free_port()
        worker = ServiceProcess(
            "examples.orders.worker:app", tmp_path, port, {**env, "ORDERS__ADMIN__PORT": str(port)}
        )
        worker.start()  # one after the other: each creates the table if missing
        workers.append(worker)
    api = ServiceProcess("examples.orders:app", tmp_path, free_port(), env)
    try:
        with api:
            ids = [
                httpx.post(api.url + "/orders", json={"item": "tea", "quantity": 1}).json()["id"]
                for _ in range(40)
            ]
            for order_id in ids:
                wait_fulfilled(api.url, order_id)
        for worker in workers:
            assert worker.stop() == 0
    finally:
        for worker in workers:
            worker.stop()
    by_workers = sum(w.output().count("fulfilled") for w in workers)
    assert by_workers > 0, "the worker replicas fulfilled nothing"
    assert by_workers + api.output().count("fulfilled") == 40  # each order once
