"""The settings of each log destination: ``log.console`` and ``log.file`` (parts of the
``log`` section, :class:`~cordio.observe.logging.LogSettings`).

Each destination has its own ``level``: of the records the loggers make (``log.level``,
``log.levels``), it writes those at that level and above (none: all of them).
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Level = Literal["CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG"]
_WHEN = re.compile(r"S|M|H|D|MIDNIGHT|W[0-6]")


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


class _Part(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    @field_validator("level", mode="before", check_fields=False)
    @classmethod
    def _level(cls, value: Any) -> Any:
        return _upper(value)


class ConsoleSettings(_Part):
    """``log.console``: the process's standard error.

    Attributes:
        enabled: write to the console (default true).
        level: the least level written (default: every record made).
        format: ``console`` or ``json``; default ``log.format``.
        rich: on a terminal, tracebacks drawn by ``rich`` when it is installed
            (``cordio[pretty]``); default true.
    """

    enabled: bool = True
    level: Level | None = None
    format: Literal["console", "json"] | None = None
    rich: bool = True


class RotateSettings(_Part):
    """``log.file.rotate``: when the log file is renamed and a new one begun.

    By size (``max_bytes``) or by time (``when``), not both; neither: the file grows.

    Attributes:
        max_bytes: start a new file before one would grow past this size (0: never).
        when: start a new file every ``interval`` units of ``S``, ``M``, ``H``, ``D``, at
            ``midnight``, or on a weekday ``W0`` (Monday) to ``W6``; none: never.
        interval: how many ``when`` units a file spans (default 1).
        backups: old files kept (``app.log.1`` ... or dated names); the oldest are deleted.
        utc: times of ``when`` in UTC rather than local time.
    """

    max_bytes: int = Field(0, ge=0)
    when: str | None = None
    interval: int = Field(1, ge=1)
    backups: int = Field(5, ge=0)
    utc: bool = False

    @field_validator("when", mode="before")
    @classmethod
    def _when(cls, value: Any) -> Any:
        value = _upper(value)
        if isinstance(value, str) and not _WHEN.fullmatch(value):
            raise ValueError("use S, M, H, D, midnight or W0 to W6")
        return value

    def model_post_init(self, context: Any, /) -> None:
        if self.max_bytes and self.when:
            raise ValueError("rotate by size (max_bytes) or by time (when), not both")


class FileSettings(_Part):
    """``log.file``: a log file, rotated by size or time (the standard library's
    ``RotatingFileHandler`` and ``TimedRotatingFileHandler``).

    Attributes:
        path: the file (its folder is created); none: no file (default).
        level: the least level written (default: every record made).
        format: ``json`` (default) or ``console`` (never coloured).
        rotate: see :class:`RotateSettings`.
    """

    path: str | None = None
    level: Level | None = None
    format: Literal["console", "json"] = "json"
    rotate: RotateSettings = Field(default_factory=RotateSettings)
