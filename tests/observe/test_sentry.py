"""Errors to Sentry: configured from settings at start inside the loop, reported as the
``OnError`` rules say, tagged with the handler call, scrubbed by the run's masker; through
a capturing transport, a real HTTP DSN and under uvloop."""

from __future__ import annotations

import asyncio
import gzip
import json
import threading
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import given
from pydantic import SecretStr

pytest.importorskip("sentry_sdk")

import sentry_sdk
from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import Transport

from cordio import App, Settings
from cordio.config import EnvSource
from cordio.observe import sentry as cordio_sentry
from cordio.observe.masking import MASK, Masker
from cordio.observe.sentry import Scrubber, mask_argv
from cordio.policy import OnError, respond
from cordio.testing import TestApp
from tests.observe.secret_strategies import (
    EMBEDDINGS,
    FAST,
    around,
    assert_hidden,
    embeddings,
    secrets,
)

DSN = "https://public@sentry.invalid/42"


class Captured(Transport):
    """Keeps every envelope sent."""

    envelopes: list[Envelope] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        Captured.envelopes.append(envelope)


def events() -> list[dict[str, Any]]:
    found = []
    for envelope in Captured.envelopes:
        event = envelope.get_event()
        if event is not None:
            found.append(dict(event))
    return found


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[Captured]]:
    Captured.envelopes = []
    monkeypatch.setattr(cordio_sentry, "TRANSPORT", Captured)
    yield Captured
    sentry_sdk.get_client().close()


class DbSettings(Settings, section="db"):
    password: SecretStr
    url: str = "sqlite://"


class Declined(Exception):
    pass


class Ignored(Exception):
    pass


def make_app(environ: dict[str, str], version: str = "1.2.3") -> App:
    environ = {"SVC__SENTRY__DSN": DSN, "SVC__SENTRY__ENVIRONMENT": "test", **environ}
    app = App(
        "svc",
        version=version,
        settings=[DbSettings],
        config=[EnvSource("svc", environ=environ)],
    )

    @app.http.get("/pay")
    @OnError({Declined: respond(502, report=True), Ignored: respond(409)})
    async def pay(db: DbSettings, kind: str = "declined") -> None:
        password = db.password.get_secret_value()  # a local variable Sentry would show
        if kind == "ignored":
            raise Ignored("not reported")
        raise Declined(f"the bank refused {db.url} for {password!r}")

    return app


async def test_reported_as_the_rule_says_with_the_context_and_masked(
    captured: type[Captured],
) -> None:
    secret = "s3cr#t/Pa55"
    environ = {
        "SVC__DB__PASSWORD": secret,
        "SVC__DB__URL": f"postgresql://app:{quote(secret, safe='')}@db/x",
    }
    async with TestApp(make_app(environ)) as client:
        assert sentry_sdk.get_client().is_active()
        answer = await client.get("/pay", headers={"traceparent": TRACEPARENT})
        assert answer.status_code == 502
        assert (await client.get("/pay?kind=ignored")).status_code == 409
    assert not sentry_sdk.get_client().is_active()  # closed at stop
    (event,) = events()
    assert event["tags"]["trace_id"] == TRACE_ID
    assert event["tags"]["handler"] == "pay"
    assert event["tags"]["transport"] == "http"
    assert event["release"] == "1.2.3"
    assert event["environment"] == "test"
    (exc,) = [v for v in event["exception"]["values"] if v["type"] == "Declined"]
    assert "the bank refused postgresql://app:**********@db/x" in exc["value"]
    text = json.dumps(event)
    assert_hidden(secret, text)
    frame = exc["stacktrace"]["frames"][-1]
    assert frame["vars"]["password"] == MASK


TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


@FAST
@given(secret=secrets.filter(lambda s: s[:1] not in "[{"), how=embeddings, before=around)
async def test_no_secret_survives_in_sentry_events(
    captured: type[Captured], secret: str, how: str, before: str
) -> None:
    Captured.envelopes = []
    note = before + EMBEDDINGS[how](secret)
    app = App(
        "svc",
        settings=[DbSettings],
        config=[EnvSource("svc", environ={"SVC__SENTRY__DSN": DSN, "SVC__DB__PASSWORD": secret})],
    )

    @app.http.get("/fail")
    @OnError({Declined: respond(500, report=True)})
    async def fail(db: DbSettings) -> None:
        token = note  # noqa: F841 - a local Sentry shows
        try:
            raise ValueError(f"inner {note}")
        except ValueError as exc:
            raise Declined(repr(note)) from exc

    async with TestApp(app) as client:
        assert (await client.get("/fail")).status_code == 500
    assert len(events()) == 1
    assert_hidden(secret, json.dumps(events()))


def test_scrubber_masks_argv_headers_and_breadcrumbs() -> None:
    scrub = Scrubber(Masker(secrets=["known-value"]))
    event = {
        "extra": {
            "sys.argv": [
                "cordio",
                "run",
                "app:app",
                "--db.password",
                "abc",
                "--set",
                "api.token=xyz",
                "--note=known-value",
            ]
        },
        "request": {"headers": {"Authorization": "Bearer abc", "Cookie": "sid=1"}},
        "breadcrumbs": {"values": [{"message": "connecting amqp://u:pw@mq/ known-value"}]},
    }
    out = scrub(event, {})
    assert out is not None
    assert out["extra"]["sys.argv"] == [
        "cordio",
        "run",
        "app:app",
        "--db.password",
        MASK,
        "--set",
        f"api.token={MASK}",
        f"--note={MASK}",
    ]
    assert out["request"]["headers"] == {"Authorization": MASK, "Cookie": MASK}
    assert out["breadcrumbs"]["values"][0]["message"] == f"connecting amqp://u:{MASK}@mq/ {MASK}"
    assert mask_argv(Masker(), ["--session-secret", "v", "x"]) == ["--session-secret", MASK, "x"]


def test_an_exception_escaping_a_task_is_left_to_the_rules() -> None:
    scrub = Scrubber(Masker())
    event = {"exception": {"values": [{"type": "X", "mechanism": {"type": "asyncio"}}]}}
    assert scrub(event, {"exc_info": (ValueError, ValueError("x"), None)}) is None


async def test_no_dsn_no_sentry(captured: type[Captured]) -> None:
    sentry_sdk.get_client().close()
    app = App("svc", config=[EnvSource("svc", environ={})])

    @app.http.get("/x")
    async def x() -> None:
        return None

    async with TestApp(app) as client:
        assert not sentry_sdk.get_client().is_active()
        assert client.app is not None


def test_started_inside_the_running_loop_only() -> None:
    settings = cordio_sentry.SentrySettings(dsn=SecretStr(DSN))
    with pytest.raises(RuntimeError):
        cordio_sentry.start(settings, version=None, masker=Masker())


class Collector(BaseHTTPRequestHandler):
    """A Sentry ingest endpoint: keeps the envelopes POSTed to it."""

    received: list[tuple[str, bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        encoding = self.headers.get("Content-Encoding", "")
        if encoding == "gzip":
            body = gzip.decompress(body)
        elif encoding == "deflate":
            body = zlib.decompress(body)
        elif encoding == "br":
            import brotli  # type: ignore[import-not-found]

            body = brotli.decompress(body)
        Collector.received.append((self.path, body))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[str]:
    Collector.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://public@127.0.0.1:{server.server_address[1]}/7"
    server.shutdown()
    server.server_close()
    sentry_sdk.get_client().close()


async def _run_and_fail(dsn: str, secret: str) -> int:
    environ = {"SVC__SENTRY__DSN": dsn, "SVC__DB__PASSWORD": secret}
    async with TestApp(make_app(environ)) as client:
        status = (await client.get("/pay")).status_code
    return status


def _posted_event(secret: str) -> dict[str, Any]:
    (path, body), *_ = Collector.received
    assert path == "/api/7/envelope/"
    assert secret.encode() not in body
    items = body.split(b"\n")
    event = json.loads(items[2])
    assert isinstance(event, dict)
    return event


async def test_a_real_http_dsn_receives_the_event(collector: str) -> None:
    secret = "http-s3cret-value"
    assert await _run_and_fail(collector, secret) == 502  # stop flushes and closes
    event = _posted_event(secret)
    assert event["tags"]["handler"] == "pay"
    assert event["exception"]["values"][-1]["type"] == "Declined"


def test_under_uvloop(collector: str) -> None:
    uvloop = pytest.importorskip("uvloop")
    secret = "uvloop-s3cret-value"
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        assert runner.run(_run_and_fail(collector, secret)) == 502
    event = _posted_event(secret)
    assert event["tags"]["transport"] == "http"
