"""rich tracebacks on a terminal, masked; plain ones elsewhere or without rich."""

from __future__ import annotations

import io
import logging
import re

import pytest

from cordio.observe.logging import ConsoleFormatter, LogSettings, configure_logging
from cordio.observe.sinks import pretty
from cordio.observe.sinks.settings import ConsoleSettings


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _fail(reason: str) -> None:
    raise PermissionError(f"login refused: {reason}")


def _fail_in_source() -> None:
    raise PermissionError("login with password=hunter2 refused")


def _log_failure(in_source: bool = False) -> None:
    try:
        if in_source:
            _fail_in_source()
        _fail("tok" + "en=hun" + "ter2")  # no secret in the source lines drawn
    except PermissionError:
        logging.getLogger("svc.pretty").exception("login failed")


def _console() -> logging.Handler:
    (handler,) = [h for h in logging.getLogger().handlers if getattr(h, "_cordio", False)]
    return handler


def test_a_terminal_gets_a_rich_traceback_masked(restore_logging: None) -> None:
    pytest.importorskip("rich")
    out = Terminal()
    configure_logging("svc", LogSettings(), out)
    assert isinstance(_console().formatter, pretty.RichConsoleFormatter)
    _log_failure()
    first, drawing = out.getvalue().split("\n", 1)
    assert "login failed" in first
    assert "Traceback" in drawing
    assert "\x1b[" in drawing
    assert "_fail" in drawing
    assert "hunter2" not in drawing
    assert "token=**********" in re.sub(r"\x1b\[[0-9;]*m", "", drawing)


def test_a_secret_in_the_source_lines_drawn_is_masked(restore_logging: None) -> None:
    pytest.importorskip("rich")
    out = Terminal()
    configure_logging("svc", LogSettings(), out)
    _log_failure(in_source=True)
    drawing = out.getvalue().split("\n", 1)[1]
    assert "Traceback" in drawing
    assert "_fail_in_source" in drawing
    assert "hunter2" not in drawing
    assert "password=**********" in drawing
    assert "\x1b[" not in drawing  # written plain, masked as text


def test_plain_tracebacks_without_rich_or_when_turned_off(
    restore_logging: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = Terminal()
    configure_logging("svc", LogSettings(console=ConsoleSettings(rich=False)), out)
    assert type(_console().formatter) is ConsoleFormatter
    monkeypatch.setattr(pretty, "available", lambda: False)
    configure_logging("svc", LogSettings(), out)
    assert type(_console().formatter) is ConsoleFormatter
    _log_failure()
    assert "Traceback (most recent call last):" in out.getvalue()
    assert "hunter2" not in out.getvalue()


def test_not_a_terminal_never_uses_rich(restore_logging: None) -> None:
    configure_logging("svc", LogSettings(), io.StringIO())
    assert type(_console().formatter) is ConsoleFormatter
