"""Timers on the app's fake clock: schedules, overlap, timeouts, missed runs, config."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Any

import pytest

from cordio import App, ConfigError, Context, Settings
from cordio.clock import FakeClock
from cordio.config import EnvSource
from cordio.policy import OnError, Retry, fallback
from cordio.testing import TestApp
from cordio.timers import TimerService


def env(name: str, **values: str) -> list[Any]:
    return [EnvSource(name, environ={f"{name.upper()}__{k}": v for k, v in values.items()})]


def service(client: TestApp, name: str) -> TimerService:
    assert client.runtime is not None
    found = [s for s in client.runtime.services if getattr(s, "name", None) == name]
    assert len(found) == 1
    timer: TimerService = found[0]
    return timer


async def test_every_fires_once_per_interval_after_the_first_interval() -> None:
    app = App("svc")
    fired: list[float] = []

    @app.every(seconds=10)
    async def tick(ctx: Context) -> None:
        fired.append(ctx.extra["scheduled_at"])

    async with TestApp(app) as client:
        start = client.clock.time()
        await client.advance(9.9)
        assert fired == []
        await client.advance(0.1)
        assert len(fired) == 1
        await client.advance(30)
        assert [round(t - start, 6) for t in fired] == [10, 20, 30, 40]
        assert service(client, "tick").runs == 4


async def test_start_immediately_runs_at_start() -> None:
    app = App("svc")
    fired: list[int] = []

    @app.every(seconds=60, start_immediately=True)
    async def tick() -> None:
        fired.append(1)

    async with TestApp(app) as client:
        await client.advance(0)
        assert fired == [1]
        await client.advance(60)
        assert fired == [1, 1]


async def test_a_timer_handler_gets_resources_settings_and_its_context() -> None:
    class JobSettings(Settings, section="job"):
        batch: int = 7

    app = App("svc")
    seen: list[tuple[Any, ...]] = []

    @app.resource
    async def store() -> list[str]:
        return ["row"]

    @app.every(seconds=1)
    async def expire(store: list[str], cfg: JobSettings, ctx: Context) -> None:
        seen.append((store, cfg.batch, ctx.handler, ctx.transport, len(ctx.trace_id)))

    async with TestApp(app) as client:
        await client.advance(1)
    assert seen == [(["row"], 7, "expire", "timers", 32)]


async def test_overlap_skip_counts_the_runs_it_skips() -> None:
    app = App("svc")
    release = asyncio.Event()
    started: list[int] = []

    @app.every(seconds=1)
    async def slow() -> None:
        started.append(1)
        await release.wait()

    async with TestApp(app) as client:
        await client.advance(1)
        await client.advance(3)
        timer = service(client, "slow")
        assert (len(started), timer.skipped) == (1, 3)
        release.set()
        await client.advance(1)
        assert len(started) == 2


async def test_overlap_queue_runs_one_after_the_other_and_keeps_one_waiting() -> None:
    app = App("svc")
    release = asyncio.Event()
    started: list[int] = []

    @app.every(seconds=1, overlap="queue")
    async def slow() -> None:
        started.append(1)
        await release.wait()

    async with TestApp(app) as client:
        await client.advance(3)  # one runs, one waits, one is skipped
        timer = service(client, "slow")
        assert (len(started), timer.skipped) == (1, 1)
        release.set()
        await client.advance(0)
        assert len(started) == 2  # the queued run started when the first ended


async def test_overlap_allow_runs_beside() -> None:
    app = App("svc")
    release = asyncio.Event()
    running: list[int] = []

    @app.every(seconds=1, overlap="allow")
    async def slow() -> None:
        running.append(1)
        await release.wait()

    async with TestApp(app) as client:
        await client.advance(3)
        assert len(running) == 3
        release.set()


async def test_a_run_past_its_timeout_is_cancelled_on_the_apps_clock(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = App("svc")
    cancelled = asyncio.Event()

    @app.every(seconds=10, timeout=2)
    async def stuck() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async with TestApp(app) as client:
        await client.advance(11.9)
        assert not cancelled.is_set()
        await client.advance(0.1)
        assert cancelled.is_set()
        timer = service(client, "stuck")
        assert (timer.timed_out, timer.failed) == (1, 0)
    assert "run cancelled after its timeout of 2 s" in caplog.text


async def test_a_failing_run_is_logged_with_its_trace_id_and_the_next_run_happens(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = App("svc")
    calls: list[str] = []

    @app.every(seconds=5)
    async def flaky(ctx: Context) -> None:
        calls.append(ctx.trace_id)
        if len(calls) == 1:
            raise RuntimeError("boom")

    caplog.set_level(logging.INFO)
    async with TestApp(app) as client:
        await client.advance(10)
        timer = service(client, "flaky")
        assert (timer.failed, timer.runs) == (1, 1)
    failures = [r for r in caplog.records if "flaky failed" in r.getMessage()]
    assert len(failures) == 1
    assert getattr(failures[0], "trace_id", None) == calls[0]
    assert failures[0].exc_info is not None
    assert "boom" in str(failures[0].exc_info[1])
    assert calls[0] != calls[1]  # each run is its own trace


async def test_policies_and_on_error_apply_to_timer_handlers() -> None:
    app = App("svc")
    attempts: list[int] = []

    @app.every(seconds=1)
    @OnError({KeyError: fallback(None)})
    @Retry(attempts=3, initial_delay=0, max_delay=0, on=(ConnectionError,))
    async def sync_prices() -> None:
        attempts.append(1)
        if len(attempts) < 3:
            raise ConnectionError("down")
        raise KeyError("missing")

    async with TestApp(app) as client:
        await client.advance(1)
        await asyncio.sleep(0)
        timer = service(client, "sync_prices")
        assert (len(attempts), timer.failed, timer.runs) == (3, 0, 1)


async def test_missed_runs_after_a_pause_are_skipped_or_caught_up_once() -> None:
    app = App("svc")
    runs: dict[str, int] = {"skip": 0, "catch_up": 0}

    @app.every(seconds=10)
    async def skipper() -> None:
        runs["skip"] += 1

    @app.every(seconds=10, missed="catch_up")
    async def catcher() -> None:
        runs["catch_up"] += 1

    async with TestApp(app) as client:
        await client.clock.jump(35)  # the process was paused through three run times
        assert runs == {"skip": 0, "catch_up": 1}
        assert service(client, "skipper").missed == 3
        assert service(client, "catcher").missed == 3
        await client.advance(5)  # the schedule goes on from where it was: 40 s
        assert runs == {"skip": 1, "catch_up": 2}


async def test_cron_fires_at_its_wall_clock_times() -> None:
    app = App("svc")
    fired: list[str] = []
    start = dt.datetime(2026, 6, 1, 11, 58, 30, tzinfo=dt.UTC).timestamp()

    @app.cron("*/5 * * * *", tz="Europe/Berlin")
    async def digest(ctx: Context) -> None:
        when = dt.datetime.fromtimestamp(ctx.extra["scheduled_at"], dt.UTC)
        fired.append(when.strftime("%H:%M:%S"))

    async with TestApp(app, clock=FakeClock(start=start)) as client:
        timer = service(client, "digest")
        assert timer.next_run == dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC).timestamp()
        await client.advance(60 * 11)
    assert fired == ["12:00:00", "12:05:00"]


async def test_schedules_are_set_from_configuration() -> None:
    app = App("svc", config=env("svc", TIMERS__TICK__SECONDS="2", TIMERS__OFF__ENABLED="false"))
    fired: dict[str, int] = {"tick": 0, "off": 0}

    @app.every(seconds=60)
    async def tick() -> None:
        fired["tick"] += 1

    @app.every(seconds=1)
    async def off() -> None:
        fired["off"] += 1

    async with TestApp(app) as client:
        await client.advance(6)
        assert client.app.config.explain("timers.tick.seconds") == "env:SVC__TIMERS__TICK__SECONDS"
    assert fired == {"tick": 3, "off": 0}


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("TIMERS__TICK__SECONDS", "0", "timers.tick.seconds"),
        ("TIMERS__TICK__SECONDS", "-5", "timers.tick.seconds"),
        ("TIMERS__NIGHTLY__CRON", "61 * * * *", "timers.nightly.cron"),
        ("TIMERS__NIGHTLY__TZ", "Mars/Olympus", "timers.nightly.tz"),
        ("TIMERS__TICK__EVERY", "5", "timers.tick.every"),
    ],
)
async def test_a_bad_schedule_in_configuration_stops_start_up_naming_the_key(
    key: str, value: str, message: str
) -> None:
    app = App("svc", config=env("svc", **{key: value}))

    @app.every(seconds=60)
    async def tick() -> None: ...

    @app.cron("0 3 * * *")
    async def nightly() -> None: ...

    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        async with TestApp(app):
            pass


@pytest.mark.parametrize(
    ("register", "message"),
    [
        (lambda app: app.every(seconds=0), "timer 'job': the interval must be positive"),
        (lambda app: app.every(seconds=-1), "timer 'job': the interval must be positive"),
        (lambda app: app.cron("every minute"), "timer 'job': 'every minute' is not a valid"),
        (lambda app: app.cron("* * * * *", tz="Nowhere/City"), "timer 'job': 'Nowhere/City'"),
        (lambda app: app.every(seconds=1, jitter=-1), "timer 'job': jitter must be"),
        (lambda app: app.every(seconds=1, overlap="merge"), "timer 'job': overlap must be"),
        (lambda app: app.every(seconds=1, timeout=0), "timer 'job': timeout must be"),
    ],
)
def test_an_invalid_schedule_is_refused_naming_the_handler(register: Any, message: str) -> None:
    app = App("svc")
    with pytest.raises(ValueError, match=message):

        @register(app)
        async def job() -> None: ...


async def test_shutdown_drains_a_running_timer_handler() -> None:
    app = App("svc", config=env("svc", SHUTDOWN__GRACE="5"))
    entered, release = asyncio.Event(), asyncio.Event()
    finished: list[bool] = []

    @app.every(seconds=1)
    async def work() -> None:
        entered.set()
        await release.wait()
        finished.append(True)

    client = TestApp(app)
    await client.__aenter__()
    assert client.runtime is not None
    await client.advance(1)
    assert entered.is_set()
    stopping = asyncio.ensure_future(client.runtime.stop())
    await asyncio.sleep(0)
    assert not stopping.done()
    await client.advance(5)  # no new run starts while stopping
    release.set()
    assert await stopping is True
    assert finished == [True]
    await client.aclose()


async def test_timers_run_on_the_real_clock_too() -> None:
    app = App("svc", config=env("svc", HTTP__PORT="0", ADMIN__PORT="0"))
    three = asyncio.Event()
    count: list[int] = []

    @app.every(seconds=0.02)
    async def tick() -> None:
        count.append(1)
        if len(count) == 3:
            three.set()

    async with app.running():
        await asyncio.wait_for(three.wait(), timeout=5)
