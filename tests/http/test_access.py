"""The access log: one line per request, by route template, with the trace id."""

from __future__ import annotations

import io
import json
import sys

import pytest

from cordio import App
from cordio.config import EnvSource
from cordio.http import ProblemError
from cordio.testing import TestApp

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def logged_app(**environ: str) -> App:
    app = App("svc", config=[EnvSource("svc", environ={"SVC__LOG__FORMAT": "json", **environ})])

    @app.http.get("/orders/{order_id}")
    async def get_order(order_id: int) -> dict[str, int]:
        if order_id == 404:
            raise ProblemError(404, "no such order")
        return {"id": order_id}

    return app


def access_lines(stderr: io.StringIO) -> list[dict[str, object]]:
    lines = [json.loads(line) for line in stderr.getvalue().splitlines()]
    return [line for line in lines if line["logger"] == "cordio.http.access"]


async def test_one_json_line_per_request_with_route_template_status_and_trace_id(
    restore_logging: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    stderr = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    async with TestApp(logged_app()) as client:
        ok = await client.get("/orders/12345", headers={"traceparent": TRACEPARENT})
        missing = await client.get("/orders/404")
        await client.get("/nowhere")
        await client.get("/orders/x")
    lines = access_lines(stderr)
    assert [(l["method"], l["route"], l["status"]) for l in lines] == [  # noqa: E741
        ("GET", "/orders/{order_id}", 200),
        ("GET", "/orders/{order_id}", 404),
        ("GET", "-", 404),
        ("GET", "/orders/{order_id}", 422),
    ]
    first = lines[0]
    assert first["level"] == "INFO"
    assert first["message"].startswith("GET /orders/{order_id} 200 ")  # type: ignore[union-attr]
    assert first["message"].endswith(" ms")  # type: ignore[union-attr]
    assert first["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert isinstance(first["duration_ms"], float)
    assert ok.json() == {"id": 12345}
    # the problem body and the access line name the same trace id
    assert lines[1]["trace_id"] == missing.json()["trace_id"]
    assert first["handler"] == "get_order"
    assert lines[2]["handler"] == "-"
    ours = [line for line in stderr.getvalue().splitlines() if '"logger": "cordio.' in line]
    assert not [line for line in ours if "12345" in line]  # raw paths stay out


async def test_off_by_setting(restore_logging: None, monkeypatch: pytest.MonkeyPatch) -> None:
    stderr = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    async with TestApp(logged_app(SVC__HTTP__ACCESS_LOG="false")) as client:
        assert (await client.get("/orders/1")).status_code == 200
    assert access_lines(stderr) == []
