"""Bulkhead: running and waiting limits, rejections logged once per state change, sharing."""

from __future__ import annotations

import asyncio
import logging

import pytest

from cordio.policy import Bulkhead, BulkheadFullError, BulkheadSettings
from tests.eventually import eventually


async def test_limits_running_and_waiting_calls() -> None:
    bulkhead = Bulkhead(max_concurrent=2, max_queued=1)
    release = asyncio.Event()
    running = 0
    peak = 0

    @bulkhead
    async def work() -> str:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await release.wait()
        running -= 1
        return "done"

    tasks = [asyncio.ensure_future(work()) for _ in range(3)]
    await eventually(lambda: (running, bulkhead.waiting) == (2, 1), what="2 running, 1 waiting")
    with pytest.raises(BulkheadFullError, match="2 calls running and 1 waiting"):
        await work()
    release.set()
    assert await asyncio.gather(*tasks) == ["done"] * 3
    assert (peak, bulkhead.waiting, bulkhead.rejected) == (2, 0, 1)


async def test_rejections_log_once_per_state_change(caplog: pytest.LogCaptureFixture) -> None:
    bulkhead = Bulkhead(max_concurrent=1, max_queued=0, name="pricing")
    release = asyncio.Event()
    entered = asyncio.Event()

    @bulkhead
    async def work() -> None:
        entered.set()
        await release.wait()

    caplog.set_level(logging.DEBUG, "cordio.policy")
    holder = asyncio.ensure_future(work())
    await entered.wait()
    for _ in range(1000):
        with pytest.raises(BulkheadFullError, match="1 calls running and 0 waiting"):
            await work()
    release.set()
    await holder
    await work()
    await work()
    lines = [r.getMessage() for r in caplog.records if r.name == "cordio.policy"]
    assert lines == [
        "bulkhead pricing: full (1 running, 0 waiting); rejecting calls",
        "bulkhead pricing: accepting calls again",
    ]
    assert bulkhead.rejected == 1000
    assert all(r.exc_info is None for r in caplog.records)


async def test_one_bulkhead_shared_by_100_tasks_as_decorator_and_block() -> None:
    bulkhead = Bulkhead(max_concurrent=5, max_queued=1000)
    gate = asyncio.Event()
    running = 0
    peak = 0

    async def work(i: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await gate.wait()
        await asyncio.sleep(0)
        running -= 1
        return i

    decorated = bulkhead(work)

    async def as_block(i: int) -> int:
        async with bulkhead:
            return await work(i)

    tasks = [asyncio.ensure_future((decorated, as_block)[i % 2](i)) for i in range(100)]
    await eventually(lambda: (running, bulkhead.waiting) == (5, 95), what="5 running, 95 waiting")
    gate.set()
    assert await asyncio.gather(*tasks) == list(range(100))
    assert (peak, running, bulkhead.waiting) == (5, 0, 0)


async def test_configure_while_calls_run_releases_what_each_call_took() -> None:
    bulkhead = Bulkhead(max_concurrent=1, max_queued=10)
    inside = 0
    release = asyncio.Event()

    async def hold() -> None:
        nonlocal inside
        async with bulkhead:
            inside += 1
            await release.wait()

    task = asyncio.ensure_future(hold())
    await eventually(lambda: inside == 1, what="one call inside")
    bulkhead.configure(BulkheadSettings(max_concurrent=2, max_queued=0))
    release.set()
    await task  # released the old semaphore; the new one is untouched
    release.clear()
    started = [asyncio.ensure_future(hold()) for _ in range(2)]
    await eventually(lambda: inside == 3, what="two calls inside the new limit")
    with pytest.raises(BulkheadFullError, match="2 calls running and 0 waiting"):
        async with bulkhead:
            pass
    release.set()
    await asyncio.gather(*started)
    assert (bulkhead.waiting, bulkhead.rejected) == (0, 1)
