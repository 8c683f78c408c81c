"""The OpenAPI document built from the handlers."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

from cordio import App
from cordio.http import Header, Query
from cordio.testing import TestApp


class NewThing(BaseModel):
    name: str


class Thing(NewThing):
    id: int


async def test_document_describes_parameters_bodies_and_responses() -> None:
    app = App("svc", version="2.1.0")

    @app.http.post("/things", status_code=201)
    async def create_thing(thing: NewThing) -> Thing:
        """Create a thing."""
        return Thing(id=1, name=thing.name)

    @app.http.get("/things/{thing_id}")
    async def get_thing(
        thing_id: int,
        fields: Annotated[list[str], Query()] = [],  # noqa: B006 - never mutated
        x_tenant: Annotated[str | None, Header()] = None,
    ) -> Thing:
        return Thing(id=thing_id, name="x")

    @app.http.get("/count")
    async def count(limit: Annotated[int, Field(ge=1)] = 5) -> int:
        return limit

    async with TestApp(app) as client:
        doc = (await client.get("/openapi.json")).json()
    assert doc["openapi"] == "3.1.0"
    assert doc["info"] == {"title": "svc", "version": "2.1.0"}
    create = doc["paths"]["/things"]["post"]
    assert create["summary"] == "Create a thing."
    assert create["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/NewThing"
    }
    assert create["responses"]["201"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Thing"
    }
    get = doc["paths"]["/things/{thing_id}"]["get"]
    params = {(p["in"], p["name"]): p for p in get["parameters"]}
    assert params[("path", "thing_id")]["required"] is True
    assert params[("path", "thing_id")]["schema"]["type"] == "integer"
    assert params[("query", "fields")]["schema"]["type"] == "array"
    assert params[("header", "x-tenant")]["required"] is False
    assert "422" in get["responses"]
    count_params = doc["paths"]["/count"]["get"]["parameters"]
    assert count_params[0]["schema"]["minimum"] == 1
    schemas = doc["components"]["schemas"]
    assert set(schemas) >= {"NewThing", "Thing", "Problem"}
    assert schemas["Thing"]["properties"]["id"]["type"] == "integer"
