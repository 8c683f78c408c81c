"""``app.asgi``: lifespan drives start and stop; requests go to the handlers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx

from cordio import App
from cordio.testing import TestApp  # noqa: F401 - the same app runs under both


def make_app(events: list[str], *, fail: bool = False) -> App:
    app = App("svc")

    @app.resource
    async def thing() -> AsyncIterator[str]:
        if fail:
            raise ConnectionRefusedError("database down")
        events.append("setup")
        yield "thing"
        events.append("teardown")

    @app.http.get("/thing")
    async def get_thing(thing: str) -> str:
        return thing

    return app


class Lifespan:
    """Drive an ASGI app's lifespan protocol by hand."""

    def __init__(self, asgi: Any) -> None:
        self.asgi = asgi
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None

    async def send(self, message_type: str) -> dict[str, Any]:
        if self.task is None:
            scope = {"type": "lifespan", "asgi": {"version": "3.0"}}
            self.task = asyncio.ensure_future(self.asgi(scope, self.inbox.get, self.outbox.put))
        await self.inbox.put({"type": message_type})
        return await asyncio.wait_for(self.outbox.get(), 10)


async def test_lifespan_starts_and_stops_the_app() -> None:
    events: list[str] = []
    asgi = make_app(events).asgi
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=asgi), base_url="http://t")
    before = await client.get("/thing")
    assert before.status_code == 503
    assert before.headers["content-type"] == "application/problem+json"
    lifespan = Lifespan(asgi)
    assert (await lifespan.send("lifespan.startup"))["type"] == "lifespan.startup.complete"
    assert events == ["setup"]
    assert (await client.get("/thing")).json() == "thing"
    assert (await client.get("/health/ready")).json()["status"] == "ready"
    assert (await lifespan.send("lifespan.shutdown"))["type"] == "lifespan.shutdown.complete"
    assert events == ["setup", "teardown"]
    assert (await client.get("/thing")).status_code == 503
    await client.aclose()


async def test_startup_failure_is_reported_to_the_server() -> None:
    events: list[str] = []
    lifespan = Lifespan(make_app(events, fail=True).asgi)
    answer = await lifespan.send("lifespan.startup")
    assert answer["type"] == "lifespan.startup.failed"
    assert "database down" in answer["message"]
    assert events == []
