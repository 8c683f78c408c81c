"""The OpenAPI document built from the handlers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import pytest
from pydantic import BaseModel, Field

from cordio import App
from cordio.http import Header, Query
from cordio.policy import CircuitBreaker, OnError, respond
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


class Missing(Exception):
    pass


class Conflict(Exception):
    pass


async def test_every_operation_documents_the_problem_responses_it_can_give() -> None:
    app = App("svc")
    breaker = CircuitBreaker("upstream")

    @app.resource
    async def store() -> dict[str, int]:
        return {}

    @app.http.post("/things", status_code=201)
    async def create(thing: NewThing) -> Thing:
        return Thing(id=1, name=thing.name)

    @app.http.get("/things/{thing_id}", responses={404: "No such thing"})
    async def read(thing_id: int, store: dict[str, int]) -> Thing:
        return Thing(id=thing_id, name="x")

    @app.http.post("/things/{thing_id}/move")
    @OnError({Missing: respond(404, title="Thing not found"), Conflict: respond(409)})
    @breaker
    async def move(thing_id: int) -> None:
        return None

    @app.http.get("/ping")
    async def ping() -> str:
        return "pong"

    async with TestApp(app) as client:
        doc = (await client.get("/openapi.json")).json()
    paths = doc["paths"]

    def errors(path: str, method: str) -> dict[str, str]:
        responses = paths[path][method]["responses"]
        found = {}
        for status, response in responses.items():
            if status.startswith(("4", "5")):
                schema = response["content"]["application/problem+json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Problem"}, (path, status)
                found[status] = response["description"]
        return found

    assert set(errors("/ping", "get")) == {"422", "500"}
    assert set(errors("/things", "post")) == {"413", "422", "500"}
    assert errors("/things/{thing_id}", "get") == {
        "404": "No such thing",
        "422": "Invalid request",
        "500": "Unexpected error",
        "503": "Service unavailable: a dependency is down or overloaded",
    }
    assert set(errors("/things/{thing_id}/move", "post")) == {"404", "409", "422", "500", "503"}
    assert errors("/things/{thing_id}/move", "post")["404"] == "Thing not found"
    problem = doc["components"]["schemas"]["Problem"]
    assert problem["required"] == ["type", "title", "status"]
    assert problem["properties"]["errors"]["type"] == "array"


def test_responses_must_name_error_statuses() -> None:
    app = App("svc")
    with pytest.raises(ValueError, match=r"responses: 200 is not an error status \(400-599\)"):

        @app.http.get("/x", responses={200: "fine"})
        async def x() -> None: ...


async def test_cordio_docs_openapi_writes_what_the_app_serves(tmp_path: Path) -> None:
    from click.testing import CliRunner
    from examples.orders import app as orders

    from cordio.cli import main
    from cordio.config import EnvSource

    out = tmp_path / "openapi.json"
    result = CliRunner().invoke(main, ["docs", "openapi", "examples.orders:app", "-o", str(out)])
    assert result.exit_code == 0, result.output
    written = json.loads(out.read_text())
    environ = {"ORDERS__DB__URL": f"sqlite:///{tmp_path}/o.db", "ORDERS__PRICING__STUB_PORT": "0"}
    async with TestApp(orders, config=[EnvSource("orders", environ=environ)]) as client:
        served = (await client.get("/openapi.json")).json()
    assert written == served
    assert written["paths"]["/orders/{order_id}"]["get"]["responses"]["404"] == {
        "description": "No such order",
        "content": {
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
        },
    }


def test_definitions_go_to_components_never_beside_a_ref() -> None:
    import enum

    class Colour(enum.Enum):
        red = "red"

    app = App("svc")

    @app.http.get("/paint")
    async def paint(
        colours: Annotated[list[Colour], Query()] = [],  # noqa: B006 - never mutated
        base: Colour | None = None,
    ) -> list[Colour]:
        return colours

    doc = app.http.openapi()
    text = json.dumps(doc["paths"])
    assert "$defs" not in text
    params = {p["name"]: p["schema"] for p in doc["paths"]["/paint"]["get"]["parameters"]}
    assert params["colours"] == {"items": {"$ref": "#/components/schemas/Colour"}, "type": "array"}
    assert params["base"]["anyOf"][0] == {"$ref": "#/components/schemas/Colour"}
    assert doc["components"]["schemas"]["Colour"]["enum"] == ["red"]


def test_credential_headers_are_security_schemes_not_parameters() -> None:
    app = App("svc")

    @app.http.get("/me")
    async def me(authorization: Annotated[str, Header()]) -> str:
        return authorization

    @app.http.get("/keyed")
    async def keyed(
        x_api_key: Annotated[str | None, Header(security="apiKey")] = None,
        x_trace: Annotated[str | None, Header()] = None,
    ) -> str:
        return "ok"

    @app.http.get("/basic")
    async def basic(authorization: Annotated[str, Header(security="basic")]) -> str:
        return "ok"

    @app.http.get("/both")
    async def both(
        authorization: Annotated[str, Header()],
        x_api_key: Annotated[str, Header(security="apiKey")],
    ) -> str:
        return "ok"

    @app.http.get("/either")
    async def either(
        authorization: Annotated[str, Header()],
        x_api_key: Annotated[str | None, Header(security="apiKey")] = None,
        x_client: Annotated[str | None, Header(security="apiKey")] = None,
    ) -> str:
        return "ok"

    doc = app.http.openapi()
    paths = doc["paths"]
    assert paths["/me"]["get"]["security"] == [{"bearerAuth": []}]
    assert "parameters" not in paths["/me"]["get"]
    keyed_op = paths["/keyed"]["get"]
    assert keyed_op["security"] == [{"x-api-key": []}, {}]  # optional credentials
    assert [p["name"] for p in keyed_op["parameters"]] == ["x-trace"]
    assert paths["/basic"]["get"]["security"] == [{"basicAuth": []}]
    # the alternatives are ORed and the schemes in one alternative ANDed (OpenAPI 3.1
    # §4.8.30): two required headers are one alternative, not either one alone
    assert paths["/both"]["get"]["security"] == [{"bearerAuth": [], "x-api-key": []}]
    assert paths["/either"]["get"]["security"] == [
        {"bearerAuth": [], "x-api-key": []},
        {"bearerAuth": [], "x-client": []},
        {"bearerAuth": []},
    ]
    assert doc["components"]["securitySchemes"] == {
        "bearerAuth": {"type": "http", "scheme": "bearer"},
        "x-api-key": {"type": "apiKey", "in": "header", "name": "x-api-key"},
        "basicAuth": {"type": "http", "scheme": "basic"},
        "x-client": {"type": "apiKey", "in": "header", "name": "x-client"},
    }


async def test_a_credential_header_is_still_given_to_the_handler() -> None:
    app = App("svc")

    @app.http.get("/me")
    async def me(authorization: Annotated[str, Header()]) -> str:
        return authorization

    async with TestApp(app) as client:
        assert (await client.get("/me", headers={"authorization": "Bearer t"})).json() == "Bearer t"
        assert (await client.get("/me")).status_code == 422
