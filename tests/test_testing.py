"""The test kit users import: TestApp."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from cordio import App, StartupError
from cordio.config import EnvSource
from cordio.testing import TestApp


def make_app() -> App:
    app = App("svc")

    @app.resource
    async def greeting() -> AsyncIterator[str]:
        yield "real"

    @app.http.get("/")
    async def root(greeting: str) -> str:
        return greeting

    return app


async def test_requests_outside_async_with_are_refused() -> None:
    client = TestApp(make_app())
    with pytest.raises(RuntimeError, match="not running"):
        await client.get("/")
    await client.aclose()


async def test_overrides_apply_inside_and_are_restored_after() -> None:
    app = make_app()
    async with TestApp(app, overrides={"greeting": "fake"}) as client:
        assert (await client.get("/")).json() == "fake"
    assert app.overrides == {}
    async with TestApp(app) as client:
        assert (await client.get("/")).json() == "real"


async def test_overrides_are_restored_when_start_fails() -> None:
    app = make_app()

    async def broken() -> AsyncIterator[str]:
        raise ConnectionRefusedError("no server")
        yield "never"

    with pytest.raises(StartupError, match="no server"):
        async with TestApp(app, overrides={"greeting": broken}):
            pass
    assert app.overrides == {}


async def test_config_sources_replace_the_apps() -> None:
    app = make_app()
    config = [EnvSource("svc", environ={"SVC__SHUTDOWN__GRACE": "1.5"})]
    async with TestApp(app, config=config) as client:
        assert client.runtime is not None
        assert client.runtime.config.explain("shutdown.grace") == "env:SVC__SHUTDOWN__GRACE"
        assert client.runtime.config.sections["shutdown"].grace == 1.5  # type: ignore[attr-defined]
