"""log.broker: selected records, or only error facts, published through the app's
Publisher off the request path; a plain consumer receives them."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time

import pytest
from pydantic import SecretStr

from cordio import App, StartupError
from cordio.config import EnvSource
from cordio.messaging import Publisher
from cordio.settings import Settings
from cordio.testing import TestApp
from tests.conftest import need_server
from tests.eventually import eventually


class Vault(Settings, section="vault"):
    pin: SecretStr


TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
RABBIT = "amqp://guest:guest@127.0.0.1:5672/"


def _app(environ: dict[str, str]) -> App:
    app = App(
        "svc", config=[EnvSource("svc", environ={"SVC__LOG__BROKER__ENABLED": "true", **environ})]
    )

    @app.http.get("/orders/{n}")
    async def get_order(n: int, publisher: Publisher) -> dict[str, int]:
        log = logging.getLogger("svc.orders")
        log.info("looking up %d", n)
        log.warning("order %d is late, token=hunter2", n)
        if n < 0:
            raise LookupError(f"no order {n}")
        return {"n": n}

    return app


def _published(client: TestApp, destination: str) -> list[dict[str, object]]:
    return [json.loads(m.body) for m in client.broker.take(destination)]


async def test_records_at_the_level_reach_the_destination(restore_logging: None) -> None:
    app = _app({"SVC__LOG__BROKER__LEVEL": "WARNING", "SVC__LOG__BROKER__DESTINATION": "svc.logs"})
    async with TestApp(app, memory_broker=True) as client:
        assert (await client.get("/orders/7", headers={"traceparent": TRACEPARENT})).is_success
        assert (await client.get("/orders/-1")).status_code == 500
        got: list[dict[str, object]] = []

        def both() -> bool:
            got.extend(_published(client, "svc.logs"))
            return any(x["level"] == "ERROR" for x in got)

        await eventually(both, what="the records of both requests")
    late = [x for x in got if str(x["message"]).startswith("order 7 is late")]
    assert late == [
        {
            "ts": late[0]["ts"],
            "level": "WARNING",
            "logger": "svc.orders",
            "message": "order 7 is late, token=**********",
            "app": "svc",
            "handler": "get_order",
            "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
        }
    ]
    assert str(late[0]["ts"]).endswith("Z")
    assert not any(x["level"] == "INFO" for x in got)  # below the level
    (failure,) = [x for x in got if x["level"] == "ERROR"]
    assert failure["error"] == "LookupError"
    assert str(failure["exc"]).endswith("LookupError: no order -1")


async def test_only_error_facts_when_selected(restore_logging: None) -> None:
    app = _app({"SVC__LOG__BROKER__SELECT": "errors", "SVC__LOG__BROKER__LEVEL": "INFO"})
    async with TestApp(app, memory_broker=True) as client:
        await client.get("/orders/3")
        await client.get("/orders/-2")
        got: list[dict[str, object]] = []

        def error() -> bool:
            got.extend(_published(client, "logs"))
            return bool(got)

        await eventually(error, what="the error")
        runtime = client.runtime
        assert runtime is not None
        stats = runtime.transport_info()["log"]["log.broker"]
    # the warnings and INFO lines were not published: only the one carrying an exception
    assert [x["message"] for x in got] == ["handler get_order failed on GET /orders/-2"]
    assert stats["accepted"] == 1


async def test_an_app_without_messaging_does_not_start(restore_logging: None) -> None:
    app = App("svc", config=[EnvSource("svc", environ={"SVC__LOG__BROKER__ENABLED": "true"})])

    @app.http.get("/")
    async def root() -> None: ...

    with pytest.raises(StartupError, match=r"log\.broker\.enabled: the app has no running"):
        async with TestApp(app):
            pass


async def test_a_broker_that_is_down_never_slows_the_handler(restore_logging: None) -> None:
    environ = {
        "SVC__LOG__BROKER__ENABLED": "true",
        "SVC__LOG__BROKER__WRITE_TIMEOUT": "0.2",
        "SVC__LOG__BROKER__QUEUE_SIZE": "5",
        "SVC__LOG__BROKER__LEVEL": "WARNING",
        "SVC__LOG__BROKER__SHUTDOWN_TIMEOUT": "0.5",
    }
    app = App("svc", config=[EnvSource("svc", environ=environ)])

    @app.http.get("/work")
    async def work() -> dict[str, bool]:
        for i in range(10):
            logging.getLogger("svc.work").warning("step %d", i)
        return {"ok": True}

    @app.http.get("/publish")
    async def publish(publisher: Publisher) -> None: ...

    class StuckPublisher:
        """A publisher whose broker never confirms."""

        async def publish(self, *args: object, **kwargs: object) -> None:
            await asyncio.Event().wait()

    async with TestApp(app, overrides={Publisher: StuckPublisher()}) as client:
        for _ in range(20):
            start = time.perf_counter()
            assert (await client.get("/work")).is_success
            assert time.perf_counter() - start < 0.5
        runtime = client.runtime
        assert runtime is not None
        stats = runtime.transport_info()["log"]["log.broker"]
        assert stats["dropped"] > 0
        assert stats["written"] == 0


async def test_a_plain_consumer_receives_the_records_on_rabbitmq(restore_logging: None) -> None:
    need_server("RabbitMQ", "127.0.0.1", 5672)
    import aio_pika

    queue = "cordio.test.logs." + secrets.token_hex(4)
    app = _app(
        {
            "SVC__BROKER__URL": RABBIT,
            "SVC__LOG__BROKER__DESTINATION": queue,
            "SVC__LOG__BROKER__LEVEL": "WARNING",
            "SVC__LOG__BROKER__FLUSH_INTERVAL": "0.05",
        }
    )
    connection = await aio_pika.connect(RABBIT)
    try:
        async with TestApp(app) as client:
            assert (await client.get("/orders/5", headers={"traceparent": TRACEPARENT})).is_success
        # the shutdown published what was queued; a plain AMQP consumer reads it
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        got = []
        async with declared.iterator() as messages:
            async for message in messages:
                async with message.process():
                    got.append(json.loads(message.body))
                if any(str(x["message"]).startswith("order 5") for x in got):
                    break
        (late,) = [x for x in got if str(x["message"]).startswith("order 5")]
        assert late["message"] == "order 5 is late, token=**********"
        assert late["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
        assert late["handler"] == "get_order"
        await channel.queue_delete(queue)
    finally:
        await connection.close()


async def test_a_secret_setting_is_masked_in_what_is_published(restore_logging: None) -> None:
    environ = {
        "SVC__VAULT__PIN": "s3cr3t-v4lue",
        "SVC__LOG__BROKER__ENABLED": "true",
        "SVC__LOG__BROKER__LEVEL": "INFO",
        "SVC__LOG__CONSOLE__ENABLED": "false",  # the broker's own masking, nothing before it
    }
    app = App("svc", config=[EnvSource("svc", environ=environ)])

    @app.http.get("/leak")
    async def leak(vault: Vault, publisher: Publisher) -> None:
        # the raw value, without a key naming it: only the run's masker knows it
        logging.getLogger("svc.leak").info("unlocking with %s", vault.pin.get_secret_value())

    async with TestApp(app, memory_broker=True) as client:
        await client.get("/leak")
        got: list[dict[str, object]] = []

        def leaked() -> bool:
            got.extend(_published(client, "logs"))
            return any("unlocking" in str(x["message"]) for x in got)

        await eventually(leaked, what="the line")
    (line,) = [x for x in got if "unlocking" in str(x["message"])]
    assert line["message"] == "unlocking with **********"
