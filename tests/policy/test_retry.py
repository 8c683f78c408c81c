"""Retry schedules, give-up rules, fallback, cancellation, blocks; one Retry shared by tasks."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import ValidationError

from cordio.policy import Retry


class FakeTime:
    """A clock that sleeping advances."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def flaky(failures: int, error: type[Exception] = ConnectionError) -> tuple[list[int], object]:
    calls: list[int] = []

    async def call(x: int) -> int:
        calls.append(x)
        if len(calls) <= failures:
            raise error("nope")
        return x * 2

    return calls, call


async def test_success_first_time_never_sleeps() -> None:
    time = FakeTime()
    calls, func = flaky(0)
    assert await Retry(sleep=time.sleep, clock=time)(func)(21) == 42  # type: ignore[arg-type]
    assert calls == [21]
    assert time.sleeps == []


async def test_retries_with_full_jitter_bounds() -> None:
    time = FakeTime()
    calls, func = flaky(4)
    retry = Retry(attempts=5, initial_delay=0.1, max_delay=0.25, sleep=time.sleep, clock=time)
    assert await retry.call(func, 1) == 2  # type: ignore[arg-type]
    assert len(calls) == 5
    caps = [0.1, 0.2, 0.25, 0.25]
    assert len(time.sleeps) == 4
    for slept, cap in zip(time.sleeps, caps, strict=True):
        assert 0 <= slept <= cap
    samples = [retry.delay(3) for _ in range(2000)]
    assert max(samples) <= 0.25
    assert min(samples) < 0.02 and max(samples) > 0.23  # noqa: PT018 - spread over the range


async def test_attempt_limit_then_the_last_error() -> None:
    time = FakeTime()
    calls, func = flaky(10)
    with pytest.raises(ConnectionError, match=r"^nope$"):
        await Retry(attempts=3, sleep=time.sleep, clock=time).call(func, 1)  # type: ignore[arg-type]
    assert len(calls) == 3
    assert len(time.sleeps) == 2  # between the attempts, none after the last


async def test_max_elapsed_stops_early() -> None:
    time = FakeTime()
    calls, func = flaky(100)
    retry = Retry(
        attempts=100, initial_delay=1, max_delay=1, max_elapsed=3.5, sleep=time.sleep, clock=time
    )
    retry._random.uniform = lambda a, b: b  # type: ignore[method-assign]
    with pytest.raises(ConnectionError):
        await retry.call(func, 1)  # type: ignore[arg-type]
    assert len(calls) == 4  # waits of 1 s at 0, 1, 2 -> a fourth wait would pass 3.5
    assert time.now == 3


async def test_give_up_on_and_not_listed_errors() -> None:
    class Refused(ConnectionError):
        pass

    time = FakeTime()
    calls, func = flaky(5, Refused)
    with pytest.raises(Refused):
        await Retry(give_up_on=(Refused,), sleep=time.sleep, clock=time).call(func, 1)  # type: ignore[arg-type]
    assert len(calls) == 1
    calls, func = flaky(5, ValueError)
    with pytest.raises(ValueError):
        await Retry(sleep=time.sleep, clock=time).call(func, 1)  # type: ignore[arg-type]
    assert len(calls) == 1


async def test_fallback_value_and_function() -> None:
    time = FakeTime()
    _, func = flaky(10)
    assert await Retry(attempts=2, fallback=-1, sleep=time.sleep, clock=time).call(func, 1) == -1  # type: ignore[arg-type]

    async def degrade(exc: BaseException) -> str:
        return f"cached ({type(exc).__name__})"

    retry = Retry(attempts=2, fallback=degrade, sleep=time.sleep, clock=time)
    assert await retry.call(func, 1) == "cached (ConnectionError)"  # type: ignore[arg-type]


async def test_a_deadline_bounds_retries() -> None:
    time = FakeTime()
    calls, func = flaky(100)
    retry = Retry(attempts=100, initial_delay=1, max_delay=1, sleep=time.sleep, clock=time)
    retry._random.uniform = lambda a, b: b  # type: ignore[method-assign]
    retry.deadline = lambda: 2.5  # e.g. the end of the shutdown grace period
    with pytest.raises(ConnectionError):
        await retry.call(func, 1)  # type: ignore[arg-type]
    assert len(calls) == 3


async def test_cancellation_stops_a_retry_loop_at_once() -> None:
    sleeping = asyncio.Event()
    calls = 0

    async def always_down() -> None:
        nonlocal calls
        calls += 1
        raise ConnectionError("down")

    async def sleep(seconds: float) -> None:
        sleeping.set()
        await asyncio.sleep(1000)  # only a cancellation ends it

    retry = Retry(attempts=1000, initial_delay=10, max_delay=10, max_elapsed=10_000, sleep=sleep)
    task = asyncio.ensure_future(retry.call(always_down))
    await sleeping.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)  # cancelled inside the sleep, not after it
    assert calls == 1  # and not attempted again


def test_invalid_retry_settings() -> None:
    with pytest.raises(ValidationError, match="attempts"):
        Retry(attempts=-1)
    with pytest.raises(ValidationError, match="max_delay"):
        Retry(initial_delay=5, max_delay=1)


async def test_retry_a_block() -> None:
    time = FakeTime()
    retry = Retry(attempts=3, initial_delay=0.1, max_delay=0.1, sleep=time.sleep, clock=time)
    tries: list[int] = []
    async for attempt in retry.attempts():
        async with attempt:
            tries.append(attempt.number)
            if attempt.number < 3:
                raise ConnectionError("again")
    assert tries == [1, 2, 3]
    assert len(time.sleeps) == 2

    async def block(error: Exception) -> None:
        async for attempt in retry.attempts():
            async with attempt:
                tries.append(attempt.number)
                raise error

    tries.clear()
    with pytest.raises(ConnectionError):
        await block(ConnectionError("always"))
    assert tries == [1, 2, 3]
    tries.clear()
    with pytest.raises(ValueError):
        await block(ValueError("not retried"))
    assert tries == [1]


async def test_one_retry_shared_by_100_tasks_keeps_each_calls_attempts() -> None:
    """Decorator, call() and attempts() at once: each task's failures, attempts and
    outcome are its own (task i fails i % 4 times; 3 attempts in all)."""
    time = FakeTime()
    retry = Retry(attempts=3, initial_delay=0.01, max_delay=0.01, sleep=time.sleep, clock=time)
    tries: dict[int, int] = {}

    async def work(i: int) -> int:
        tries[i] = tries.get(i, 0) + 1
        await asyncio.sleep(0)  # let the other tasks interleave
        if tries[i] <= i % 4:
            raise ConnectionResetError(f"task {i}")
        return i

    decorated = retry(work)

    async def as_block(i: int) -> int:
        async for attempt in retry.attempts():
            async with attempt:
                return await work(i)
        raise AssertionError("attempts() ended without an outcome")

    async def run(i: int) -> int | str:
        how = (decorated, lambda n: retry.call(work, n), as_block)[i % 3]
        try:
            return await how(i)
        except ConnectionResetError as exc:
            return str(exc)

    results = await asyncio.gather(*(run(i) for i in range(100)))
    for i, result in enumerate(results):
        if i % 4 == 3:  # three failures: all attempts used, its own error raised
            assert (result, tries[i]) == (f"task {i}", 3), i
        else:
            assert (result, tries[i]) == (i, i % 4 + 1), i
