"""The app's clock: monotonic time for intervals, wall time for calendars, and sleeping.

Every transport that waits for time to pass (timers) reads the running app's clock, never
:mod:`time` directly, so :class:`~cordio.testing.TestApp` can swap in a :class:`FakeClock`
and move time on with ``await client.advance(seconds)``: what was due fires at once, in
order, with no real sleeping.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import Protocol


class Clock(Protocol):
    """Time as the app sees it."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (for intervals and deadlines)."""

    def time(self) -> float:
        """Seconds since the Unix epoch, UTC (for calendars; may jump)."""

    async def sleep_until(self, deadline: float) -> None:
        """Return once :meth:`monotonic` has reached ``deadline`` (at once if it has)."""


class SystemClock:
    """The real clocks: :func:`time.monotonic`, :func:`time.time`, :func:`asyncio.sleep`."""

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()

    async def sleep_until(self, deadline: float) -> None:
        """Sleep until :func:`time.monotonic` reaches ``deadline``; never return before it
        (uvloop's timers have millisecond resolution and may fire up to 1 ms early: the
        rest is slept again, at least 1 ms, so a run is late by at most that, never
        early); yield to the loop once even when the deadline has passed."""
        delay = deadline - time.monotonic()
        if delay <= 0:
            await asyncio.sleep(0)
            return
        await asyncio.sleep(delay)
        while (delay := deadline - time.monotonic()) > 0:  # noqa: ASYNC110 - a timer, no event
            await asyncio.sleep(max(delay, 0.001))


class FakeClock:
    """A clock that moves only when told to (:meth:`advance`); for tests.

    Args:
        start: the wall time it starts at (default: now); the monotonic clock starts at 0.

    Sleepers are woken in deadline order; after each wake-up the event loop runs until
    every task that can run has run, so a handler fired at ``t`` finishes (unless it waits
    on something else) before the clock moves past ``t``.
    """

    def __init__(self, start: float | None = None) -> None:
        self._now = 0.0
        self._epoch = time.time() if start is None else start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def monotonic(self) -> float:
        return self._now

    def time(self) -> float:
        return self._epoch + self._now

    async def sleep_until(self, deadline: float) -> None:
        if deadline <= self._now:
            await asyncio.sleep(0)
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (deadline, next(self._order), waiter))
        await waiter

    async def advance(self, seconds: float) -> None:
        """Move time on by ``seconds``, waking every sleeper due on the way, in order.

        Raises:
            ValueError: ``seconds`` is negative.
        """
        if seconds < 0:
            raise ValueError(f"cannot move a clock back ({seconds} s)")
        target = self._now + seconds
        await _settle()
        while self._sleepers and self._sleepers[0][0] <= target:
            deadline, _, waiter = heapq.heappop(self._sleepers)
            self._now = max(self._now, deadline)
            if not waiter.done():
                waiter.set_result(None)
            await _settle()
        self._now = target
        await _settle()

    async def jump(self, seconds: float) -> None:
        """Move time on by ``seconds`` at once, as a paused process or a suspended machine
        sees it: every sleeper due on the way wakes late, at the new time.

        Raises:
            ValueError: ``seconds`` is negative.
        """
        if seconds < 0:
            raise ValueError(f"cannot move a clock back ({seconds} s)")
        self._now += seconds
        await self.advance(0)


async def _settle(rounds: int = 20) -> None:
    """Let the event loop run what is ready: a few turns, so chains of wake-ups finish."""
    for _ in range(rounds):
        await asyncio.sleep(0)
