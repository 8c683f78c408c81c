"""Background task tracking and the in-flight call tracker."""

from __future__ import annotations

import asyncio

import pytest

from cordio.tasks import InFlight, TaskGroup


async def test_failed_task_is_logged_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    group = TaskGroup()

    async def boom() -> None:
        raise ValueError("bad tick")

    task = group.spawn(boom(), name="ticker")
    with pytest.raises(ValueError, match=r"^bad tick$"):
        await task
    assert group.failed == 1
    assert "background task 'ticker' failed" in caplog.text
    assert "bad tick" in caplog.text


async def test_aclose_cancels_running_tasks_and_refuses_new_ones() -> None:
    group = TaskGroup()
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def forever() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    group.spawn(forever(), name="forever")
    await started.wait()
    assert [t["name"] for t in group.running()] == ["forever"]
    await group.aclose()
    assert cancelled.is_set()
    assert group.failed == 0
    coro = forever()
    with pytest.raises(RuntimeError, match="not running"):
        group.spawn(coro, name="late")


async def test_drain_returns_when_calls_end_and_reports_timeouts() -> None:
    inflight = InFlight()
    assert await inflight.drain(0) is True
    release = asyncio.Event()
    entered = asyncio.Event()

    async def call() -> None:
        task = asyncio.current_task()
        assert task is not None
        inflight.tasks.add(task)
        entered.set()
        try:
            await release.wait()
        finally:
            inflight.discard(task)

    running = asyncio.ensure_future(call())
    await entered.wait()
    assert len(inflight) == 1
    assert await inflight.drain(0.01) is False
    draining = asyncio.ensure_future(inflight.drain(10))
    release.set()
    assert await draining is True
    await running


async def test_cancel_stops_stuck_calls() -> None:
    inflight = InFlight()
    entered = asyncio.Event()

    async def stuck() -> None:
        task = asyncio.current_task()
        assert task is not None
        inflight.tasks.add(task)
        entered.set()
        try:
            await asyncio.Event().wait()
        finally:
            inflight.discard(task)

    task = asyncio.ensure_future(stuck())
    await entered.wait()
    assert await inflight.cancel() == 1
    assert task.cancelled()
    assert len(inflight) == 0
