"""The log file: the standard library's rotating handlers, chosen by ``log.file.rotate``.

By size (``rotate.max_bytes``): ``RotatingFileHandler`` renames ``app.log`` to
``app.log.1`` (``.1`` to ``.2``...) before a record would make it grow past the size, and
keeps ``rotate.backups`` old files. By time (``rotate.when``): ``TimedRotatingFileHandler``
renames it to ``app.log.2026-11-24`` (with the time for ``S``, ``M``, ``H``) at the end of
each period. With neither, a plain file that grows. Text that is not valid Unicode (lone
surrogates from undecodable bytes) is written as backslash escapes. The file is opened at
once, so a path that cannot be written is known at start-up; the folder is created.
"""

from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path

from cordio.observe.sinks.settings import FileSettings


class _FlushLimiterOnClose:
    """Writes the rate limiter's pending summaries when the handler is closed."""

    rate_limit: object = None

    def close(self) -> None:
        limiter, self.rate_limit = self.rate_limit, None
        flush = getattr(limiter, "flush", None)
        if flush is not None:
            flush()
        super().close()  # type: ignore[misc]


class LogFile(_FlushLimiterOnClose, logging.FileHandler):
    """A log file without rotation."""


class SizeRotatingLogFile(_FlushLimiterOnClose, logging.handlers.RotatingFileHandler):
    """A log file rotated by size."""


class TimeRotatingLogFile(_FlushLimiterOnClose, logging.handlers.TimedRotatingFileHandler):
    """A log file rotated by time."""


def file_handler(settings: FileSettings) -> logging.FileHandler:
    """The handler ``settings`` describe (no formatter, level or filters yet).

    Raises:
        OSError: the file or its folder cannot be created or opened.
    """
    if settings.path is None:
        raise ValueError("log.file.path is not set")
    path = Path(settings.path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rotate = settings.rotate
    if rotate.max_bytes:
        return SizeRotatingLogFile(
            path,
            maxBytes=rotate.max_bytes,
            backupCount=rotate.backups,
            encoding="utf-8",
            errors="backslashreplace",
        )
    if rotate.when:
        return TimeRotatingLogFile(
            path,
            when=rotate.when,
            interval=rotate.interval,
            backupCount=rotate.backups,
            utc=rotate.utc,
            encoding="utf-8",
            errors="backslashreplace",
        )
    return LogFile(path, encoding="utf-8", errors="backslashreplace")
