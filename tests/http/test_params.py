"""Handler parameters from the request: path, query, headers, body, Request."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Annotated, Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from cordio import App, DependencyError, StartupError
from cordio.http import Body, Header, Query
from cordio.plan import build_plan
from cordio.testing import TestApp


class Item(BaseModel):
    name: str = Field(min_length=1)
    quantity: int = Field(ge=1)


@dataclasses.dataclass
class Point:
    x: int
    y: int


def make_app() -> App:
    app = App("svc")

    @app.http.get("/items/{item_id}")
    async def get_item(item_id: int, verbose: bool = False) -> dict[str, Any]:
        return {"id": item_id, "verbose": verbose}

    @app.http.get("/search")
    async def search(
        q: str,
        limit: Annotated[int, Query(), Field(ge=1, le=50)] = 10,
        tag: list[str] = [],  # noqa: B006 - never mutated
        page_size: Annotated[int, Query(alias="page-size")] = 20,
    ) -> dict[str, Any]:
        return {"q": q, "limit": limit, "tag": tag, "page_size": page_size}

    @app.http.get("/whoami")
    async def whoami(
        x_user: Annotated[str, Header()],
        x_tries: Annotated[int | None, Header()] = None,
    ) -> dict[str, Any]:
        return {"user": x_user, "tries": x_tries}

    @app.http.post("/items", status_code=201)
    async def create(item: Item, dry_run: bool = False) -> Item:
        return item

    @app.http.post("/points")
    async def point(p: Point) -> int:
        return p.x + p.y

    @app.http.post("/numbers")
    async def numbers(values: Annotated[list[int], Body()]) -> int:
        return sum(values)

    @app.http.get("/raw")
    async def raw(request: Request) -> Response:
        return PlainTextResponse(request.url.path)

    @app.http.delete("/items/{item_id}", status_code=204)
    async def remove(item_id: int) -> None:
        return None

    @app.http.get("/sync")
    def sync_handler(n: int) -> int:
        return n * 2

    return app


@pytest.fixture
async def client() -> Any:
    async with TestApp(make_app()) as client:
        yield client


async def test_typed_path_and_query(client: TestApp) -> None:
    assert (await client.get("/items/7?verbose=true")).json() == {"id": 7, "verbose": True}
    bad = await client.get("/items/seven")
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["loc"] == ["path", "item_id"]


async def test_query_defaults_lists_aliases_and_constraints(client: TestApp) -> None:
    ok = await client.get("/search", params=[("q", "tea"), ("tag", "a"), ("tag", "b")])
    assert ok.json() == {"q": "tea", "limit": 10, "tag": ["a", "b"], "page_size": 20}
    alias = await client.get("/search?q=x&page-size=5")
    assert alias.json()["page_size"] == 5
    bad = await client.get("/search?limit=0&page-size=many")
    assert bad.status_code == 422
    assert [e["loc"] for e in bad.json()["errors"]] == [
        ["query", "q"],
        ["query", "limit"],
        ["query", "page-size"],
    ]


async def test_headers(client: TestApp) -> None:
    ok = await client.get("/whoami", headers={"x-user": "ann", "x-tries": "3"})
    assert ok.json() == {"user": "ann", "tries": 3}
    missing = await client.get("/whoami")
    assert missing.json()["errors"][0]["loc"] == ["header", "x-user"]


async def test_model_body_reports_every_bad_field(client: TestApp) -> None:
    created = await client.post("/items", json={"name": "tea", "quantity": 2})
    assert created.status_code == 201
    assert created.json() == {"name": "tea", "quantity": 2}
    bad = await client.post("/items?dry_run=perhaps", json={"name": "", "quantity": 0})
    assert bad.status_code == 422
    assert [e["loc"] for e in bad.json()["errors"]] == [
        ["query", "dry_run"],
        ["body", "name"],
        ["body", "quantity"],
    ]


async def test_malformed_and_empty_bodies(client: TestApp) -> None:
    broken = await client.post(
        "/items", content=b'{"name": "tea",', headers={"content-type": "application/json"}
    )
    assert broken.status_code == 422
    assert broken.json()["errors"][0]["type"] == "json_invalid"
    empty = await client.post("/items")
    assert empty.status_code == 422
    assert empty.json()["errors"] == [{"loc": ["body"], "msg": "Field required", "type": "missing"}]


async def test_dataclass_and_explicit_body(client: TestApp) -> None:
    assert (await client.post("/points", json={"x": 2, "y": 3})).json() == 5
    assert (await client.post("/numbers", json=[1, 2, 3])).json() == 6
    assert (await client.post("/numbers", json=["x"])).status_code == 422


async def test_request_response_204_and_sync_handlers(client: TestApp) -> None:
    raw = await client.get("/raw")
    assert raw.text == "/raw"
    assert raw.headers["content-type"].startswith("text/plain")
    gone = await client.delete("/items/3")
    assert gone.status_code == 204
    assert gone.content == b""
    assert (await client.get("/sync?n=21")).json() == 42


async def test_two_body_parameters_fail_at_start() -> None:
    app = App("svc")

    @app.http.post("/two")
    async def two(a: Item, b: Item) -> None:
        return None

    with pytest.raises(
        StartupError, match=r"parameters 'a', 'b' all claim the request body; only one may"
    ) as caught:
        async with TestApp(app):
            pass
    assert type(caught.value.__cause__) is ValueError


async def test_path_placeholder_without_parameter_fails_at_planning() -> None:
    app = App("svc")
    started: list[str] = []

    @app.resource
    async def store() -> AsyncIterator[str]:
        started.append("store")
        yield "store"

    @app.http.get("/things/{thing_id}")
    async def things(store: str) -> None:
        return None

    message = (
        r"handler 'things': path '/things/\{thing_id\}' has placeholders \['thing_id'\]"
        r" with no parameter of that name"
    )
    with pytest.raises(DependencyError, match=message):
        build_plan(app)  # found without starting anything (cordio docs, config show)
    with pytest.raises(DependencyError, match=message):
        async with TestApp(app):
            pass
    assert started == []  # before any resource started


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=300))
async def test_any_body_bytes_get_201_or_422_never_500(body: bytes) -> None:
    async with TestApp(make_app()) as client:
        response = await client.post(
            "/items", content=body, headers={"content-type": "application/json"}
        )
    assert response.status_code in (201, 422)


async def test_constraints_on_string_parameters_are_enforced() -> None:
    app = App("svc")

    @app.http.get("/codes/{code}")
    async def code(
        code: Annotated[str, Field(pattern=r"^[A-Z]{3}$")],
        q: Annotated[str, Query(), Field(max_length=5)] = "",
        x_key: Annotated[str, Header(), Field(min_length=4)] = "none",
    ) -> list[str]:
        return [code, q, x_key]

    async with TestApp(app) as client:
        ok = await client.get("/codes/ABC", params={"q": "abcde"}, headers={"x-key": "abcd"})
        assert ok.json() == ["ABC", "abcde", "abcd"]
        bad = await client.get("/codes/abcd", params={"q": "abcdef"}, headers={"x-key": "abc"})
    assert bad.status_code == 422
    assert sorted(e["loc"] for e in bad.json()["errors"]) == [
        ["header", "x-key"],
        ["path", "code"],
        ["query", "q"],
    ]


async def test_a_single_value_query_parameter_given_twice_is_refused(client: TestApp) -> None:
    twice = await client.get("/search", params=[("q", "a"), ("q", "b"), ("limit", "5")])
    assert twice.status_code == 422
    assert twice.json()["errors"] == [
        {"loc": ["query", "q"], "msg": "expected one value, got 2", "type": "too_many_values"}
    ]
    many = await client.get("/search", params=[("q", "a"), ("tag", "x"), ("tag", "y")])
    assert many.json()["tag"] == ["x", "y"]
