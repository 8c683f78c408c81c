"""The example traced: one trace from the HTTP request through its database queries and its
call to the pricing service, exported to a real Zipkin receiver."""

from __future__ import annotations

from pathlib import Path

from examples.orders import app

from cordio.config import EnvSource
from cordio.testing import TestApp
from tests.observe.test_tracing import INCOMING, PARENT, TRACE, Receiver


async def test_a_placed_order_is_one_trace_with_its_queries_and_the_pricing_call(
    tmp_path: Path,
) -> None:
    receiver = Receiver()
    try:
        environ = {
            "ORDERS__DB__URL": f"sqlite:///{tmp_path}/o.db",
            "ORDERS__PRICING__STUB_PORT": "0",
            "ORDERS__PRICING__STUB_FAILURE_RATE": "0",
            "ORDERS__TRACING__EXPORTER": "zipkin",
            "ORDERS__TRACING__ENDPOINT": f"http://127.0.0.1:{receiver.port}/api/v2/spans",
        }
        async with TestApp(app, config=[EnvSource("orders", environ=environ)]) as client:
            placed = await client.post(
                "/orders", json={"item": "tea", "quantity": 2}, headers=INCOMING
            )
            assert placed.status_code == 201, placed.text
    finally:
        receiver.close()
    spans = [s for s in receiver.zipkin_spans() if s["traceId"] == TRACE]
    (http,) = [s for s in spans if s["name"] == "POST /orders"]
    assert http["parentId"] == PARENT
    children = [s for s in spans if s.get("parentId") == http["id"]]
    kinds = {(s["name"], s.get("kind")) for s in children}
    assert ("GET", "CLIENT") in kinds  # the pricing call
    assert ("INSERT", "CLIENT") in kinds  # the order stored
    (query,) = [s for s in children if s["name"] == "INSERT"]
    assert query["tags"]["db.system.name"] == "sqlite"
    assert "tea" not in query["tags"]["db.query.text"]  # parameters never recorded
    (pricing,) = [s for s in children if s["name"] == "GET"]
    assert pricing["tags"]["http.response.status_code"] == "200"
