"""Every state transition of the circuit breaker, on a fake clock."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import ValidationError

from cordio.policy import CircuitBreaker, CircuitOpenError
from tests.eventually import eventually


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
    with pytest.raises(ConnectionError, match=r"^down$"):
        await call()
    assert breaker.state == "closed"  # 1 of 3: below min_calls anyway
    with pytest.raises(ConnectionError, match=r"^down$"):
        await call()
    assert breaker.state == "open"  # 2 of 4 = 0.5
    calls = dep.calls
    with pytest.raises(CircuitOpenError) as info:
        await call()
    assert dep.calls == calls  # failed fast, not attempted
    assert info.value.retry_after == pytest.approx(10)
    assert isinstance(info.value.last_failure, ConnectionError)
    clock.now += 9.9
    with pytest.raises(CircuitOpenError) as info:
        await call()
    assert info.value.retry_after == pytest.approx(0.1)
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
    entered = [asyncio.Event(), asyncio.Event()]

    def slow(i: int) -> object:
        async def trial() -> str:
            entered[i].set()
            await gates[i].wait()
            return "slow ok"

        return trial

    first = asyncio.ensure_future(breaker.call(slow(0)))  # type: ignore[arg-type]
    second = asyncio.ensure_future(breaker.call(slow(1)))  # type: ignore[arg-type]
    await entered[0].wait()
    await entered[1].wait()
    calls = dep.calls
    with pytest.raises(CircuitOpenError):  # only two trial calls
        await breaker.call(dep)
    assert dep.calls == calls
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
    assert breaker.snapshot() == {
        "name": "pricing",
        "state": "closed",
        "calls": 4,
        "failures": 2,
        "rejected": 0,
    }


async def test_ignored_types_and_cancellation_do_not_count() -> None:
    breaker, _clock, dep, changes = setup(
        consecutive_failures=1, ignore_types=(ConnectionRefusedError,)
    )

    async def refused() -> None:
        raise ConnectionRefusedError("a connection error the code says to ignore")

    async def cancelled() -> None:
        raise asyncio.CancelledError

    for _ in range(5):
        with pytest.raises(ConnectionRefusedError):
            await breaker.call(refused)
        with pytest.raises(asyncio.CancelledError):
            await breaker.call(cancelled)
    assert breaker.state == "closed"
    assert changes == []
    dep.fail = True  # ConnectionError itself is not ignored
    with pytest.raises(ConnectionError):
        await breaker.call(dep)
    assert breaker.state == "open"


async def test_async_with_block() -> None:
    breaker, clock, _, _ = setup(consecutive_failures=1, recovery_time=1)
    with pytest.raises(ValueError):
        async with breaker:
            raise ValueError("a caller's bad input")
    assert breaker.state == "closed"
    with pytest.raises(TimeoutError):
        async with breaker:
            raise TimeoutError("no answer")
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


async def test_one_breaker_shared_by_100_tasks() -> None:
    """Decorator, call() and async with at once. Closed: every task gets its own outcome,
    caller errors do not count. Half-open: of 100 concurrent calls exactly
    ``half_open_calls`` are let through as trials, the others fail fast."""
    breaker, clock, _, changes = setup(consecutive_failures=3, recovery_time=5, half_open_calls=2)
    turn = asyncio.Event()
    waiting = 0

    async def work(i: int) -> int:
        nonlocal waiting
        waiting += 1
        await turn.wait()
        if i % 2:
            raise ValueError(f"bad input {i}")
        return i

    decorated = breaker(work)

    async def as_block(i: int) -> int:
        async with breaker:
            return await work(i)

    async def run(i: int) -> int | str:
        how = (decorated, lambda n: breaker.call(work, n), as_block)[i % 3]
        try:
            return await how(i)
        except ValueError as exc:
            return str(exc)
        except CircuitOpenError:
            return "open"

    tasks = [asyncio.ensure_future(run(i)) for i in range(100)]
    await eventually(lambda: waiting == 100, what="100 calls inside the breaker")
    turn.set()
    assert await asyncio.gather(*tasks) == [
        i if i % 2 == 0 else f"bad input {i}" for i in range(100)
    ]
    assert (breaker.state, changes) == ("closed", [])

    async def down() -> None:
        raise ConnectionError("down")

    for _ in range(3):
        with pytest.raises(ConnectionError):
            await breaker.call(down)
    assert breaker.state == "open"
    clock.now += 5
    turn.clear()
    waiting = 0
    tasks = [asyncio.ensure_future(run(2 * i)) for i in range(100)]  # all would succeed
    # two trials inside, the other 98 refused before the trials end
    await eventually(
        lambda: (waiting, sum(t.done() for t in tasks)) == (2, 98), what="2 trials, 98 refused"
    )
    turn.set()
    results = await asyncio.gather(*tasks)
    assert results.count("open") == 98
    assert sorted(r for r in results if r != "open") == [0, 2]  # the first two: the trials
    assert breaker.state == "closed"
    assert changes == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]
    assert breaker.rejected == 98
