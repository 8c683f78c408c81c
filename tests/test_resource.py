"""Every kind of resource definition: setup, the instance, teardown."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from types import TracebackType

import pytest

from cordio import App, Reconnect, StartupError
from cordio.resource import make_spec
from cordio.testing import TestApp


class Conn:
    def __init__(self, label: str) -> None:
        self.label = label


async def test_every_kind_starts_and_stops() -> None:
    events: list[str] = []
    app = App("svc")

    @app.resource
    async def agen() -> AsyncIterator[Conn]:
        events.append("agen up")
        yield Conn("agen")
        events.append("agen down")

    @app.resource
    def gen() -> Iterator[int]:
        events.append("gen up")
        yield 2
        events.append("gen down")

    @app.resource
    async def coro() -> float:
        return 3.0

    @app.resource
    def plain() -> bytes:
        return b"4"

    class Client:
        def __init__(self, plain: bytes) -> None:
            self.plain = plain

    class Pool:
        def __init__(self, coro: float) -> None:
            self.coro = coro
            self.open = False

        async def __aenter__(self) -> Pool:
            self.open = True
            events.append("pool up")
            return self

        async def __aexit__(
            self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
        ) -> None:
            self.open = False
            events.append("pool down")

    app.resource(Client)
    app.resource(Pool)
    app.resource({"k": "v"}, name="settings_map")

    @app.http.get("/")
    async def root(
        agen: Conn, gen: int, client: Client, pool: Pool, settings_map: dict[str, str]
    ) -> list[object]:
        return [agen.label, gen, client.plain.decode(), pool.coro, pool.open, settings_map]

    async with TestApp(app) as test:
        assert (await test.get("/")).json() == ["agen", 2, "4", 3.0, True, {"k": "v"}]
    assert sorted(events[:3]) == ["agen up", "gen up", "pool up"]
    assert sorted(events[3:]) == ["agen down", "gen down", "pool down"]


async def test_independent_resources_start_concurrently() -> None:
    app = App("svc")
    a_up, b_up = asyncio.Event(), asyncio.Event()

    @app.resource
    async def a() -> AsyncIterator[str]:
        a_up.set()
        await asyncio.wait_for(b_up.wait(), 5)  # deadlocks unless b starts meanwhile
        yield "a"

    @app.resource
    async def b() -> AsyncIterator[int]:
        b_up.set()
        await asyncio.wait_for(a_up.wait(), 5)
        yield 1

    @app.http.get("/")
    async def root(a: str, b: int) -> str:
        return a * b

    async with TestApp(app) as client:
        assert (await client.get("/")).json() == "a"


async def test_teardown_is_reverse_of_start_and_failures_are_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    events: list[str] = []
    app = App("svc")

    @app.resource
    async def first() -> AsyncIterator[str]:
        yield "1"
        events.append("first down")

    @app.resource
    async def second(first: str) -> AsyncIterator[int]:
        yield 2
        events.append("second down")
        raise RuntimeError("close failed")

    @app.resource
    async def third(second: int) -> AsyncIterator[float]:
        yield 3.0
        events.append("third down")

    @app.http.get("/")
    async def root(third: float) -> float:
        return third

    async with TestApp(app) as client:
        runtime = client.runtime
    assert events == ["third down", "second down", "first down"]
    assert runtime is not None
    assert runtime.clean is False
    assert "resource second failed to tear down" in caplog.text


async def test_failing_setup_tears_down_what_started() -> None:
    events: list[str] = []
    app = App("svc")

    @app.resource
    async def good() -> AsyncIterator[str]:
        events.append("good up")
        yield "g"
        events.append("good down")

    @app.resource
    async def bad(good: str) -> AsyncIterator[int]:
        raise ValueError("bad config")
        yield 1

    @app.http.get("/")
    async def root(bad: int) -> int:
        return bad

    with pytest.raises(
        StartupError, match=r"^resource 'bad' failed to start: ValueError\('bad config'\)$"
    ) as info:
        async with TestApp(app):
            pass
    assert type(info.value.__cause__) is ValueError
    assert events == ["good up", "good down"]


async def test_reconnect_retries_listed_errors_only() -> None:
    attempts: list[str] = []

    def flaky(failures: int, error: type[Exception]) -> App:
        app = App("svc")

        @app.resource(reconnect=Reconnect(attempts=3, initial_delay=0))
        async def conn() -> AsyncIterator[Conn]:
            attempts.append("try")
            if len(attempts) <= failures:
                raise error("refused")
            yield Conn("ok")

        @app.http.get("/")
        async def root(conn: Conn) -> str:
            return conn.label

        return app

    async with TestApp(flaky(2, ConnectionRefusedError)) as client:
        assert (await client.get("/")).json() == "ok"
    assert len(attempts) == 3

    attempts.clear()
    with pytest.raises(
        StartupError,
        match=r"^resource 'conn' failed to start: ConnectionRefusedError\('refused'\)$",
    ) as info:
        async with TestApp(flaky(5, ConnectionRefusedError)):
            pass
    assert type(info.value.__cause__) is ConnectionRefusedError  # the last attempt's error
    assert len(attempts) == 3

    attempts.clear()
    with pytest.raises(
        StartupError, match=r"^resource 'conn' failed to start: ValueError\('refused'\)$"
    ):
        async with TestApp(flaky(5, ValueError)):
            pass
    assert len(attempts) == 1


def test_invalid_options() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Reconnect(attempts=0)
    with pytest.raises(ValueError, match="idle_timeout"):
        make_spec(lambda: 1, idle_timeout=0)
    with pytest.raises(ValueError, match="idle_timeout"):
        make_spec(lambda: 1, idle_timeout=5, scope="event")
    with pytest.raises(ValueError, match="scope"):
        make_spec(lambda: 1, scope="request")  # type: ignore[arg-type]
    app = App("svc")
    app.resource(1, name="x")
    with pytest.raises(ValueError, match="already registered"):
        app.resource(2, name="x")


def test_provided_type_from_annotations() -> None:
    async def agen() -> AsyncIterator[Conn]:
        yield Conn("x")

    def plain() -> Conn:
        return Conn("x")

    assert make_spec(agen).provides is Conn
    assert make_spec(plain).provides is Conn
    assert make_spec(Conn).provides is Conn
    assert make_spec(Conn("v"), name="v").provides is Conn
