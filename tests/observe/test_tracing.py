"""One trace from an HTTP request to a consumer and on to a ZeroMQ worker: trace ids in
every log line without OpenTelemetry, and spans with correct parent/child links exported to
real Zipkin and OTLP receivers with it."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

import cordio
from cordio import App, Context
from cordio.config import EnvSource
from cordio.messaging import Publisher
from cordio.testing import TestApp
from cordio.zmq.client import ZmqClient
from cordio.zmq.trace import PREFIX, frame, split
from tests.eventually import eventually

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
INCOMING = {
    "traceparent": f"00-{TRACE}-{PARENT}-01",
    "tracestate": "vendor=opaque",
    "baggage": "tenant=acme",
    "x-tenant-id": "acme",
}


class Receiver:
    """A real HTTP server collecting what exporters POST (Zipkin JSON, OTLP protobuf)."""

    def __init__(self) -> None:
        self.bodies: list[tuple[str, bytes]] = []
        received = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                received.append((self.path, self.rfile.read(length)))
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()

    def zipkin_spans(self) -> list[dict[str, Any]]:
        return [span for _, body in self.bodies for span in json.loads(body)]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.close()


def shop(**settings: str) -> tuple[App, dict[str, list[Any]]]:
    """HTTP → publish → consumer → ZeroMQ request → ZeroMQ service, all in one app."""
    url = f"inproc://trace-{uuid.uuid4().hex}"
    environ = {
        "SHOP__ZMQ__URL": url,
        "SHOP__ZMQ__BROKER__ENABLED": "true",
        "SHOP__ZMQ__BROKER__BIND": json.dumps([url]),
        **{f"SHOP__{k}": v for k, v in settings.items()},
    }
    app = App("shop", config=[EnvSource("shop", environ=environ)])
    seen: dict[str, list[Any]] = {"trace": [], "headers": [], "priced": []}
    log = logging.getLogger("tests.shop")

    @app.http.post("/orders")
    async def place(publisher: Publisher, ctx: Context) -> str:
        seen["trace"].append(("http", ctx.trace_id))
        log.info("order placed")
        await publisher.publish("orders.placed", {"item": "tea"})
        return "ok"

    @app.consume("orders.placed")
    async def fulfil(order: dict[str, Any], ctx: Context, zmq: ZmqClient) -> None:
        seen["trace"].append(("messaging", ctx.trace_id))
        seen["headers"].append(dict(ctx.headers))
        log.info("order fulfilled")
        with cordio.stage("pricing"):
            log.info("asking for a price")
            seen["priced"].append(await zmq.request("pricing", order))

    @app.zmq.service("pricing")
    async def price(order: dict[str, Any], ctx: Context) -> float:
        seen["trace"].append(("zmq", ctx.trace_id))
        log.info("priced")
        return 2.5

    return app, seen


async def test_one_trace_id_from_the_request_to_the_consumer_and_the_worker(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="tests.shop")
    app, seen = shop()
    async with TestApp(app) as client:
        assert (await client.post("/orders", headers=INCOMING)).status_code == 200
        await eventually(lambda: seen["priced"] == [2.5])
    assert seen["trace"] == [("http", TRACE), ("messaging", TRACE), ("zmq", TRACE)]
    (headers,) = seen["headers"]
    version, trace, parent, flags = headers["traceparent"].split("-")
    assert (version, trace, flags) == ("00", TRACE, "01")
    assert parent != PARENT  # the publish is a new parent
    assert headers["tracestate"] == "vendor=opaque"
    assert headers["baggage"] == "tenant=acme"
    lines = [r for r in caplog.records if r.name == "tests.shop"]
    messages = ["order placed", "order fulfilled", "asking for a price", "priced"]
    assert [r.getMessage() for r in lines] == messages
    assert {getattr(r, "trace_id", None) for r in lines} == {TRACE}
    # the stage is the running code's: the worker's lines are not in it
    assert [getattr(r, "stage", None) for r in lines] == [None, None, "pricing", None]
    stage = {"stage": "pricing", "outcome": "ok"}
    registry = app.metrics.registry
    assert registry.get_sample_value("cordio_stage_duration_seconds_count", stage) == 1


async def test_spans_with_parent_links_reach_a_zipkin_receiver(receiver: Receiver) -> None:
    endpoint = f"http://127.0.0.1:{receiver.port}/api/v2/spans"
    app, seen = shop(
        TRACING__EXPORTER="zipkin",
        TRACING__ENDPOINT=endpoint,
        TRACING__HEADER_ATTRIBUTES='{"x-tenant-id": "tenant.id"}',
    )
    async with TestApp(app) as client:
        assert (await client.post("/orders", headers=INCOMING)).status_code == 200
        await eventually(lambda: seen["priced"] == [2.5])
    spans = {span["name"]: span for span in receiver.zipkin_spans()}  # flushed at stop
    assert set(spans) >= {
        "POST /orders",
        "orders.placed publish",
        "orders.placed process",
        "pricing",
    }
    assert {span["traceId"] for span in spans.values()} == {TRACE}
    http = spans["POST /orders"]
    assert http["kind"] == "SERVER"
    assert http["parentId"] == PARENT
    assert http["tags"]["http.route"] == "/orders"
    assert http["tags"]["http.response.status_code"] == "200"
    assert http["tags"]["tenant.id"] == "acme"
    assert http["tags"]["code.function"].endswith("place")
    assert int(http["tags"]["code.lineno"]) > 0
    publish = spans["orders.placed publish"]
    assert (publish["kind"], publish["parentId"]) == ("PRODUCER", http["id"])
    process = spans["orders.placed process"]
    assert (process["kind"], process["parentId"]) == ("CONSUMER", publish["id"])
    pricing = [s for s in receiver.zipkin_spans() if s["name"] == "pricing"]
    by_kind = {s.get("kind") or "INTERNAL": s for s in pricing}
    assert set(by_kind) == {"INTERNAL", "CLIENT", "SERVER"}  # stage, request, service
    assert by_kind["INTERNAL"]["parentId"] == process["id"]
    assert by_kind["CLIENT"]["parentId"] == by_kind["INTERNAL"]["id"]
    assert by_kind["SERVER"]["parentId"] == by_kind["CLIENT"]["id"]
    assert by_kind["SERVER"]["tags"]["rpc.service"] == "pricing"
    assert seen["trace"] == [("http", TRACE), ("messaging", TRACE), ("zmq", TRACE)]


async def test_a_failed_call_is_an_error_span_and_suppressed_handlers_have_none(
    receiver: Receiver,
) -> None:
    environ = {
        "SVC__TRACING__EXPORTER": "otlp-http",
        "SVC__TRACING__ENDPOINT": f"http://127.0.0.1:{receiver.port}/v1/traces",
        "SVC__TRACING__SUPPRESS": '["/internal/*"]',
    }
    app = App("svc", config=[EnvSource("svc", environ=environ)])

    @app.http.get("/boom")
    async def boom() -> None:
        raise RuntimeError("broken")

    @app.http.get("/internal/ping")
    async def ping() -> str:
        return "pong"

    @app.http.get("/missing")
    async def missing() -> None:
        from cordio.http import ProblemError

        raise ProblemError(404, "no such thing")

    async with TestApp(app) as client:
        assert (await client.get("/boom")).status_code == 500
        assert (await client.get("/internal/ping")).status_code == 200
        assert (await client.get("/missing")).status_code == 404
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    spans = []
    for path, body in receiver.bodies:
        assert path == "/v1/traces"
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        for resource in request.resource_spans:
            attributes = {a.key: a.value.string_value for a in resource.resource.attributes}
            assert attributes["service.name"] == "svc"
            for scope in resource.scope_spans:
                spans.extend(scope.spans)
    assert [s.name for s in spans] == ["GET /boom", "GET /missing"]
    failed, absent = spans

    def status_code(span: Any) -> int:
        (found,) = [a for a in span.attributes if a.key == "http.response.status_code"]
        return int(found.value.int_value)

    assert failed.status.code == 2  # STATUS_CODE_ERROR
    assert status_code(failed) == 500
    assert [e.name for e in failed.events] == ["exception"]
    assert absent.status.code == 0  # a 4xx is the client's error: status left unset
    assert status_code(absent) == 404
    assert [e.name for e in absent.events] == ["exception"]


async def test_an_unreachable_collector_never_fails_a_handler() -> None:
    from tests.conftest import free_port

    environ = {
        "SVC__TRACING__EXPORTER": "zipkin",
        "SVC__TRACING__ENDPOINT": f"http://127.0.0.1:{free_port()}/api/v2/spans",
    }
    app = App("svc", config=[EnvSource("svc", environ=environ)])

    @app.http.get("/ok")
    async def ok() -> str:
        return "fine"

    async with TestApp(app) as client:
        for _ in range(50):
            assert (await client.get("/ok")).status_code == 200


def test_the_trace_frame_round_trip_and_hostile_frames() -> None:
    headers = {"traceparent": f"00-{TRACE}-{PARENT}-01", "tracestate": "a=b", "x": "no"}
    made = frame(headers)
    assert made is not None
    assert made.startswith(PREFIX)
    body, found = split([b"payload", made])
    assert list(body) == [b"payload"]
    assert found == {"traceparent": headers["traceparent"], "tracestate": "a=b"}
    assert frame({"tracestate": "a=b"}) is None  # nothing to continue
    for hostile in (
        [made],  # the only frame: it is the payload, whatever it looks like
        [b"payload", PREFIX + b"x" * 9000],  # too long
        [b"payload", b"traceparent: 00-..."],  # no prefix
    ):
        body, found = split(hostile)
        assert list(body) == hostile
        assert found == {}
    body, found = split([b"p", PREFIX + b"traceparent: a\x01b\nnonsense\nbaggage: ok\n\xff"])
    assert list(body) == [b"p"]
    assert found == {"baggage": "ok"}  # a value with control characters is dropped


async def test_a_plain_mdp_worker_reads_its_payload_and_ignores_the_trace_frame() -> None:
    from tests.zmq import rfc_peers as rfc

    url = f"inproc://plain-{uuid.uuid4().hex}"
    environ = {
        "SVC__ZMQ__URL": url,
        "SVC__ZMQ__BROKER__ENABLED": "true",
        "SVC__ZMQ__BROKER__BIND": json.dumps([url]),
    }
    app = App("svc", config=[EnvSource("svc", environ=environ)])

    @app.http.get("/ask")
    async def ask(zmq: ZmqClient) -> Any:
        return await zmq.request("echo", {"q": 1})

    async with TestApp(app) as client:
        import msgpack

        worker = rfc.Worker(url, b"echo", "0.1")  # the process's shared context
        await worker.ready()
        asked = asyncio.create_task(client.get("/ask", headers=INCOMING))
        address, body = await worker.next_request()
        assert msgpack.unpackb(body[0]) == {"q": 1}  # the payload is the first frame
        assert body[-1].startswith(PREFIX)
        await worker.reply(address, body[0])  # echoes its payload only
        assert (await asked).json() == {"q": 1}
        worker.close()


async def test_spans_reach_an_otlp_grpc_receiver() -> None:
    from concurrent import futures

    import grpc
    from opentelemetry.proto.collector.trace.v1 import (
        trace_service_pb2,
        trace_service_pb2_grpc,
    )

    received: list[Any] = []

    class Collector(trace_service_pb2_grpc.TraceServiceServicer):  # type: ignore[misc]
        def Export(self, request: Any, context: Any) -> Any:
            received.append(request)
            return trace_service_pb2.ExportTraceServiceResponse()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Collector(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        environ = {
            "SVC__TRACING__EXPORTER": "otlp-grpc",
            "SVC__TRACING__ENDPOINT": f"http://127.0.0.1:{port}",
        }
        app = App("svc", config=[EnvSource("svc", environ=environ)])

        @app.http.get("/ok")
        async def ok(ctx: Context) -> str:
            return ctx.trace_id

        async with TestApp(app) as client:
            answered = (await client.get("/ok", headers=INCOMING)).json()
        assert answered == TRACE
    finally:
        server.stop(None)
    spans = [
        span
        for request in received
        for resource in request.resource_spans
        for scope in resource.scope_spans
        for span in scope.spans
    ]
    assert [s.name for s in spans] == ["GET /ok"]
    assert spans[0].trace_id.hex() == TRACE
    assert spans[0].parent_span_id.hex() == PARENT


@pytest.mark.parametrize("url", ["amqp://guest:guest@127.0.0.1:5672/", "nats://127.0.0.1:4222"])
async def test_the_trace_crosses_a_real_broker(url: str) -> None:
    """cordio's own propagation on its own message path (the aio-pika contrib
    instrumentation lost context with queue iterators and broke across releases)."""
    from urllib.parse import urlsplit

    from tests.conftest import need_server

    parts = urlsplit(url)
    need_server(parts.scheme, parts.hostname or "", parts.port or 0)
    source = f"trace.{uuid.uuid4().hex[:8]}"
    environ = {"SVC__BROKER__URL": url}
    app = App("svc", config=[EnvSource("svc", environ=environ)])
    seen: list[tuple[str, str]] = []

    @app.consume(source)
    async def consume(payload: dict[str, Any], ctx: Context) -> None:
        seen.append((ctx.trace_id, ctx.headers.get("baggage", "")))

    @app.http.post("/send")
    async def send(publisher: Publisher) -> None:
        await publisher.publish(source, {"n": 1})

    async with TestApp(app) as client:
        assert (await client.post("/send", headers=INCOMING)).status_code == 200
        await eventually(lambda: len(seen) == 1, timeout=10)
    assert seen == [(TRACE, "tenant=acme")]


async def test_hostile_trace_headers_are_not_carried_on() -> None:
    """A caller's malformed traceparent starts a new trace; an oversized tracestate or
    baggage is not copied into what the handler publishes (it could make the publish
    fail on the broker's header limits)."""
    app, seen = shop()
    hostile = {
        "traceparent": "00-not-a-trace-id-at-all-01",
        "tracestate": "v=" + "x" * 600,
        "baggage": "k=" + "y" * 9000,
    }
    async with TestApp(app) as client:
        assert (await client.post("/orders", headers=hostile)).status_code == 200
        await eventually(lambda: seen["priced"] == [2.5])
    (headers,) = seen["headers"]
    assert "tracestate" not in headers
    assert "baggage" not in headers
    trace = headers["traceparent"].split("-")[1]
    assert len(trace) == 32
    assert {t for _, t in seen["trace"]} == {trace}  # one new trace, carried on
