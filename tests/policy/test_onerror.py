"""OnError: break, respond and commit by exception type, in handlers, resources and blocks."""

from __future__ import annotations

import asyncio
import logging

import pytest

from cordio import App
from cordio.policy import ErrorResponse, OnError, fallback, ignore, record, respond
from cordio.testing import TestApp
from tests.eventually import eventually


class ShopError(Exception):
    pass


class NotFound(ShopError):
    pass


class Conflict(ShopError):
    pass


class DbTimeout(Exception):
    pass


class Store:
    @OnError({DbTimeout: record(logging.WARNING, stack=False)})
    async def load(self, key: str) -> str:
        if key == "slow":
            raise DbTimeout("db took too long")
        if key == "missing":
            raise NotFound(f"no {key}")
        return key


def make_app() -> App:
    app = App("svc")
    app.resource(Store(), name="store")
    app.on_error({ShopError: respond(400, title="Shop error"), KeyError: fallback("default")})

    @app.http.get("/items/{key}")
    @OnError({NotFound: respond(404, title="Item not found"), DbTimeout: respond(503)})
    async def get_item(key: str, store: Store) -> str:
        if key == "conflict":
            raise Conflict("already sold")
        if key == "nokey":
            raise KeyError(key)
        if key == "boom":
            raise RuntimeError("secret internals")
        return await store.load(key)

    return app


async def test_most_specific_class_wins_and_handler_mapping_comes_first(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    async with TestApp(make_app()) as client:
        missing = await client.get("/items/missing")
        conflict = await client.get("/items/conflict")
        fell_back = await client.get("/items/nokey")
        ok = await client.get("/items/tea")
    assert missing.status_code == 404
    assert missing.json()["title"] == "Item not found"
    assert missing.json()["detail"] == "no missing"
    assert conflict.status_code == 400  # app mapping, by the base class ShopError
    assert conflict.json()["title"] == "Shop error"
    assert fell_back.json() == "default"
    assert ok.json() == "tea"
    logged = [r for r in caplog.records if r.name == "cordio.errors"]
    assert [(r.levelno, r.exc_info is None) for r in logged] == [
        (logging.INFO, True),
        (logging.INFO, True),
        (logging.INFO, True),
    ]


async def test_resource_layer_records_then_handler_layer_responds(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with TestApp(make_app()) as client:
        response = await client.get("/items/slow")
    assert response.status_code == 503
    assert response.json()["title"] == "Service Unavailable"
    assert "detail" not in response.json()
    assert "db took too long" not in response.text  # 5xx: no detail
    logged = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "cordio.errors"]
    assert logged == [
        ("WARNING", "Store.load: DbTimeout"),
        ("ERROR", "get_item: DbTimeout answered 503"),
    ]


async def test_unmapped_errors_are_500_without_internals() -> None:
    async with TestApp(make_app()) as client:
        response = await client.get("/items/boom")
    assert response.status_code == 500
    body = response.json()
    assert set(body) == {"type", "title", "status", "instance", "trace_id"}  # no detail
    assert (body["title"], body["status"], body["instance"]) == (
        "Internal Server Error",
        500,
        "/items/boom",
    )
    assert "secret" not in response.text


async def test_ignore_and_fallback_on_any_function(caplog: pytest.LogCaptureFixture) -> None:
    @OnError({LookupError: ignore(), ValueError: fallback(0)})
    async def parse(text: str) -> int | None:
        if not text:
            raise LookupError("empty")
        return int(text)

    assert await parse("") is None
    assert await parse("x") == 0
    assert await parse("7") == 7
    assert [r.levelname for r in caplog.records if r.name == "cordio.errors"] == ["INFO"]


async def test_async_with_suppresses_fallbacks_and_passes_responses_up() -> None:
    async with OnError({ValueError: ignore()}):
        raise ValueError("ignored")
    with pytest.raises(ErrorResponse) as info:
        async with OnError({ValueError: respond(422)}):
            raise ValueError("bad value")
    assert info.value.action.status == 422
    assert info.value.detail == "bad value"
    with pytest.raises(TypeError, match=r"^not mapped$"):
        async with OnError({ValueError: ignore()}):
            raise TypeError("not mapped")


def test_bad_mappings() -> None:
    with pytest.raises(TypeError, match="Exception classes"):
        OnError({"ValueError": ignore()})  # type: ignore[dict-item]
    with pytest.raises(TypeError, match="ErrorAction"):
        OnError({ValueError: 404})  # type: ignore[dict-item]


async def test_one_onerror_shared_by_100_tasks_answers_each_calls_own_error() -> None:
    policy = OnError({NotFound: fallback("none"), Conflict: respond(409), DbTimeout: ignore()})
    turn = asyncio.Event()
    waiting = 0
    errors: list[type[Exception] | None] = [NotFound, Conflict, DbTimeout, None, KeyError]

    async def work(i: int) -> str:
        nonlocal waiting
        waiting += 1
        await turn.wait()
        error = errors[i % 5]
        if error is not None:
            raise error(f"call {i}")
        return f"ok {i}"

    decorated = policy(work)

    async def as_block(i: int) -> object:
        async with policy:
            return await work(i)
        return "suppressed"

    async def run(i: int) -> object:
        try:
            return await (decorated if i % 2 else as_block)(i)
        except ErrorResponse as exc:
            return (exc.action.status, str(exc.error))
        except KeyError as exc:
            return f"raised {exc}"

    tasks = [asyncio.ensure_future(run(i)) for i in range(100)]
    await eventually(lambda: waiting == 100, what="100 calls inside the policy")
    turn.set()
    results = await asyncio.gather(*tasks)
    for i, result in enumerate(results):
        kind = i % 5
        if kind == 0:
            assert result == ("none" if i % 2 else "suppressed"), i
        elif kind == 1:
            assert result == (409, f"call {i}"), i
        elif kind == 2:
            assert result == (None if i % 2 else "suppressed"), i
        elif kind == 3:
            assert result == f"ok {i}", i
        else:
            assert result == f"raised 'call {i}'", i


@pytest.mark.parametrize("order", ["below", "above"])
async def test_on_error_applies_above_or_below_an_http_route(order: str) -> None:
    from cordio.policy import Retry

    app = App("svc")
    calls: list[int] = []
    rule = OnError({NotFound: respond(404, title="No such item")})
    retry = Retry(attempts=2, initial_delay=0, on=(DbTimeout,))

    async def get_item(key: str) -> str:
        calls.append(1)
        if len(calls) == 1:
            raise DbTimeout("first call")
        raise NotFound(f"no {key}")

    route = app.http.get("/items/{key}")
    if order == "below":  # the FastAPI way: route decorator on top
        route(rule(retry(get_item)))
    else:
        rule(retry(route(get_item)))
    async with TestApp(app) as client:
        response = await client.get("/items/x")
    assert response.status_code == 404
    assert response.json()["title"] == "No such item"
    assert len(calls) == 2  # the retry ran too


@pytest.mark.parametrize("order", ["below", "above"])
async def test_on_error_applies_above_or_below_a_consumer(order: str) -> None:
    from cordio.config import EnvSource
    from cordio.messaging import MemoryBroker, Publisher

    app = App("svc", config=[EnvSource("svc", environ={"SVC__BROKER__REQUEUE_DELAY": "0"})])
    rule = OnError({NotFound: fallback(None)})
    calls: list[int] = []

    async def job(payload: dict[str, int]) -> None:
        calls.append(payload["n"])
        raise NotFound("already gone")

    consume = app.consume("jobs")
    if order == "below":
        consume(rule(job))
    else:
        rule(consume(job))
    async with TestApp(app) as client:
        await app.get(Publisher).publish("jobs", {"n": 1})
        await client.drained()
        broker: MemoryBroker = app.get("broker")
        assert broker.depth("jobs.dead-letter") == 0  # the fallback acked it
    assert calls == [1]


async def test_a_layer_above_a_consumer_applies() -> None:
    from cordio.config import EnvSource
    from cordio.messaging import MemoryBroker, Publisher
    from cordio.policy import current_layers, layer

    app = App("svc", config=[EnvSource("svc", environ={"SVC__BROKER__REQUEUE_DELAY": "0"})])
    seen: list[tuple[str, ...]] = []

    @layer("jobs", on_error={NotFound: fallback(None)})
    @app.consume("jobs")
    async def job(payload: dict[str, int]) -> None:
        seen.append(current_layers())
        raise NotFound("already gone")

    async with TestApp(app) as client:
        await app.get(Publisher).publish("jobs", {"n": 1})
        await client.drained()
        broker: MemoryBroker = app.get("broker")
        assert broker.depth("jobs.dead-letter") == 0  # the layer's fallback acked it
    assert seen == [("jobs",)]
