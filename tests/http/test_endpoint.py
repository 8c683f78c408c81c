"""How an endpoint answers what its handler raised when no ``OnError`` mapping decides."""

from __future__ import annotations

import asyncio
import logging

import pytest

from cordio import App
from cordio.errors import ResourceUnavailableError
from cordio.http import ProblemError
from cordio.policy import Bulkhead, CircuitBreaker, Timeout
from cordio.testing import TestApp


async def test_refused_calls_answer_503_without_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = App("svc")
    breaker = CircuitBreaker("pricing", consecutive_failures=1, recovery_time=30)
    bulkhead = Bulkhead(max_concurrent=1, max_queued=0, name="stock")
    timeout = Timeout(0.01, name="shipping")

    @breaker
    async def price() -> None:
        raise ConnectionError("pricing is down")

    @app.http.get("/price")
    async def get_price() -> None:
        await price()

    @app.http.get("/stock")
    async def stock() -> None:
        async with bulkhead:
            pass

    @app.http.get("/ship")
    async def ship() -> None:
        async with timeout:
            await asyncio.Event().wait()

    @app.http.get("/gone")
    async def gone() -> None:
        raise ResourceUnavailableError("resource 'db' is not set up")

    caplog.set_level(logging.DEBUG)
    async with TestApp(app) as client, bulkhead:
        first = await client.get("/price")  # the dependency's own failure: a 500
        caplog.clear()
        refused = await client.get("/price")
        full = await client.get("/stock")
        late = await client.get("/ship")
        missing = await client.get("/gone")
    assert first.status_code == 500
    assert refused.status_code == 503
    assert refused.headers["retry-after"] in {"29", "30"}
    assert refused.json()["detail"] == "a dependency is failing; not called"
    assert full.status_code == 503
    assert full.json()["detail"] == "too many calls in progress"
    assert "retry-after" not in full.headers
    assert late.status_code == 503
    assert late.json()["detail"] == "a dependency did not answer in time"
    assert missing.status_code == 503
    assert missing.json()["detail"] == "a dependency is unavailable"
    for response in (refused, full, late, missing):
        assert response.headers["content-type"] == "application/problem+json"
        assert "pricing is down" not in response.text  # internals stay inside
    assert not [r for r in caplog.records if r.exc_info], "a refusal logged a traceback"
    # a refusal by an open breaker or a full bulkhead is at DEBUG (the policy logged its
    # change of state once); a timeout or a missing resource at WARNING, once per call
    levels = {
        r.getMessage(): r.levelname
        for r in caplog.records
        if r.name == "cordio.errors" and r.levelno >= logging.INFO
    }
    assert levels == {
        "handler ship: PolicyTimeoutError answered 503": "WARNING",
        "handler gone: ResourceUnavailableError answered 503": "WARNING",
    }


async def test_client_errors_are_logged_with_their_type_so_repeats_are_rate_limited(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = App("svc")

    @app.http.get("/things/{thing_id}")
    async def thing(thing_id: int) -> None:
        raise ProblemError(404, f"no thing {thing_id}")

    caplog.set_level(logging.INFO, "cordio.http")
    async with TestApp(app) as client:
        response = await client.get("/things/5")
    assert response.status_code == 404
    (record,) = [r for r in caplog.records if r.name == "cordio.http"]
    assert record.getMessage() == "handler thing answered 404: no thing 5"
    assert record.levelname == "INFO"
    assert record.error == "ProblemError"  # type: ignore[attr-defined]
