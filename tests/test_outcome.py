"""The error pipeline (Invoker.run): one place decides what a call came to."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from cordio import App, Context
from cordio.config.loader import Config
from cordio.handler import Invoker
from cordio.http import ProblemError
from cordio.messaging import Ack
from cordio.outcome import Outcome
from cordio.policy import CircuitBreaker, OnError, fallback, respond
from cordio.policy.errors import CircuitOpenError
from cordio.tasks import InFlight
from cordio.testing import TestApp


class Missing(Exception):
    pass


def invoker(func: Any, **options: Any) -> Invoker:
    compiled = Invoker(func.__name__, func, [], {}, InFlight(), **options)
    compiled.prepare({}, Config())
    return compiled


async def run(inv: Invoker) -> Outcome:
    return await inv.run({}, Context(inv.name, "test"))


async def test_a_value_a_signal_and_an_unmapped_error() -> None:
    async def value() -> int:
        return 7

    async def returns_ack() -> Ack:
        return Ack()

    async def raises() -> None:
        raise RuntimeError("boom")

    ok = await run(invoker(value))
    assert (ok.ok, ok.value, ok.error) == (True, 7, None)
    signalled = await run(invoker(returns_ack))
    assert isinstance(signalled.signal, Ack)
    assert not signalled.ok
    failed = await run(invoker(raises))
    assert isinstance(failed.error, RuntimeError)
    assert (failed.recorded, failed.unavailable, failed.status) == (False, False, None)


async def test_app_mappings_come_after_the_handlers_own(caplog: pytest.LogCaptureFixture) -> None:
    @OnError({Missing: respond(404)})
    async def own() -> None:
        raise Missing("order 3")

    async def app_wide() -> None:
        raise Missing("order 4")

    async def stale() -> None:
        raise KeyError("cache")

    mappings = ({Missing: respond(409), KeyError: fallback("cached")},)
    first = await run(invoker(own, on_error=mappings))
    assert (first.status, first.recorded, type(first.error)) == (404, True, Missing)
    second = await run(invoker(app_wide, on_error=mappings))
    assert (second.status, second.recorded) == (409, True)
    third = await run(invoker(stale, on_error=mappings))
    assert (third.ok, third.value, third.recorded) == (True, "cached", True)


async def test_a_refused_call_is_unavailable_and_answers_pass_through() -> None:
    breaker = CircuitBreaker("down", consecutive_failures=1)

    @breaker
    async def refused() -> None:
        raise ConnectionError("no route")

    await run(invoker(refused))  # opens the breaker
    outcome = await run(invoker(refused))
    assert isinstance(outcome.error, CircuitOpenError)
    assert outcome.unavailable

    async def answers() -> None:
        raise ProblemError(404, "no such thing")

    passed = await run(
        invoker(answers, on_error=({Exception: respond(503)},), answers=(ProblemError,))
    )
    assert isinstance(passed.error, ProblemError)
    assert passed.response is None


async def test_http_translates_the_outcome(caplog: pytest.LogCaptureFixture) -> None:
    app = App("svc")
    app.on_error({Exception: respond(503)})

    @app.http.get("/problem")
    async def problem() -> None:
        raise ProblemError(404, "no such thing")  # the handler's own answer wins

    @app.http.get("/signal")
    async def signal() -> Any:
        return Ack()

    caplog.set_level(logging.INFO)
    async with TestApp(app) as client:
        assert (await client.get("/problem")).status_code == 404
        assert (await client.get("/signal")).status_code == 500
    assert "handler signal settled with Ack; settle signals are for message handlers" in (
        caplog.text
    )


async def test_timers_use_the_app_mappings_too() -> None:
    app = App("svc")
    app.on_error({Missing: fallback(None)})

    @app.every(seconds=1)
    async def job() -> None:
        raise Missing("nothing to expire")

    async with TestApp(app) as client:
        await client.advance(2)
        assert client.runtime is not None
        (timer,) = [s for s in client.runtime.services if getattr(s, "name", "") == "job"]
        assert (timer.runs, timer.failed) == (2, 0)
