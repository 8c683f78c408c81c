"""Every state transition of the circuit breaker, on a fake clock."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import ValidationError

from cordio.policy import CircuitBreaker, CircuitOpenError


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Dependency:
    def __init__(self) -> None:
        self.fail = False
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.fail:
            raise ConnectionError("down")
        return "ok"


def setup(**options: object) -> tuple[CircuitBreaker, Clock, Dependency, list[tuple[str, str]]]:
    clock = Clock()
    breaker = CircuitBreaker("pricing", clock=clock, **options)  # type: ignore[arg-type]
    changes: list[tuple[str, str]] = []
    breaker.listeners.append(lambda name, old, new: changes.append((old, new)))
    return breaker, clock, Dependency(), changes


async def test_ratio_over_the_window_opens_fast_failure_then_half_open_then_closed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    breaker, clock, dep, changes = setup(window=4, min_calls=4, failure_ratio=0.5, recovery_time=10)
    call = breaker(dep)
    assert await call() == "ok"
    assert await call() == "ok"
    dep.fail = True
    with pytest.raises(ConnectionError):
        await call()
    assert breaker.state == "closed"  # 1 of 3: below min_calls anyway
    with pytest.raises(ConnectionError):
        await call()
    assert breaker.state == "open"  # 2 of 4 = 0.5
    calls = dep.calls
    with pytest.raises(CircuitOpenError) as info:
        await call()
    assert dep.calls == calls  # failed fast, not attempted
    assert info.value.retry_after == pytest.approx(10)
    assert isinstance(info.value.last_failure, ConnectionError)
    clock.now += 9.9
    with pytest.raises(CircuitOpenError):
        await call()
    clock.now += 0.1
    assert breaker.state == "half_open"
    dep.fail = False
    assert await call() == "ok"
    assert breaker.state == "closed"
    assert changes == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]
    assert "circuit breaker pricing: closed -> open" in caplog.text


async def test_half_open_failure_reopens_and_limits_trial_calls() -> None:
    breaker, clock, dep, changes = setup(consecutive_failures=2, recovery_time=5, half_open_calls=2)
    dep.fail = True
    for _ in range(2):
        with pytest.raises(ConnectionError):
            await breaker.call(dep)
    assert breaker.state == "open"
    clock.now += 5
    gates = [asyncio.Event(), asyncio.Event()]

    def slow(gate: asyncio.Event) -> object:
        async def trial() -> str:
            await gate.wait()
            return "slow ok"

        return trial

    first = asyncio.ensure_future(breaker.call(slow(gates[0])))  # type: ignore[arg-type]
    second = asyncio.ensure_future(breaker.call(slow(gates[1])))  # type: ignore[arg-type]
    await asyncio.sleep(0)
    with pytest.raises(CircuitOpenError):  # only two trial calls
        await breaker.call(dep)
    gates[0].set()
    assert await first == "slow ok"
    assert breaker.state == "half_open"  # one of two trials done
    gates[1].set()
    assert await second == "slow ok"
    assert breaker.state == "closed"
    dep.fail = True
    for _ in range(2):
        with pytest.raises(ConnectionError):
            await breaker.call(dep)
    clock.now += 5
    with pytest.raises(ConnectionError):
        await breaker.call(dep)  # the trial fails
    assert breaker.state == "open"
    assert changes[-2:] == [("open", "half_open"), ("half_open", "open")]


async def test_consecutive_failures_reset_by_a_success() -> None:
    breaker, _, dep, _ = setup(consecutive_failures=3)
    for fail in (True, True, False, True, True):
        dep.fail = fail
        try:
            await breaker.call(dep)
        except ConnectionError:
            pass
    assert breaker.state == "closed"
    with pytest.raises(ConnectionError):
        await breaker.call(dep)
    assert breaker.state == "open"


async def test_sliding_window_forgets_old_failures() -> None:
    breaker, _, dep, _ = setup(window=4, min_calls=4, failure_ratio=0.75)
    outcomes = [True, True, False, False, False, True, True]
    for fail in outcomes:
        dep.fail = fail
        try:
            await breaker.call(dep)
        except ConnectionError:
            pass
    # window now: False, False, True, True -> 2/4 < 0.75
    assert breaker.state == "closed"
    assert breaker.snapshot() == {"name": "pricing", "state": "closed", "calls": 4, "failures": 2}


async def test_ignored_errors_and_cancellation_do_not_count() -> None:
    breaker, _clock, _, _ = setup(consecutive_failures=1, recovery_time=1)

    async def not_found() -> None:
        raise LookupError("no such order")

    for _ in range(3):
        with pytest.raises(LookupError):
            await CircuitBreaker("x", consecutive_failures=1, ignore=(LookupError,)).call(not_found)
    ignoring = CircuitBreaker("x", consecutive_failures=1, ignore=(LookupError,))
    with pytest.raises(LookupError):
        await ignoring.call(not_found)
    assert ignoring.state == "closed"

    async def cancelled() -> None:
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await breaker.call(cancelled)
    assert breaker.state == "closed"


async def test_async_with_block() -> None:
    breaker, clock, _, _ = setup(consecutive_failures=1, recovery_time=1)
    with pytest.raises(ValueError):
        async with breaker:
            raise ValueError("bad")
    assert breaker.state == "open"
    with pytest.raises(CircuitOpenError):
        async with breaker:
            pass
    clock.now += 1
    async with breaker:
        pass
    assert breaker.state == "closed"


def test_invalid_settings() -> None:
    with pytest.raises(ValidationError, match="failure_ratio"):
        CircuitBreaker(failure_ratio=0)
    with pytest.raises(ValidationError, match="recovery_time"):
        CircuitBreaker(recovery_time=-1)
