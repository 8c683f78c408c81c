"""The app's clocks: the system one never wakes a sleeper early, the fake one moves on
command."""

from __future__ import annotations

import asyncio
import random
import time

import pytest
import uvloop

from cordio.clock import FakeClock, SystemClock


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_the_system_clock_never_wakes_a_sleeper_before_its_deadline(loop: str) -> None:
    """uvloop's timers have millisecond resolution and may fire early: the clock sleeps the
    rest."""
    clock = SystemClock()
    early: list[float] = []

    async def main() -> None:
        rng = random.Random(7)
        for _ in range(150):
            deadline = time.monotonic() + rng.uniform(0.0001, 0.004)
            await clock.sleep_until(deadline)
            if time.monotonic() < deadline:
                early.append(deadline - time.monotonic())

    (uvloop.run if loop == "uvloop" else asyncio.run)(main())
    assert early == []


async def test_the_system_clock_yields_even_past_its_deadline() -> None:
    ran: list[bool] = []
    asyncio.get_running_loop().call_soon(ran.append, True)
    await SystemClock().sleep_until(time.monotonic() - 1)
    assert ran == [True]


async def test_the_fake_clock_wakes_sleepers_in_order_and_refuses_going_back() -> None:
    clock = FakeClock(start=1000.0)
    woken: list[tuple[str, float]] = []

    async def sleeper(name: str, at: float) -> None:
        await clock.sleep_until(at)
        woken.append((name, clock.monotonic()))

    tasks = [asyncio.ensure_future(sleeper(n, t)) for n, t in (("b", 5.0), ("a", 2.0))]
    await clock.advance(1.0)
    assert woken == []
    await clock.advance(10.0)
    assert woken == [("a", 2.0), ("b", 5.0)]
    assert clock.time() == 1011.0
    await asyncio.gather(*tasks)
    with pytest.raises(ValueError, match="cannot move a clock back"):
        await clock.advance(-1)
