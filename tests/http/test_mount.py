"""Mounting other ASGI apps; cordio resources in a mounted FastAPI app."""

# No "from __future__ import annotations": FastAPI must see the local Depends objects.

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, FastAPI
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from cordio import App
from cordio.testing import TestApp


class Inventory:
    def __init__(self) -> None:
        self.items = {"tea": 3}


async def test_fastapi_endpoint_gets_a_cordio_resource() -> None:
    app = App("svc")
    events: list[str] = []

    @app.resource
    async def inventory() -> AsyncIterator[Inventory]:
        events.append("setup")
        yield Inventory()
        events.append("teardown")

    api = FastAPI()
    stock = app.dependency(Inventory)

    @api.get("/stock/{item}")
    async def get_stock(item: str, inv: Annotated[Inventory, Depends(stock)]) -> dict[str, int]:
        return {item: inv.items.get(item, 0)}

    app.http.mount("/legacy", api)
    async with TestApp(app) as client:
        assert events == ["setup"]  # started although no cordio handler uses it
        response = await client.get("/legacy/stock/tea")
        assert response.json() == {"tea": 3}
        assert (await client.get("/health/live")).status_code == 200
    assert events == ["setup", "teardown"]


async def test_any_asgi_app_can_be_mounted() -> None:
    app = App("svc")

    async def hello(request: object) -> PlainTextResponse:
        return PlainTextResponse("hello")

    app.http.mount("/old/", Starlette(routes=[Route("/hello", hello)]))
    async with TestApp(app) as client:
        assert (await client.get("/old/hello")).text == "hello"
