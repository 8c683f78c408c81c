"""One timer while the app runs: sleep on the app's clock, fire the handler, repeat.

Each run is a task of its own, through the handler's invoker and its error pipeline
(injection, policies, ``OnError`` — the handler's and the app's —, in-flight tracking for
the shutdown drain, the event context with a trace id). The scheduling loop never waits
for a run: overlap, timeouts and missed runs are decided by the timer's options
(:class:`~cordio.timers.transport.TimerMeta`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import random

from cordio.clock import Clock
from cordio.context import Context
from cordio.handler import Invoker
from cordio.outcome import Outcome
from cordio.timers.schedule import Cron
from cordio.timers.transport import TimerMeta

log = logging.getLogger("cordio.timers")

#: Longest sleep between looks at the wall clock while waiting for a cron time (seconds),
#: so a wall clock that jumps is noticed within this long.
WALL_CHECK = 60.0


class TimerService:
    """Fires one timer's handler on its schedule.

    Args:
        name: the handler's name.
        meta: the timer's options, configuration applied.
        invoker: the handler's compiled call.
        clock: the app's clock.

    Attributes:
        runs: runs that returned.
        failed: runs that raised (logged with their trace id; the next run still happens).
        timed_out: runs cancelled by the timer's ``timeout``.
        skipped: runs not started because the previous one was still running.
        missed: runs whose time passed while the timer could not fire (see ``missed``).
        next_run: Unix time of the next run, or ``None`` when there is none.
    """

    def __init__(
        self,
        name: str,
        meta: TimerMeta,
        invoker: Invoker,
        clock: Clock,
    ) -> None:
        self.name = name
        self.meta = meta
        self.invoker = invoker
        self.clock = clock
        self.runs = self.failed = self.timed_out = self.skipped = self.missed = 0
        self.next_run: float | None = None
        self._cron = Cron(meta.cron, meta.tz) if meta.cron is not None else None
        self._random = random.Random()
        self._running: set[asyncio.Task[None]] = set()
        self._queued: float | None = None
        self._loop: asyncio.Task[None] | None = None
        self._accepting = True
        self._announced = False

    def __repr__(self) -> str:
        return f"<TimerService {self.name}>"

    async def start(self) -> None:
        """Schedule the first run (counted from now) and return; a disabled timer logs it
        and never fires."""
        if not self.meta.enabled:
            log.info("timer %s is disabled (timers.%s.enabled)", self.name, self.name)
            return
        # the first run's time counts from now, not from when the loop task first runs
        if self._cron is not None:
            wall = self._cron.next_after(self.clock.time())
            schedule = self._schedule_cron(self._cron, wall)
        else:
            assert self.meta.seconds is not None
            first = 0.0 if self.meta.start_immediately else self.meta.seconds
            wall = self.clock.time() + first
            schedule = self._schedule_every(self.clock.monotonic() + first)
        self.next_run = wall
        self._loop = asyncio.get_running_loop().create_task(
            schedule, name=f"cordio.timer:{self.name}"
        )

    async def stop_accepting(self) -> None:
        """Start no more runs; runs in progress are drained by the app."""
        self._accepting = False
        self._queued = None
        if self._loop is not None:
            self._loop.cancel()
            await asyncio.gather(self._loop, return_exceptions=True)
            self._loop = None
        self.next_run = None

    async def stop(self) -> None:
        """Stop scheduling and cancel runs still going (the app drained them first)."""
        await self.stop_accepting()
        for task in list(self._running):
            task.cancel()
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)

    # -- scheduling ---------------------------------------------------------------------

    def _jitter(self) -> float:
        return self._random.uniform(0, self.meta.jitter) if self.meta.jitter else 0.0

    async def _schedule_every(self, due: float) -> None:
        clock = self.clock
        interval = self.meta.seconds
        assert interval is not None
        while True:
            at = due + self._jitter()
            self._announce(clock.time() + (at - clock.monotonic()))
            await clock.sleep_until(at)
            now = clock.monotonic()
            passed = 1 + math.floor(max(0.0, now - at) / interval)
            latest = at + (passed - 1) * interval
            self._due(passed, now - latest, now - at, clock.time() - (now - latest))
            due += passed * interval

    async def _schedule_cron(self, cron: Cron, wall: float) -> None:
        clock = self.clock
        while True:
            at = wall + self._jitter()
            self._announce(at)
            while (remaining := at - clock.time()) > 0:
                await clock.sleep_until(clock.monotonic() + min(remaining, WALL_CHECK))
            now = clock.time()
            passed, latest = 1, wall
            while (following := cron.next_after(latest)) <= now and passed < 10_000:
                passed, latest = passed + 1, following
            self._due(passed, now - latest, now - wall, latest)
            wall = cron.next_after(max(now, latest))

    def _announce(self, at: float) -> None:
        level = logging.DEBUG if self._announced else logging.INFO
        self._announced = True
        self.next_run = at
        if log.isEnabledFor(level):  # formatting the time costs more than the tick itself
            when = dt.datetime.fromtimestamp(at, dt.UTC).isoformat(timespec="milliseconds")
            log.log(level, "timer %s: next run at %s", self.name, when)

    def _due(self, passed: int, late: float, first_late: float, scheduled: float) -> None:
        """``passed`` run times went by, the first ``first_late`` seconds ago, the latest
        ``late`` seconds ago, at ``scheduled`` (Unix time). Run times the timer woke too late
        for are missed: logged at WARNING when one of them is more than ``misfire_grace``
        late (a pause), at DEBUG when the interval is only shorter than the loop's latency."""
        on_time = late <= self.meta.misfire_grace
        missed = passed - 1 + (0 if on_time else 1)
        if missed:
            self.missed += missed
            action = "running once now" if self.meta.missed == "catch_up" else "skipped"
            paused = first_late > self.meta.misfire_grace
            log.log(
                logging.WARNING if paused else logging.DEBUG,
                "timer %s: %d run(s) missed (the first %.3f s late); %s",
                self.name,
                missed,
                first_late,
                action,
                extra={"handler": self.name},
            )
        if on_time or self.meta.missed == "catch_up":
            self._fire(scheduled)

    def _fire(self, scheduled: float) -> None:
        if not self._accepting:
            return
        if self._running and self.meta.overlap != "allow":
            if self.meta.overlap == "queue" and self._queued is None:
                self._queued = scheduled
                return
            self.skipped += 1
            log.warning(
                "timer %s: run skipped, the previous one is still running (%d skipped)",
                self.name,
                self.skipped,
                extra={"handler": self.name},
            )
            return
        task = asyncio.get_running_loop().create_task(
            self._run(scheduled), name=f"cordio.timer-run:{self.name}"
        )
        self._running.add(task)
        task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        if self._queued is not None and not self._running:
            queued, self._queued = self._queued, None
            self._fire(queued)

    # -- one run ------------------------------------------------------------------------

    async def _run(self, scheduled: float) -> None:
        ctx = Context(self.name, "timers")
        ctx.extra["scheduled_at"] = scheduled
        timeout = self.meta.timeout
        expired: list[bool] = []
        watchdog = None
        if timeout is not None:  # on the app's clock, so a fake clock cuts runs too
            watchdog = asyncio.get_running_loop().create_task(
                self._expire(asyncio.current_task(), timeout, expired)
            )
        try:
            outcome = await self.invoker.run({}, ctx)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if not expired or task is None or task.uncancel() > 0:
                raise
            self.timed_out += 1
            log.warning(
                "timer %s: run cancelled after its timeout of %.3g s",
                self.name,
                timeout,
                extra={"handler": self.name, "trace_id": ctx.trace_id},
            )
        else:
            self._done(outcome, ctx)
        finally:
            if watchdog is not None:
                watchdog.cancel()
            # no longer running from here, not only from the done callback a loop turn later
            # (a run due in between would be skipped as overlapping a finished one)
            task = asyncio.current_task()
            if task is not None:
                self._running.discard(task)

    async def _expire(
        self, run: asyncio.Task[object] | None, timeout: float, expired: list[bool]
    ) -> None:
        await self.clock.sleep_until(self.clock.monotonic() + timeout)
        if run is not None and not run.done():
            expired.append(True)
            run.cancel()

    def _done(self, outcome: Outcome, ctx: Context) -> None:
        if outcome.ok:
            self.runs += 1  # a value, or an OnError fallback
            return
        self.failed += 1
        if outcome.recorded:  # an OnError rule logged it
            return
        extra = {"handler": self.name, "trace_id": ctx.trace_id}
        if outcome.signal is not None:
            log.error(
                "timer %s settled with %s; settle signals are for message handlers",
                self.name,
                type(outcome.signal).__name__,
                extra=extra,
            )
            return
        log.error(
            "timer %s failed; the next run is still scheduled",
            self.name,
            exc_info=outcome.error,
            extra={**extra, "error": type(outcome.error).__name__},
        )
