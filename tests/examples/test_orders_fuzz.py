"""The orders example fuzzed from its own OpenAPI document (see :mod:`tests.http.fuzz`)."""

from __future__ import annotations

from pathlib import Path

from examples.orders import app

from cordio.config import EnvSource
from tests.http.fuzz import AppThread, fuzz


def test_every_operation_answers_only_what_its_document_declares(tmp_path: Path) -> None:
    environ = {
        "ORDERS__DB__URL": f"sqlite:///{tmp_path}/orders.db",
        "ORDERS__PRICING__STUB_PORT": "0",
    }
    with AppThread(app, config=[EnvSource("orders", environ=environ)]) as thread:
        done = list(fuzz(thread, max_examples=150))
        # the app still serves, and stored what was valid
        assert thread.request("GET", "/health/ready").status_code == 200
        page = thread.request("GET", "/orders", params={"limit": 100}).json()
    assert sorted(done) == sorted(
        [
            "POST /orders",
            "GET /orders/{order_id}",
            "POST /orders/{order_id}/fulfil",
            "GET /orders",
            "methods of /orders",
            "methods of /orders/{order_id}",
            "methods of /orders/{order_id}/fulfil",
        ]
    )
    assert page["orders"], "no valid order was ever created: the fuzzer sent only garbage"
