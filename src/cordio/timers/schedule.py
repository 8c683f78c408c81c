"""When a timer fires: fixed intervals on the monotonic clock, cron expressions on the wall
clock of a time zone.

Cron expressions are read by croniter (the five fields of crontab(5), optionally a sixth
for seconds) on the *local* wall time of the zone; the next local time is then placed on
the time line with :mod:`zoneinfo`:

- a local time that does not exist (the hour skipped when clocks spring forward) runs at
  the same distance past the transition, once (02:30 on a day Berlin skips 02:00-03:00
  runs at 03:30 CEST);
- a local time that happens twice (the hour repeated when clocks fall back) runs at its
  first occurrence only (``fold=0``), as Vixie cron does;
- two local times that map to one instant run once.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cordio.errors import require_extra


def _croniter() -> Any:
    module: Any = require_extra("croniter", feature="Cron timers", extra="timers")
    return module.croniter


def check_cron(expression: str) -> None:
    """Check a cron expression.

    Raises:
        ValueError: naming what is wrong with it.
    """
    croniter = _croniter()
    if not isinstance(expression, str) or not expression.strip():
        raise ValueError("a cron expression must be a non-empty string")
    if not croniter.is_valid(expression):
        raise ValueError(f"{expression!r} is not a valid cron expression (crontab(5))")


def zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name`` (``"Europe/Berlin"``, ``"UTC"``).

    Raises:
        ValueError: no such zone.
    """
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"{name!r} is not a known time zone (IANA name)") from exc


@dataclass(frozen=True)
class Cron:
    """A cron schedule in a time zone.

    Args:
        expression: crontab(5) fields, e.g. ``"*/5 * * * *"``.
        tz: IANA zone name (default ``"UTC"``).

    Raises:
        ValueError: the expression or the zone is invalid.
    """

    expression: str
    tz: str = "UTC"

    def __post_init__(self) -> None:
        check_cron(self.expression)
        zone(self.tz)

    def next_after(self, instant: float) -> float:
        """The first fire time strictly after ``instant`` (Unix seconds), as Unix seconds."""
        tz = zone(self.tz)
        croniter = _croniter()
        local = dt.datetime.fromtimestamp(instant, tz).replace(tzinfo=None)
        iterator = croniter(self.expression, local)
        for _ in range(1000):  # a few steps at most: only DST transitions repeat
            candidate: dt.datetime = iterator.get_next(dt.datetime)
            at = candidate.replace(tzinfo=tz, fold=0).timestamp()
            if at > instant:
                return at
        raise ValueError(f"cron {self.expression!r} has no next fire time")  # pragma: no cover


@dataclass(frozen=True)
class Every:
    """A fixed interval on the monotonic clock.

    Args:
        seconds: the interval (> 0).

    Raises:
        ValueError: the interval is not a positive finite number.
    """

    seconds: float

    def __post_init__(self) -> None:
        if not (isinstance(self.seconds, int | float) and math.isfinite(self.seconds)):
            raise ValueError(f"the interval must be a number of seconds, got {self.seconds!r}")
        if self.seconds <= 0:
            raise ValueError(f"the interval must be positive, got {self.seconds} s")
