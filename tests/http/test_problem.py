"""Errors as problem details (RFC 9457)."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.exceptions import HTTPException

from cordio import App
from cordio.http import ProblemError
from cordio.testing import TestApp

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
PROBLEM = "application/problem+json"


def make_app() -> App:
    app = App("svc")

    @app.http.get("/orders/{order_id}")
    async def get_order(order_id: int) -> dict[str, int]:
        if order_id == 404:
            raise ProblemError(
                404,
                "order 404 does not exist",
                title="Order not found",
                type="https://example.com/problems/not-found",
                order_id=order_id,
            )
        if order_id == 409:
            raise HTTPException(409, "already fulfilled")
        if order_id == 500:
            raise RuntimeError("secret internals: password=hunter2")
        return {"id": order_id}

    return app


@pytest.fixture
async def client() -> Any:
    async with TestApp(make_app()) as client:
        yield client


async def test_problem_error_with_type_and_extensions(client: TestApp) -> None:
    response = await client.get("/orders/404")
    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["type"] == "https://example.com/problems/not-found"
    assert body["title"] == "Order not found"
    assert body["status"] == 404
    assert body["detail"] == "order 404 does not exist"
    assert body["instance"] == "/orders/404"
    assert body["order_id"] == 404
    assert len(body["trace_id"]) == 32


async def test_starlette_http_exception(client: TestApp) -> None:
    response = await client.get("/orders/409")
    assert response.status_code == 409
    assert response.json()["detail"] == "already fulfilled"
    assert response.json()["title"] == "Conflict"


async def test_unexpected_errors_hide_internals_and_keep_serving(
    client: TestApp, caplog: pytest.LogCaptureFixture
) -> None:
    response = await client.get("/orders/500", headers={"traceparent": TRACEPARENT})
    assert response.status_code == 500
    assert response.headers["content-type"] == PROBLEM
    assert "hunter2" not in response.text
    assert "secret" not in response.text
    assert response.json()["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    failure = next(r for r in caplog.records if r.levelname == "ERROR")
    assert failure.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"  # type: ignore[attr-defined]
    assert failure.exc_info is not None
    assert (await client.get("/orders/1")).json() == {"id": 1}


async def test_unknown_route_and_wrong_method(client: TestApp) -> None:
    missing = await client.get("/nowhere")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == PROBLEM
    assert missing.json()["instance"] == "/nowhere"
    wrong = await client.post("/orders/1")
    assert wrong.status_code == 405
    assert wrong.headers["content-type"] == PROBLEM
    assert "GET" in wrong.headers["allow"]


async def test_a_malformed_traceparent_gets_a_fresh_trace_id(client: TestApp) -> None:
    response = await client.get("/orders/404", headers={"traceparent": "00-zz-yy-01"})
    trace = response.json()["trace_id"]
    assert len(trace) == 32
    assert trace != "zz"
