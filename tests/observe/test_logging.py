"""Logging set-up: JSON lines and console lines carry app, handler and trace id."""

from __future__ import annotations

import io
import json
import logging
import re

import pytest
from pydantic import ValidationError

from cordio import App
from cordio.config import EnvSource
from cordio.observe.logging import LogSettings, configure_logging
from cordio.testing import TestApp

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_json_lines_carry_handler_and_trace_id(restore_logging: None) -> None:
    stream = io.StringIO()
    configure_logging("svc", LogSettings(format="json"), stream)
    log = logging.getLogger("svc.test")
    log.info("outside %d", 1)
    from cordio.context import Context, _current

    token = _current.set(Context("create_order", "http", trace_id="ab" * 16))
    try:
        log.warning("inside")
    finally:
        _current.reset(token)
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["message"] == "outside 1"
    assert first["app"] == "svc"
    assert "handler" not in first
    assert second["level"] == "WARNING"
    assert second["handler"] == "create_order"
    assert second["trace_id"] == "ab" * 16


def test_console_lines_without_colour_when_not_a_tty(restore_logging: None) -> None:
    stream = io.StringIO()
    configure_logging("svc", LogSettings(format="console"), stream)
    logging.getLogger("svc.test").error("boom")
    line = stream.getvalue()
    assert re.fullmatch(r"\d\d:\d\d:\d\d ERROR   svc\.test \[svc\] boom\n", line), line


def test_levels_per_logger(restore_logging: None) -> None:
    stream = io.StringIO()
    configure_logging(
        "svc", LogSettings(format="json", level="INFO", levels={"noisy": "ERROR"}), stream
    )
    logging.getLogger("noisy").warning("hidden")
    logging.getLogger("quiet").warning("shown")
    assert [json.loads(x)["message"] for x in stream.getvalue().splitlines()] == ["shown"]


def test_unknown_level_is_a_validation_error() -> None:
    with pytest.raises(ValidationError, match="unknown log level"):
        LogSettings(level="LOUD")


async def test_handler_errors_are_logged_with_the_request_trace_id(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    app = App("svc", config=[EnvSource("svc", environ={"SVC__LOG__FORMAT": "json"})])

    @app.http.get("/fail")
    async def fail() -> None:
        raise RuntimeError("database password is hunter2")

    async with TestApp(app) as client:
        response = await client.get("/fail", headers={"traceparent": TRACEPARENT})
    assert response.status_code == 500
    assert "hunter2" not in response.text
    assert response.json()["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    lines = [json.loads(x) for x in capsys.readouterr().err.splitlines() if x.startswith("{")]
    (failure,) = [x for x in lines if x["level"] == "ERROR"]
    assert failure["message"] == "handler fail failed on GET /fail"
    assert failure["handler"] == "fail"
    assert failure["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert failure["exc"].endswith("\nRuntimeError: database password is hunter2")


class NotificationNotFound(Exception):
    pass


def _json_lines(err: str) -> list[dict[str, object]]:
    return [json.loads(x) for x in err.splitlines() if x.startswith("{")]


async def test_the_app_wide_on_error_line_carries_the_request_trace_id(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    from cordio.policy import respond

    app = App("svc", config=[EnvSource("svc", environ={"SVC__LOG__FORMAT": "json"})])
    app.on_error({NotificationNotFound: respond(404)})

    @app.http.get("/notifications/{n}")
    async def get_notification(n: int) -> None:
        raise NotificationNotFound(f"no notification {n}")

    async with TestApp(app) as client:
        response = await client.get("/notifications/3", headers={"traceparent": TRACEPARENT})
    assert response.status_code == 404
    assert response.json()["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    (line,) = [x for x in _json_lines(capsys.readouterr().err) if x["logger"] == "cordio.errors"]
    assert line["message"] == "handler get_notification: NotificationNotFound answered 404"
    assert line["handler"] == "get_notification"
    assert line["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"


async def test_consumer_lines_carry_trace_id_handler_and_message_id(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    from cordio.messaging import MemoryBroker, Publisher
    from cordio.policy import record

    environ = {
        "SVC__LOG__FORMAT": "json",
        "SVC__BROKER__REQUEUE_DELAY": "0",
        "SVC__BROKER__MAX_ATTEMPTS": "2",
    }
    app = App("svc", config=[EnvSource("svc", environ=environ)])
    app.on_error({NotificationNotFound: record(logging.WARNING, stack=False)})

    @app.consume("notifications")
    async def notify(payload: dict[str, int]) -> None:
        logging.getLogger("svc.notify").info("sending %d", payload["n"])
        raise NotificationNotFound("gone")

    async with TestApp(app) as client:
        message = await app.get(Publisher).publish(
            "notifications", {"n": 1}, headers={"traceparent": TRACEPARENT}
        )
        await client.drained()
        broker: MemoryBroker = app.get("broker")
        assert broker.depth("notifications.dead-letter") == 1
    lines = [
        x
        for x in _json_lines(capsys.readouterr().err)
        if x["logger"] in {"svc.notify", "cordio.errors"}
        or (x["logger"] == "cordio.messaging" and "notify: message" in str(x["message"]))
    ]
    messages = [str(x["message"]) for x in lines]
    assert any("failed (attempt 1 of 2)" in m for m in messages), messages
    assert any("dead-lettered" in m for m in messages), messages
    for line in lines:
        assert line["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736", line
        assert line["handler"] == "notify", line
        assert line["message_id"] == message.message_id, line


async def test_every_attempt_of_a_message_logs_one_trace_id(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    from cordio.messaging import Publisher

    environ = {
        "SVC__LOG__FORMAT": "json",
        "SVC__BROKER__REQUEUE_DELAY": "0",
        "SVC__BROKER__MAX_ATTEMPTS": "3",
    }
    app = App("svc", config=[EnvSource("svc", environ=environ)])

    @app.consume("notifications")
    async def notify(payload: dict[str, int]) -> None:
        raise NotificationNotFound("gone")

    async with TestApp(app) as client:
        message = await app.get(Publisher).publish("notifications", {"n": 1})  # no traceparent
        await client.drained()
    lines = [
        x
        for x in _json_lines(capsys.readouterr().err)
        if x["logger"] == "cordio.messaging" and "notify: message" in str(x["message"])
    ]
    assert len(lines) == 3
    assert {x["trace_id"] for x in lines} == {message.message_id}
