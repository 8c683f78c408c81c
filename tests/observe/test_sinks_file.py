"""The console and file destinations: rotation by size and by time, JSON lines, a level
per destination, an unwritable path, huge and non-UTF-8 messages, secrets masked."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cordio.observe.logging import LogSettings, configure_logging
from cordio.observe.sinks.settings import ConsoleSettings, FileSettings, RotateSettings


@pytest.fixture
def closing(restore_logging: None) -> Iterator[None]:
    """Close the file handlers a test installed (restore_logging only unhooks them)."""
    before = set(logging.getLogger().handlers)
    yield
    for handler in set(logging.getLogger().handlers) - before:
        handler.close()


def _file(path: Path, **options: object) -> FileSettings:
    return FileSettings(path=str(path), **options)  # type: ignore[arg-type]


def _file_handler() -> logging.FileHandler:
    found = [h for h in logging.getLogger().handlers if getattr(h, "_cordio", False)]
    found = [h for h in found if isinstance(h, logging.FileHandler)]
    assert len(found) == 1
    return found[0]


def test_size_rotation_keeps_the_configured_backups(tmp_path: Path, closing: None) -> None:
    path = tmp_path / "logs" / "app.log"  # the folder is created
    rotate = RotateSettings(max_bytes=2000, backups=2)
    settings = LogSettings(console=ConsoleSettings(enabled=False), file=_file(path, rotate=rotate))
    configure_logging("svc", settings, io.StringIO())
    log = logging.getLogger("svc.rotate")
    for i in range(200):
        log.info("line %03d %s", i, "x" * 60)
    names = sorted(p.name for p in path.parent.iterdir())
    assert names == ["app.log", "app.log.1", "app.log.2"]
    for file in path.parent.iterdir():
        assert file.stat().st_size <= 2000
        for line in file.read_text().splitlines():  # every line is a JSON object
            assert json.loads(line)["app"] == "svc"
    last = json.loads(path.read_text().splitlines()[-1])
    assert last["message"].startswith("line 199 ")
    assert last["logger"] == "svc.rotate"


def test_time_rotation_at_midnight_names_backups_by_date(tmp_path: Path, closing: None) -> None:
    path = tmp_path / "app.log"
    rotate = RotateSettings(when="midnight", backups=2, utc=True)
    settings = LogSettings(console=ConsoleSettings(enabled=False), file=_file(path, rotate=rotate))
    configure_logging("svc", settings, io.StringIO())
    handler = _file_handler()
    assert isinstance(handler, logging.handlers.TimedRotatingFileHandler)
    logger = logging.getLogger("svc.daily")
    logger.info("today")
    day = 86400
    midnight = int(time.time()) // day * day  # the last one, UTC
    # a rollover time already past makes the next record start a new file, named for
    # the day that ended then: four days' rollovers, the oldest two deleted
    for i in range(4):
        handler.rolloverAt = midnight - (3 - i) * day
        logger.info("day %d", i)
    backups = sorted(p.name for p in tmp_path.iterdir() if p.name != "app.log")
    ended = [time.strftime("%Y-%m-%d", time.gmtime(midnight - (3 - i) * day - day)) for i in (2, 3)]
    assert backups == [f"app.log.{d}" for d in ended]  # the two newest of four
    assert [json.loads(x)["message"] for x in path.read_text().splitlines()] == ["day 3"]


def test_forced_rollover_starts_a_new_file(tmp_path: Path, closing: None) -> None:
    path = tmp_path / "app.log"
    rotate = RotateSettings(when="H", backups=3)
    settings = LogSettings(console=ConsoleSettings(enabled=False), file=_file(path, rotate=rotate))
    configure_logging("svc", settings, io.StringIO())
    logging.getLogger("svc").warning("before")
    _file_handler().doRollover()
    logging.getLogger("svc").warning("after")
    (backup,) = [p for p in tmp_path.iterdir() if p.name != "app.log"]
    assert json.loads(backup.read_text())["message"] == "before"
    assert json.loads(path.read_text())["message"] == "after"


def test_a_level_and_a_format_per_destination(tmp_path: Path, closing: None) -> None:
    path = tmp_path / "app.log"
    stream = io.StringIO()
    settings = LogSettings(
        level="DEBUG",
        format="json",
        console=ConsoleSettings(level="WARNING", format="console"),
        file=_file(path, level="DEBUG", format="console"),
    )
    configure_logging("svc", settings, stream)
    logging.getLogger("svc").debug("details")
    logging.getLogger("svc").warning("attention")
    assert "details" not in stream.getvalue()
    assert "WARNING svc [svc] attention" in stream.getvalue()
    lines = path.read_text().splitlines()
    assert len(lines) == 2
    assert "DEBUG   svc [svc] details" in lines[0]
    assert "\x1b[" not in path.read_text()  # a file is never coloured


def test_console_off_writes_nothing_to_the_stream(tmp_path: Path, closing: None) -> None:
    stream = io.StringIO()
    path = tmp_path / "app.log"
    configure_logging(
        "svc", LogSettings(console=ConsoleSettings(enabled=False), file=_file(path)), stream
    )
    logging.getLogger("svc").error("only in the file")
    assert stream.getvalue() == ""
    assert json.loads(path.read_text())["message"] == "only in the file"


def test_an_unwritable_path_is_said_on_the_console(tmp_path: Path, closing: None) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    stream = io.StringIO()
    configure_logging("svc", LogSettings(file=_file(blocker / "app.log")), stream)
    logging.getLogger("svc").info("still logging")
    out = stream.getvalue()
    assert "log.file.path: cannot write" in out
    assert "still logging" in out


def test_both_size_and_time_rotation_is_refused() -> None:
    with pytest.raises(ValueError, match="not both"):
        RotateSettings(max_bytes=10, when="midnight")
    with pytest.raises(ValueError, match="midnight"):
        RotateSettings(when="fortnightly")


def test_hostile_messages_in_console_and_file(tmp_path: Path, closing: None) -> None:
    path = tmp_path / "app.log"
    stream = io.StringIO()
    settings = LogSettings(format="json", max_message_chars=1000, file=_file(path))
    configure_logging("svc", settings, stream)
    log = logging.getLogger("svc.hostile")
    log.info("huge %s", "y" * 1_000_000)
    log.info("bytes %s nul \x00 end", b"caf\xe9".decode("utf-8", "surrogateescape"))
    log.warning("connect postgresql://app:hunter2@db/orders with password=hunter2")
    try:
        raise ValueError("token=hunter2 refused")
    except ValueError:
        log.exception("login failed")
    for text in (stream.getvalue(), path.read_text(encoding="utf-8")):
        huge, odd, secret, failed = (json.loads(x) for x in text.splitlines())
        assert len(huge["message"]) < 1100
        assert huge["message"].endswith("… [999069 more characters]")
        assert odd["message"].startswith("bytes caf")
        assert "hunter2" not in text
        assert "password=**********" in secret["message"]
        assert "token=**********" in failed["exc"]
        assert failed["message"] == "login failed"
    assert "caf\\udce9" in path.read_text(encoding="utf-8")  # escaped, not lost


def test_the_file_masks_the_known_secrets_it_is_given(tmp_path: Path, closing: None) -> None:
    from cordio.observe.masking import Masker

    path = tmp_path / "app.log"
    settings = LogSettings(console=ConsoleSettings(enabled=False), file=_file(path))
    masker = Masker(settings.mask_patterns).with_secrets(["s3cr3t-v4lue"])
    configure_logging("svc", settings, io.StringIO(), masker=masker)
    logging.getLogger("svc").info("unlocking with %s", "s3cr3t-v4lue")
    assert json.loads(path.read_text())["message"] == "unlocking with **********"
