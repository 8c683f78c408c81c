"""Return values go out through the handler's return annotation; Response[T]."""

from __future__ import annotations

import logging

import pytest
from pydantic import BaseModel
from starlette.responses import PlainTextResponse

from cordio import App
from cordio.http import Response
from cordio.testing import TestApp


class User(BaseModel):
    id: int
    name: str


class UserInDB(User):
    password_hash: str


def users_app() -> App:
    app = App("svc")

    @app.http.get("/wrong")
    async def wrong() -> User:
        return {"nom": 1}  # type: ignore[return-value]

    @app.http.get("/dict")
    async def from_dict() -> User:
        return {"id": "7", "name": "ann"}  # type: ignore[return-value]

    @app.http.get("/secret")
    async def secret() -> User:
        return UserInDB(id=1, name="ann", password_hash="x$y")

    @app.http.get("/many")
    async def many() -> list[User]:
        return [UserInDB(id=i, name=f"u{i}", password_hash="h") for i in range(2)]

    @app.http.post("/users", status_code=201)
    async def create() -> Response[User]:
        return Response(User(id=9, name="bo"), headers={"Location": "/users/9"})

    @app.http.post("/accepted")
    async def accepted() -> Response[User]:
        return Response({"id": 1, "name": "c"}, status=202)  # type: ignore[arg-type]

    @app.http.delete("/users/{user_id}", status_code=204)
    async def remove(user_id: int) -> Response[None]:
        return Response(None, headers={"x-removed": str(user_id)})

    @app.http.get("/text")
    async def text() -> PlainTextResponse:
        return PlainTextResponse("plain")

    @app.http.get("/untyped")
    async def untyped():  # type: ignore[no-untyped-def]
        return {"anything": [1, "two"]}

    return app


async def test_a_value_that_does_not_match_the_annotation_is_a_500_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, "cordio.http")
    async with TestApp(users_app()) as client:
        response = await client.get("/wrong")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert "nom" not in response.text  # the client learns nothing of the internals
    (record,) = [r for r in caplog.records if r.name == "cordio.http"]
    assert record.getMessage() == (
        "handler wrong: the return value is not a valid User:"
        " id: Field required; name: Field required"
    )


async def test_values_are_validated_and_serialised_by_the_annotation() -> None:
    async with TestApp(users_app()) as client:
        assert (await client.get("/dict")).json() == {"id": 7, "name": "ann"}
        # a subclass's own fields never leave: only what the annotation names
        assert (await client.get("/secret")).json() == {"id": 1, "name": "ann"}
        assert (await client.get("/many")).json() == [
            {"id": 0, "name": "u0"},
            {"id": 1, "name": "u1"},
        ]
        assert (await client.get("/text")).text == "plain"
        assert (await client.get("/untyped")).json() == {"anything": [1, "two"]}


async def test_response_sets_status_and_headers_beside_a_validated_body() -> None:
    async with TestApp(users_app()) as client:
        created = await client.post("/users")
        assert created.status_code == 201
        assert created.headers["location"] == "/users/9"
        assert created.json() == {"id": 9, "name": "bo"}
        accepted = await client.post("/accepted")
        assert accepted.status_code == 202
        assert accepted.json() == {"id": 1, "name": "c"}
        removed = await client.delete("/users/4")
        assert removed.status_code == 204
        assert removed.content == b""
        assert removed.headers["x-removed"] == "4"
        doc = (await client.get("/openapi.json")).json()
    schema = doc["paths"]["/users"]["post"]["responses"]["201"]["content"]["application/json"]
    assert schema["schema"] == {"$ref": "#/components/schemas/User"}


@pytest.mark.parametrize(
    ("headers", "problem"),
    [
        ({"x-next": "a\r\nset-cookie: stolen=1"}, "has a control or non-Latin-1 character"),
        ({"x-name": "caf\u00e9 \u2603"}, "has a control or non-Latin-1 character"),
        ({"bad name": "v"}, "is not a token"),
        ({"x-nul": "a\x00b"}, "has a control or non-Latin-1 character"),
    ],
)
async def test_a_header_that_would_corrupt_the_response_is_a_logged_500(
    headers: dict[str, str], problem: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = App("svc")

    @app.http.get("/h")
    async def with_headers() -> Response[int]:
        return Response(1, headers=headers)

    caplog.set_level(logging.ERROR, "cordio.http")
    async with TestApp(app) as client:
        answer = await client.get("/h")
    assert answer.status_code == 500
    assert "set-cookie" not in answer.headers
    (record,) = [r for r in caplog.records if r.name == "cordio.http"]
    name = next(iter(headers))
    assert record.getMessage() == f"handler with_headers: response header {name!r} {problem}"
