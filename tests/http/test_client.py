"""``TracingTransport``: an httpx client's requests carry the calling handler's trace."""

from __future__ import annotations

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from cordio import App
from cordio.http.client import TracingTransport
from cordio.testing import TestApp

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def downstream() -> tuple[Starlette, list[dict[str, str]]]:
    seen: list[dict[str, str]] = []

    async def echo(request: Request) -> JSONResponse:
        seen.append(dict(request.headers))
        return JSONResponse({"ok": True})

    return Starlette(routes=[Route("/echo", echo)]), seen


async def test_requests_from_a_handler_carry_its_trace_context() -> None:
    other, seen = downstream()
    transport = TracingTransport(httpx.ASGITransport(app=other))
    app = App("svc")

    @app.http.get("/call")
    async def call() -> bool:
        async with httpx.AsyncClient(base_url="http://other", transport=transport) as client:
            return bool((await client.get("/echo")).json()["ok"])

    incoming = {"traceparent": f"00-{TRACE}-00f067aa0ba902b7-01", "baggage": "k=v"}
    async with TestApp(app) as client:
        assert (await client.get("/call", headers=incoming)).json() is True
    (headers,) = seen
    assert headers["traceparent"].split("-")[1] == TRACE
    assert headers["traceparent"] != incoming["traceparent"]  # a new parent id
    assert headers["baggage"] == "k=v"


async def test_outside_a_handler_nothing_is_added_and_a_given_traceparent_is_kept() -> None:
    other, seen = downstream()
    transport = TracingTransport(httpx.ASGITransport(app=other))
    async with httpx.AsyncClient(base_url="http://other", transport=transport) as client:
        await client.get("/echo")
        given = f"00-{TRACE}-1111111111111111-00"
        await client.get("/echo", headers={"traceparent": given})
    assert "traceparent" not in seen[0]
    assert seen[1]["traceparent"] == given
