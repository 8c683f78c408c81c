"""Cron fire times across daylight saving time changes, and interval checks."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from cordio.timers import Cron, Every

BERLIN = ZoneInfo("Europe/Berlin")


def fires(cron: Cron, start: dt.datetime, end: dt.datetime) -> list[str]:
    """Every fire time of ``cron`` in [start, end), as Berlin local times with offsets."""
    found = []
    at = cron.next_after(start.timestamp() - 1e-6)
    while at < end.timestamp():
        found.append(dt.datetime.fromtimestamp(at, BERLIN).strftime("%m-%d %H:%M%z"))
        at = cron.next_after(at)
    return found


def test_a_0230_job_runs_once_on_the_spring_forward_day() -> None:
    # 2026-03-29: Berlin skips from 02:00 CET to 03:00 CEST; 02:30 does not exist
    cron = Cron("30 2 * * *", tz="Europe/Berlin")
    start = dt.datetime(2026, 3, 28, 0, 0, tzinfo=BERLIN)
    assert fires(cron, start, start + dt.timedelta(days=3)) == [
        "03-28 02:30+0100",
        "03-29 03:30+0200",  # the same distance past the transition, once
        "03-30 02:30+0200",
    ]


def test_a_0230_job_runs_once_on_the_fall_back_day() -> None:
    # 2026-10-25: Berlin repeats 02:00-03:00 (CEST, then CET); 02:30 happens twice
    cron = Cron("30 2 * * *", tz="Europe/Berlin")
    start = dt.datetime(2026, 10, 24, 0, 0, tzinfo=BERLIN)
    assert fires(cron, start, start + dt.timedelta(days=3)) == [
        "10-24 02:30+0200",
        "10-25 02:30+0200",  # the first occurrence only
        "10-26 02:30+0100",
    ]


def test_an_hourly_job_never_runs_twice_at_one_instant_across_the_gap() -> None:
    cron = Cron("0 * * * *", tz="Europe/Berlin")
    start = dt.datetime(2026, 3, 29, 0, 0, tzinfo=BERLIN)
    assert fires(cron, start, start + dt.timedelta(hours=5)) == [  # wall-clock hours
        "03-29 00:00+0100",
        "03-29 01:00+0100",
        "03-29 03:00+0200",  # 02:00 and 03:00 local are one instant: one run
        "03-29 04:00+0200",
    ]


def test_cron_in_utc_ignores_local_daylight_saving() -> None:
    cron = Cron("0 12 * * *")
    start = dt.datetime(2026, 3, 28, 13, 0, tzinfo=dt.UTC)
    first = cron.next_after(start.timestamp())
    assert dt.datetime.fromtimestamp(first, dt.UTC) == dt.datetime(2026, 3, 29, 12, tzinfo=dt.UTC)


@pytest.mark.parametrize("seconds", [0, -1, float("nan"), float("inf"), "5"])
def test_an_interval_must_be_a_positive_finite_number(seconds: object) -> None:
    with pytest.raises(ValueError, match="interval"):
        Every(seconds)  # type: ignore[arg-type]
