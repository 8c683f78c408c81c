"""app.http.add_middleware: any ASGI middleware, in a documented order."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.middleware.gzip import GZipMiddleware

from cordio import App
from cordio.config import EnvSource
from cordio.testing import TestApp


class Tag:
    """Appends its name to ``x-seen`` on the way out and records the order on the way in."""

    def __init__(self, app: Any, *, name: str, seen: list[str]) -> None:
        self.app = app
        self.name = name
        self.seen = seen

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.seen.append(self.name)

        async def tagged(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"x-seen", self.name.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, tagged)


async def test_middleware_runs_in_the_order_added_inside_the_limits() -> None:
    environ = {"SVC__HTTP__MAX_BODY": "10"}
    app = App("svc", config=[EnvSource("svc", environ=environ)])
    seen: list[str] = []
    app.http.add_middleware(Tag, name="outer", seen=seen)
    app.http.add_middleware(Tag, name="inner", seen=seen)
    app.http.add_middleware(GZipMiddleware, minimum_size=10)

    @app.http.post("/echo")
    async def echo(body: dict[str, Any]) -> dict[str, Any]:
        return body

    @app.http.get("/big")
    async def big() -> str:
        return "x" * 1000

    async with TestApp(app) as client:
        ok = await client.post("/echo", json={"a": 1})
        assert ok.json() == {"a": 1}
        # the first added sees the request first and the response last
        assert seen == ["outer", "inner"]
        assert ok.headers.get_list("x-seen") == ["inner", "outer"]
        refused = await client.post("/echo", content=b'{"a": "' + b"x" * 50 + b'"}')
        assert refused.status_code == 413
        assert seen == ["outer", "inner"], "a middleware saw a request the limits refused"
        zipped = await client.get("/big", headers={"accept-encoding": "gzip"})
        assert zipped.headers["content-encoding"] == "gzip"
        assert zipped.json() == "x" * 1000


def test_add_middleware_needs_a_class() -> None:
    app = App("svc")
    with pytest.raises(TypeError, match="add_middleware needs an ASGI middleware class"):
        app.http.add_middleware("GZipMiddleware")
