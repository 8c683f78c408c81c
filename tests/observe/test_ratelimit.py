"""Log rate limiting: repeats of one error at one place, summaries, kinds, threads, an app."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import sys
import threading

import pytest

from cordio import App
from cordio.config import EnvSource
from cordio.observe.logging import LogSettings, configure_logging
from cordio.observe.ratelimit import RateLimitFilter, RateLimitSettings
from cordio.policy import (
    Bulkhead,
    BulkheadFullError,
    CircuitBreaker,
    CircuitOpenError,
    OnError,
    PolicyTimeoutError,
    Timeout,
    respond,
)
from cordio.testing import TestApp


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make_logger(
    name: str, settings: RateLimitSettings | None = None
) -> tuple[logging.Logger, list[logging.LogRecord], RateLimitFilter, Clock]:
    written: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            written.append(record)

    clock = Clock()
    handler = Collect()
    limiter = RateLimitFilter(settings or RateLimitSettings(), handler.handle, clock=clock)
    handler.addFilter(limiter)
    logger = logging.getLogger(name)
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    return logger, written, limiter, clock


def fail(logger: logging.Logger, error: Exception, *, times: int = 1) -> None:
    for _ in range(times):
        try:
            raise error
        except Exception:
            logger.error("call failed", exc_info=True)  # one place in the code


def test_repeats_are_held_back_then_summarised() -> None:
    logger, written, limiter, clock = make_logger("test.ratelimit.repeats")
    fail(logger, ConnectionError("down"), times=1000)
    assert len(written) == 10
    assert limiter.suppressed_total == 990
    clock.now += 10
    fail(logger, ConnectionError("down"))  # a new interval: the summary, then the line
    summary, line = written[10:]
    assert summary.getMessage() == ("990 more like this suppressed in the last 10 s: call failed")
    assert (summary.levelno, summary.exc_info) == (logging.ERROR, None)
    assert line.exc_info is not None


def test_kinds_are_counted_apart_and_plain_lines_always_pass() -> None:
    logger, written, _, _ = make_logger("test.ratelimit.kinds")
    fail(logger, ConnectionError("down"), times=50)
    fail(logger, TimeoutError("slow"), times=50)  # another exception type
    for i in range(50):
        logger.info("order %d created", i)  # not an error: never limited
    for i in range(50):
        logger.warning("low stock %d", i)  # another place: a kind of its own
    for handler in ("create_order", "get_order"):
        for _ in range(50):
            logger.warning("failed", extra={"handler": handler})
    messages = [r.getMessage() for r in written]
    assert messages.count("call failed") == 20
    assert sum(m.startswith("order ") for m in messages) == 50
    assert sum(m.startswith("low stock") for m in messages) == 10
    assert sum(getattr(r, "handler", None) == "create_order" for r in written) == 10
    assert sum(getattr(r, "handler", None) == "get_order" for r in written) == 10


def test_info_lines_about_an_error_are_limited() -> None:
    logger, written, _, _ = make_logger("test.ratelimit.info")
    for _ in range(100):
        logger.info("get_order: OrderNotFound answered 404", extra={"error": "OrderNotFound"})
    assert len(written) == 10


def test_a_due_summary_is_written_when_any_line_arrives_and_on_flush() -> None:
    logger, written, limiter, clock = make_logger("test.ratelimit.due")
    fail(logger, ConnectionError("down"), times=15)
    clock.now += 11
    logger.info("something else")
    assert [r.getMessage() for r in written[10:]] == [
        "5 more like this suppressed in the last 10 s: call failed",
        "something else",
    ]
    fail(logger, ConnectionError("down"), times=13)
    limiter.flush()  # not due yet, but the handler is going away
    assert written[-1].getMessage() == "3 more like this suppressed in the last 10 s: call failed"
    limiter.flush()
    assert len(written) == 10 + 2 + 10 + 1  # nothing written twice


def test_zero_lines_turns_the_limit_off() -> None:
    logger, written, _, _ = make_logger("test.ratelimit.off", RateLimitSettings(lines=0))
    fail(logger, ConnectionError("down"), times=100)
    assert len(written) == 100


def test_records_from_many_threads_are_each_written_or_counted_once() -> None:
    logger, written, limiter, _ = make_logger("test.ratelimit.threads", RateLimitSettings(lines=25))

    def work() -> None:
        fail(logger, ConnectionError("down"), times=500)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(written) == 25
    assert limiter.suppressed_total == 8 * 500 - 25
    limiter.flush()
    assert written[-1].getMessage().startswith(f"{8 * 500 - 25} more like this suppressed")


def test_summaries_of_the_app_handler_are_written_when_logging_is_configured_again(
    restore_logging: None,
) -> None:
    stream = io.StringIO()
    configure_logging("svc", LogSettings(format="json"), stream)
    log = logging.getLogger("svc.flush")
    for _ in range(30):
        log.warning("pricing down", extra={"error": "ConnectError"})
    configure_logging("svc", LogSettings(format="json"), io.StringIO())
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) == 11
    assert lines[-1]["message"] == ("20 more like this suppressed in the last 10 s: pricing down")


async def test_10000_rejected_calls_write_fewer_than_20_lines(
    restore_logging: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An open breaker, a full bulkhead and an expiring timeout behind one HTTP service:
    10,000 rejected calls write a handful of lines and no traceback of a rejection."""
    stderr = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    # one window for the whole run, however slow the machine: the count is deterministic
    environ = {"SVC__LOG__FORMAT": "json", "SVC__LOG__RATE_LIMIT__INTERVAL": "3600"}
    app = App("svc", config=[EnvSource("svc", environ=environ)])
    breaker = CircuitBreaker("pricing", consecutive_failures=1, recovery_time=3600)
    bulkhead = Bulkhead(max_concurrent=1, max_queued=0, name="stock")
    timeout = Timeout(0.000_001, name="shipping")

    @breaker
    async def price() -> None:
        raise ConnectionError("pricing is down")

    @app.http.get("/mapped")
    @OnError(
        {
            CircuitOpenError: respond(503, title="Pricing unavailable"),
            ConnectionError: respond(503, title="Pricing unavailable"),
        }
    )
    async def mapped() -> None:
        await price()

    @app.http.get("/full")
    @OnError({BulkheadFullError: respond(503)})
    async def full() -> None:
        async with bulkhead:
            pass

    @app.http.get("/unmapped")  # no OnError: the endpoint answers 503 itself
    async def unmapped() -> None:
        await price()

    @app.http.get("/slow")
    @OnError({PolicyTimeoutError: respond(504)})
    async def slow() -> None:
        async with timeout:
            await asyncio.Event().wait()

    statuses = set()
    # holding the bulkhead's only place: every call of /full is rejected
    async with TestApp(app) as client, bulkhead:
        for i in range(10_000):
            path = ("/mapped", "/full", "/unmapped", "/slow")[i % 4]
            if path == "/slow" and i % 40 != 3:
                path = "/mapped"  # a timeout costs a real wait; fewer of them
            statuses.add((path, (await client.get(path)).status_code))
    assert statuses == {("/mapped", 503), ("/full", 503), ("/unmapped", 503), ("/slow", 504)}
    assert breaker.rejected == 7250 - 1
    assert bulkhead.rejected == 2500
    lines = [json.loads(line) for line in stderr.getvalue().splitlines()]
    # every line the app wrote, at any level, except the access log's one line per request
    # and the test client's own (httpx) lines
    written = [line for line in lines if line["logger"] not in ("cordio.http.access", "httpx")]
    assert len(written) < 20, [(line["level"], line["message"]) for line in written]
    assert sum(line["logger"] == "cordio.http.access" for line in lines) == 10_000
    errors = [line for line in written if line["level"] in ("WARNING", "ERROR")]
    with_stack = [line for line in lines if "exc" in line]
    assert all("CircuitOpenError" not in line["exc"].splitlines()[-1] for line in with_stack)
    assert any("circuit breaker pricing: closed -> open" in m["message"] for m in errors)
    assert any("bulkhead stock: full" in m["message"] for m in errors)
