"""The settings of each log destination: ``log.console``, ``log.file``, ``log.postgres``
and ``log.broker`` (parts of the ``log`` section, :class:`~cordio.observe.logging.LogSettings`).

Each destination has its own ``level``: of the records the loggers make (``log.level``,
``log.levels``), it writes those at that level and above (none: all of them).
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

Level = Literal["CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG"]
_TABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?")
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


class _Queued(_Part):
    """What the queued destinations share."""

    enabled: bool = False
    level: Level = "INFO"
    queue_size: int = Field(10_000, ge=1)
    batch_size: int = Field(500, ge=1)
    flush_interval: float = Field(1.0, gt=0)
    shutdown_timeout: float = Field(5.0, ge=0)
    warn_interval: float = Field(60.0, gt=0)
    write_timeout: float = Field(10.0, gt=0)


class PostgresSinkSettings(_Queued):
    """``log.postgres``: records written to a PostgreSQL table in batches, off the request
    path (see :mod:`cordio.observe.sinks.postgres`).

    Attributes:
        enabled: write to PostgreSQL (default false).
        dsn: ``postgresql://user:password@host/db`` (a secret); or
        resource: the name of an app resource holding an asyncpg pool (started by the
            app because something uses it).
        table: the table, created when missing; ``schema.table`` allowed
            (default ``cordio_log``).
        level: the least level written (default ``INFO``).
        queue_size: records waiting at most; beyond, records are dropped and counted.
        batch_size: records per write.
        flush_interval: seconds between writes of a batch that is not full.
        write_timeout: seconds a write (or a connect) may take.
        shutdown_timeout: seconds the app's shutdown waits for queued records.
        warn_interval: at most one warning about dropped records per this many seconds.
    """

    dsn: SecretStr | None = None
    resource: str | None = None
    table: str = "cordio_log"

    @field_validator("table")
    @classmethod
    def _table(cls, value: str) -> str:
        if not _TABLE.fullmatch(value):
            raise ValueError("a table name is letters, digits and _, optionally schema.table")
        return value

    def model_post_init(self, context: Any, /) -> None:
        if self.enabled and (self.dsn is None) == (self.resource is None):
            raise ValueError("log.postgres needs either dsn or resource (one of them)")


class BrokerSinkSettings(_Queued):
    """``log.broker``: records, or only error facts, published as messages through the
    app's :class:`~cordio.messaging.Publisher` (see :mod:`cordio.observe.sinks.broker`).

    Attributes:
        enabled: publish (default false); the app must use messaging.
        destination: the queue, subject or exchange (default ``logs``).
        routing_key: the routing key when ``destination`` is an exchange.
        declare: create a queue for ``destination`` when the broker has none (default
            true).
        select: ``records`` (every record at ``level`` and above) or ``errors`` (only
            those carrying an exception: a traceback or cordio's ``error`` attribute).
        level: the least level published (default ``ERROR``).
        queue_size: records waiting at most; beyond, records are dropped and counted.
        batch_size: records published concurrently at most.
        flush_interval: seconds between publishes of a batch that is not full.
        write_timeout: seconds a batch's publishes may take.
        shutdown_timeout: seconds the app's shutdown waits for queued records.
        warn_interval: at most one warning about dropped records per this many seconds.
    """

    destination: str = "logs"
    routing_key: str | None = None
    declare: bool = True
    select: Literal["records", "errors"] = "records"
    level: Level = "ERROR"
    batch_size: int = Field(100, ge=1)
