"""Timeout: decorator and block, outside cancellation, inner timeouts, sharing."""

from __future__ import annotations

import asyncio
import time

import pytest

from cordio.policy import PolicyTimeoutError, Timeout


async def test_decorator_and_block_raise_policy_timeout() -> None:
    limit = Timeout(0.01, name="pricing")

    @limit
    async def stuck() -> None:
        await asyncio.Event().wait()

    with pytest.raises(PolicyTimeoutError, match=r"pricing: took longer than 0\.01 s"):
        await stuck()
    with pytest.raises(PolicyTimeoutError, match=r"^pricing: took longer than 0\.01 s$"):
        async with limit:
            await asyncio.Event().wait()
    async with Timeout(1):
        await asyncio.sleep(0)
    assert limit.timed_out == 2


async def test_never_hides_an_outside_cancellation() -> None:
    entered = asyncio.Event()

    @Timeout(100)
    async def long() -> None:
        entered.set()
        await asyncio.Event().wait()

    task = asyncio.ensure_future(long())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_timeout_inside_the_call_is_not_ours() -> None:
    limit = Timeout(100)

    @limit
    async def socket_timeout() -> None:
        raise TimeoutError("the socket's own timeout")

    with pytest.raises(TimeoutError, match="the socket's own") as info:
        await socket_timeout()
    assert not isinstance(info.value, PolicyTimeoutError)
    with pytest.raises(TimeoutError, match="the socket's own"):
        async with limit:
            raise TimeoutError("the socket's own timeout")
    assert limit.timed_out == 0


async def test_one_timeout_shared_by_100_tasks_limits_each_call() -> None:
    """Half the tasks never finish, half finish at once, through one Timeout used as a
    decorator and as a block; every stuck call times out after its own limit and no quick
    one does."""
    limit = Timeout(0.05)
    never = asyncio.Event()

    async def work(i: int) -> int:
        await asyncio.sleep(0)
        if i % 2:
            await never.wait()
        return i

    decorated = limit(work)

    async def as_block(i: int) -> int:
        async with limit:
            return await work(i)

    async def run(i: int) -> tuple[int | str, float]:
        started = time.monotonic()
        try:
            result: int | str = await (decorated if i % 4 < 2 else as_block)(i)
        except PolicyTimeoutError:
            result = "timeout"
        return result, time.monotonic() - started

    started = time.monotonic()
    outcomes = await asyncio.gather(*(run(i) for i in range(100)))
    assert time.monotonic() - started < 2
    for i, (result, took) in enumerate(outcomes):
        if i % 2:
            assert result == "timeout", i
            assert 0.05 - 0.001 <= took < 0.05 + 0.5, (i, took)  # its own limit, not before
        else:
            assert result == i, i
    assert limit.timed_out == 50


async def test_nested_blocks_of_one_shared_timeout_in_one_task() -> None:
    limit = Timeout(0.05)
    async with limit, limit:
        await asyncio.sleep(0)
    began = time.monotonic()
    with pytest.raises(PolicyTimeoutError):
        async with limit, limit:  # started later: the outer block's limit fires first
            await asyncio.Event().wait()
    assert time.monotonic() - began >= 0.05 - 0.001
    assert limit.timed_out == 1
    with pytest.raises(RuntimeError, match="did not enter"):
        await limit.__aexit__(None, None, None)
