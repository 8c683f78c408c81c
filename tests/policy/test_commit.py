"""Where a handled exception is recorded: metrics counter, span status, Sentry report."""

from __future__ import annotations

import pytest

from cordio.policy import ErrorResponse, OnError, record, respond


class NotFound(Exception):
    pass


class Conflict(Exception):
    pass


async def test_commit_counts_marks_the_span_and_reports(monkeypatch: pytest.MonkeyPatch) -> None:
    import sentry_sdk
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import StatusCode
    from prometheus_client import REGISTRY

    from cordio.observe.recorder import _counter

    reported: list[BaseException] = []
    monkeypatch.setattr(sentry_sdk, "capture_exception", reported.append)
    tracer = TracerProvider().get_tracer("test")

    @OnError({NotFound: respond(404), Conflict: record(report=True)})
    async def lookup(kind: str) -> None:
        raise NotFound("x") if kind == "missing" else Conflict("y")

    _counter()
    labels = {"where": "lookup", "exception": "NotFound", "status": "404"}
    before = REGISTRY.get_sample_value("cordio_errors_total", labels) or 0
    with tracer.start_as_current_span("request") as span, pytest.raises(ErrorResponse) as info:
        await lookup("missing")
    assert (info.value.action.status, str(info.value.error)) == (404, "x")
    assert REGISTRY.get_sample_value("cordio_errors_total", labels) == before + 1
    assert span.status.status_code is StatusCode.ERROR  # type: ignore[attr-defined]
    assert [e.name for e in span.events] == ["exception"]  # type: ignore[attr-defined]
    with pytest.raises(Conflict, match=r"^y$"):
        await lookup("conflict")
    assert [(type(e), str(e)) for e in reported] == [(Conflict, "y")]


def test_report_without_sentry_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from cordio.errors import MissingExtraError

    monkeypatch.setitem(sys.modules, "sentry_sdk", None)
    with pytest.raises(
        MissingExtraError,
        match=r"^Reporting errors to Sentry needs an optional extra:"
        r" pip install 'cordio\[sentry\]'$",
    ):
        record(report=True)


class WithErrorText(Exception):
    error = "a text, not an exception"


def test_collected_lines_merge_the_failure_and_write_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import logging

    from cordio.policy.commit import collecting_lines, commit

    caught, failed = NotFound("handled inside"), WithErrorText("escaped")
    with collecting_lines() as lines:
        for exc in (caught, failed):
            commit(
                exc,
                "job",
                level=logging.WARNING,
                stack=False,
                status=None,
                count=False,
                span=False,
                report=False,
            )
        assert caplog.records == []  # collected, not written yet
    mine = lines.take(failed)
    assert mine is not None
    assert mine.exc is failed
    assert (mine.level, mine.stack) == (logging.WARNING, False)
    assert [r.getMessage() for r in caplog.records] == ["job: NotFound"]
