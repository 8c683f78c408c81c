"""Tracebacks drawn by ``rich`` on a terminal (``cordio[pretty]``), when it is installed.

Only the console writing to a terminal uses it (``log.console.rich``, default true); files,
JSON lines and the queued destinations keep plain tracebacks. The exception messages (and
notes) in the drawing are masked like every log line; local variables are never shown.
The drawing also shows the source lines around each frame, read from the files: when a
secret shows in them, the drawing is written without colour, masked like any text.
"""

from __future__ import annotations

import importlib.util
import io
import logging
import re
import shutil
from types import TracebackType
from typing import Any

from cordio.observe.logging import ConsoleFormatter
from cordio.observe.masking import Masker

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]
_ESCAPES = re.compile(r"\x1b\[[0-9;]*m")


def available() -> bool:
    """Whether ``rich`` can be imported (without importing it)."""
    return importlib.util.find_spec("rich") is not None


class RichConsoleFormatter(ConsoleFormatter):
    """The coloured console line, its traceback drawn by ``rich``.

    Args:
        masker: masks secrets in the exception messages.
        width: columns to draw in (default: the terminal's).
    """

    def __init__(self, masker: Masker, width: int | None = None) -> None:
        super().__init__(colour=True)
        self.masker = masker
        self.width = width

    def format(self, record: logging.LogRecord) -> str:
        exc_info = record.exc_info
        if not exc_info or exc_info[0] is None or exc_info[1] is None:
            return super().format(record)
        saved = record.exc_info, record.exc_text
        record.exc_info, record.exc_text = None, None
        try:
            line = super().format(record)
        finally:
            record.exc_info, record.exc_text = saved
        try:
            return line + "\n" + self.traceback((exc_info[0], exc_info[1], exc_info[2]))
        except Exception:  # never lose the line to the drawing
            return line + "\n" + (record.exc_text or self.formatException(exc_info))

    def traceback(self, exc_info: ExcInfo) -> str:
        """``exc_info`` drawn by rich, its messages masked, as text with colour codes."""
        from rich.console import Console
        from rich.traceback import Traceback

        trace = Traceback.extract(*exc_info, show_locals=False)
        self._mask(trace)
        out = io.StringIO()
        width = self.width or shutil.get_terminal_size().columns
        console = Console(file=out, force_terminal=True, width=width, color_system="standard")
        console.print(Traceback(trace, width=width, show_locals=False))
        drawn = out.getvalue().rstrip("\n")
        plain = _ESCAPES.sub("", drawn)
        masked = self.masker.text(plain)
        return drawn if masked == plain else masked

    def _mask(self, trace: Any) -> None:
        for stack in trace.stacks:
            stack.exc_value = self.masker.text(stack.exc_value)
            stack.notes = [self.masker.text(note) for note in stack.notes]
            for frame in stack.frames:
                if frame.line:
                    frame.line = self.masker.text(frame.line)
            for group in stack.exceptions:
                self._mask(group)
