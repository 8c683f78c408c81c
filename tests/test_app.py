"""App registration and the full start/stop order on real resources."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from cordio import App, Settings
from cordio.config import EnvSource
from cordio.testing import TestApp


class Greeting(Settings, section="greeting"):
    word: str = "hello"


async def test_handler_gets_body_resource_and_settings() -> None:
    app = App("svc")
    events: list[str] = []

    class Counter:
        def __init__(self) -> None:
            self.value = 0

    @app.resource
    async def counter() -> AsyncIterator[Counter]:
        events.append("setup")
        yield Counter()
        events.append("teardown")

    @app.http.get("/hit/{who}")
    async def hit(who: str, counter: Counter, greeting: Greeting) -> dict[str, object]:
        counter.value += 1
        return {"text": f"{greeting.word} {who}", "count": counter.value}

    async with TestApp(app) as client:
        assert events == ["setup"]
        first = await client.get("/hit/ann")
        second = await client.get("/hit/bob")
    assert first.json() == {"text": "hello ann", "count": 1}
    assert second.json() == {"text": "hello bob", "count": 2}
    assert events == ["setup", "teardown"]


async def test_unused_resource_never_starts() -> None:
    app = App("svc")
    started: list[str] = []

    @app.resource
    async def unused() -> AsyncIterator[int]:
        started.append("unused")
        yield 1

    @app.http.get("/")
    async def root() -> str:
        return "ok"

    async with TestApp(app) as client:
        assert (await client.get("/")).json() == "ok"
    assert started == []


def test_plain_value_needs_a_name() -> None:
    app = App("svc")
    with pytest.raises(ValueError, match="needs a name"):
        app.resource(42)


async def test_unused_resources_are_not_even_planned() -> None:
    class Unused(Settings, section="unused"):
        port: int = 1

    app = App("svc", config=[EnvSource("svc", environ={"SVC__UNUSED__PORT": "not a port"})])

    @app.resource
    async def orphan(cfg: Unused, nothing_provides_this: bytes) -> int:
        return cfg.port

    @app.http.get("/")
    async def root() -> str:
        return "ok"

    async with TestApp(app) as client:
        assert (await client.get("/")).json() == "ok"
        assert client.runtime is not None
        assert "unused" not in client.runtime.config.sections


async def test_app_config_explains_values_running_or_not() -> None:
    app = App("svc", config=[EnvSource("svc", environ={"SVC__GREETING__WORD": "hi"})])

    @app.http.get("/")
    async def root(greeting: Greeting) -> str:
        return greeting.word

    assert app.config.explain("greeting.word") == "env:SVC__GREETING__WORD"
    assert app.config.explain("shutdown.grace") == "default"
    async with TestApp(app) as client:
        assert (await client.get("/")).json() == "hi"
        assert app.config is client.runtime.config  # type: ignore[union-attr]
