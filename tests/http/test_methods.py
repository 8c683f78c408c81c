"""Methods of a path: 405 with ``Allow`` (RFC 9110 §15.5.6), HEAD, OPTIONS."""

from __future__ import annotations

import pytest

from cordio import App
from cordio.testing import TestApp


def orders_app() -> App:
    app = App("svc")

    @app.http.post("/orders", status_code=201)
    async def create() -> dict[str, int]:
        return {"id": 1}

    @app.http.get("/orders")
    async def listing() -> list[int]:
        return [1, 2]

    @app.http.delete("/orders/{order_id}", status_code=204)
    async def remove(order_id: int) -> None:
        return None

    return app


async def test_405_lists_every_method_of_the_path_whichever_handler_came_first() -> None:
    async with TestApp(orders_app()) as client:
        for method in ("PUT", "PATCH", "DELETE"):
            response = await client.request(method, "/orders")
            assert response.status_code == 405, method
            assert response.headers["allow"] == "GET, HEAD, OPTIONS, POST"
            assert response.headers["content-type"] == "application/problem+json"
            assert response.json()["status"] == 405
        other = await client.get("/orders/7")
        assert other.status_code == 405
        assert other.headers["allow"] == "DELETE, OPTIONS"


async def test_each_method_reaches_its_own_handler() -> None:
    async with TestApp(orders_app()) as client:
        assert (await client.post("/orders")).json() == {"id": 1}
        assert (await client.get("/orders")).json() == [1, 2]
        assert (await client.delete("/orders/3")).status_code == 204


async def test_head_is_answered_like_get_without_a_body() -> None:
    async with TestApp(orders_app()) as client:
        get = await client.get("/orders")
        head = await client.head("/orders")
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-type"] == get.headers["content-type"]


async def test_options_answers_204_with_allow_unless_a_handler_takes_it() -> None:
    app = orders_app()

    @app.http.route("/custom", methods=["OPTIONS", "GET"])
    async def custom() -> str:
        return "mine"

    async with TestApp(app) as client:
        options = await client.options("/orders")
        assert options.status_code == 204
        assert options.headers["allow"] == "GET, HEAD, OPTIONS, POST"
        assert options.content == b""
        mine = await client.options("/custom")
        assert mine.status_code == 200
        assert mine.json() == "mine"


def test_a_method_served_twice_on_one_path_is_refused_at_registration() -> None:
    app = orders_app()
    with pytest.raises(ValueError, match=r"GET /orders is already served by 'listing'"):

        @app.http.get("/orders")
        async def again() -> None: ...
