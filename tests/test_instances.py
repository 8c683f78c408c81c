"""Running resources: event scope, idle timeout, overrides, access while running."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from cordio import App, Context, DependencyError, ResourceUnavailableError
from cordio.testing import TestApp


class Tx:
    def __init__(self, trace: str) -> None:
        self.trace = trace


async def test_event_scope_per_call_and_teardown_sees_the_error() -> None:
    app = App("svc")
    seen: list[str] = []

    @app.resource
    async def pool() -> AsyncIterator[list[str]]:
        yield seen

    @app.resource(scope="event")
    async def tx(pool: list[str], ctx: Context) -> AsyncIterator[Tx]:
        pool.append("begin")
        try:
            yield Tx(ctx.handler)
        except ZeroDivisionError:
            pool.append("rollback")
            raise
        else:
            pool.append("commit")

    @app.http.get("/ok")
    async def ok(tx: Tx, again: Tx) -> bool:
        return tx is again  # one instance per call, shared within it

    @app.http.get("/fail")
    async def fail(tx: Tx) -> float:
        return 1 / 0

    async with TestApp(app) as client:
        assert (await client.get("/ok")).json() is True
        assert (await client.get("/ok")).json() is True
        assert (await client.get("/fail")).status_code == 500
    assert seen == ["begin", "commit", "begin", "commit", "begin", "rollback"]


async def test_app_resource_cannot_hold_event_resource_or_context() -> None:
    app = App("svc")

    @app.resource(scope="event")
    async def tx() -> Tx:
        return Tx("x")

    @app.resource
    async def service(tx: Tx) -> int:
        return 1

    @app.http.get("/")
    async def root(service: int) -> int:
        return service

    with pytest.raises(DependencyError, match="event-scoped resource 'tx'"):
        async with TestApp(app):
            pass

    other = App("svc")

    @other.resource
    async def needs_ctx(ctx: Context) -> int:
        return 1

    @other.http.get("/")
    async def root2(needs_ctx: int) -> int:
        return needs_ctx

    with pytest.raises(DependencyError, match="only event-scoped"):
        async with TestApp(other):
            pass


async def test_idle_resource_is_torn_down_and_set_up_again() -> None:
    app = App("svc")
    events: list[str] = []
    torn_down = asyncio.Event()

    @app.resource(idle_timeout=0.05)
    async def conn() -> AsyncIterator[int]:
        events.append("conn up")
        yield len(events)
        events.append("conn down")
        torn_down.set()

    @app.resource
    async def store(conn: int) -> AsyncIterator[str]:
        events.append("store up")
        yield f"store-{conn}"
        events.append("store down")

    @app.http.get("/")
    async def root(store: str) -> str:
        return store

    async with TestApp(app) as client:
        assert (await client.get("/")).json() == "store-1"
        await asyncio.wait_for(torn_down.wait(), 5)
        assert events == ["conn up", "store up", "store down", "conn down"]
        assert (await client.get("/")).json() == "store-5"
    assert events[4:] == ["conn up", "store up", "store down", "conn down"]


async def test_overrides_by_factory_type_and_name() -> None:
    app = App("svc")

    @app.resource
    async def conn() -> AsyncIterator[Tx]:
        yield Tx("real")

    @app.http.get("/")
    async def root(conn: Tx) -> str:
        return conn.trace

    async def fake() -> AsyncIterator[Tx]:
        yield Tx("factory")

    for target, replacement, expected in [
        (conn, Tx("value"), "value"),
        (Tx, fake, "factory"),
        ("conn", lambda: Tx("lambda"), "lambda"),
    ]:
        async with TestApp(app, overrides={target: replacement}) as client:
            assert (await client.get("/")).json() == expected
    async with TestApp(app) as client:
        assert (await client.get("/")).json() == "real"
    with pytest.raises(KeyError, match="not a registered resource"):
        app.override("nothing", 1)


async def test_get_and_spawn_while_running(caplog: pytest.LogCaptureFixture) -> None:
    app = App("svc")
    app.resource(Tx("x"), name="tx")

    @app.http.get("/")
    async def root(tx: Tx) -> str:
        return tx.trace

    with pytest.raises(ResourceUnavailableError, match=r"^App\('svc'\) is not running$"):
        app.get(Tx)
    cancelled = asyncio.Event()

    async def forever() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()

    async def boom() -> None:
        raise LookupError("tick failed")

    async with TestApp(app) as client:
        assert app.get("tx").trace == "x"
        app.spawn(forever(), name="forever")
        failing = app.spawn(boom(), name="boom")
        with pytest.raises(LookupError, match=r"^tick failed$"):
            await failing
        assert client.runtime is not None
        assert client.runtime.tasks.failed == 1
    assert cancelled.is_set()
    assert "background task 'boom' failed" in caplog.text
    coro = forever()
    with pytest.raises(ResourceUnavailableError, match=r"^App\('svc'\) is not running$"):
        app.spawn(coro, name="late")
    coro.close()
