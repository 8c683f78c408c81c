"""Timers: run handlers every N seconds or at the times of a cron expression.

``@app.every(seconds=30)`` and ``@app.cron("*/5 * * * *", tz="Europe/Berlin")`` (see
:class:`~cordio.timers.transport.TimerTransport`); schedules settable under ``timers.<name>``
(:mod:`cordio.timers.settings`). Cron needs ``cordio[timers]`` (croniter).
"""

from cordio.timers.schedule import Cron, Every
from cordio.timers.service import TimerService
from cordio.timers.transport import TimerMeta, TimerTransport

__all__ = ["Cron", "Every", "TimerMeta", "TimerService", "TimerTransport"]
