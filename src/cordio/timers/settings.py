"""The ``timers`` section: each timer's schedule, settable without a release.

The section is a model built from the app's timers (a field per timer, named after its
handler, the code's values as defaults), so the ``config`` commands show, template and
check it like any section::

    [timers.expire_unpaid]
    seconds = 120          # an @app.every timer
    enabled = true

    [timers.nightly_report]
    cron = "30 2 * * *"    # an @app.cron timer
    tz = "Europe/Berlin"
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator

from cordio.settings import Settings
from cordio.timers.schedule import check_cron, zone

if TYPE_CHECKING:
    from cordio.timers.transport import TimerMeta


class EveryConfig(BaseModel):
    """``timers.<name>`` of an ``@app.every`` timer.

    Attributes:
        seconds: the interval (> 0).
        jitter: up to this many seconds added at random to each run's time (>= 0).
        enabled: false: the timer never fires.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    seconds: float = Field(gt=0, allow_inf_nan=False)
    jitter: float = Field(0.0, ge=0, allow_inf_nan=False)
    enabled: bool = True


class CronConfig(BaseModel):
    """``timers.<name>`` of an ``@app.cron`` timer.

    Attributes:
        cron: the crontab(5) expression.
        tz: IANA time zone the expression is read in.
        jitter: up to this many seconds added at random to each run's time (>= 0).
        enabled: false: the timer never fires.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    cron: str
    tz: str = "UTC"
    jitter: float = Field(0.0, ge=0, allow_inf_nan=False)
    enabled: bool = True

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        check_cron(value)
        return value

    @field_validator("tz")
    @classmethod
    def _valid_zone(cls, value: str) -> str:
        zone(value)
        return value


class TimersSettings(Settings, section="timers"):
    """Base of the ``timers`` section built by :func:`timers_settings`."""


def timers_settings(timers: dict[str, TimerMeta]) -> type[TimersSettings]:
    """The ``timers`` section of an app whose timers (handler name → options) are given:
    a field per timer whose keys default to the code's values, so configuration may set
    them one by one."""
    fields: dict[str, Any] = {}
    for name, meta in timers.items():
        common: dict[str, Any] = {
            "jitter": (float, Field(meta.jitter, ge=0, allow_inf_nan=False)),
            "enabled": (bool, meta.enabled),
        }
        base: type[BaseModel]
        own: dict[str, Any]
        if meta.cron is not None:
            base = CronConfig
            own = {"cron": (str, meta.cron), "tz": (str, meta.tz)}
        else:
            base = EveryConfig
            own = {"seconds": (float, Field(meta.seconds, gt=0, allow_inf_nan=False))}
        model: type[BaseModel] = create_model(f"Timer_{name}", __base__=base, **own, **common)
        fields[name] = (model, model())
    section: type[TimersSettings] = create_model(
        "TimersSettings", __base__=TimersSettings, __doc__=TimersSettings.__doc__, **fields
    )
    return section
