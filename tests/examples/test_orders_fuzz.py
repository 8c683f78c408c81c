"""The orders example fuzzed from its own OpenAPI document (see :mod:`tests.http.fuzz`)."""

from __future__ import annotations

from pathlib import Path

from examples.orders import app
from examples.orders.pricing import pricing_policy

from cordio.config import EnvSource
from cordio.testing import TestApp
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
            "GET /healthcheck",
            "methods of /healthcheck",
            "GET /orders/{order_id}",
            "POST /orders/{order_id}/fulfil",
            "GET /orders",
            "methods of /orders",
            "methods of /orders/{order_id}",
            "methods of /orders/{order_id}/fulfil",
        ]
    )
    assert page["orders"], "no valid order was ever created: the fuzzer sent only garbage"


async def test_a_flood_of_bad_items_never_opens_the_pricing_breaker(tmp_path: Path) -> None:
    """Items with control characters are refused before pricing is asked; items with
    characters that mean something in a URL are priced; the breaker stays closed. (A
    pricing service that really fails still opens it: tests/examples/test_orders.py.)"""
    environ = {
        "ORDERS__DB__URL": f"sqlite:///{tmp_path}/orders.db",
        "ORDERS__PRICING__STUB_PORT": "0",
    }
    breaker = pricing_policy.breaker
    assert breaker is not None
    async with TestApp(app, config=[EnvSource("orders", environ=environ)]) as client:
        for i in range(200):
            bad = await client.post("/orders", json={"item": f"tea\x00{i}\n", "quantity": 1})
            assert bad.status_code == 422
            assert bad.json()["errors"][0]["loc"] == ["body", "item"]
        for item in ("a/b", "..", ".", "50% off?#x", "tea & cake", " "):
            created = await client.post("/orders", json={"item": item, "quantity": 1})
            assert created.status_code == 201, (item, created.text)
            assert created.json()["item"] == item
        assert breaker.state == "closed"
        assert breaker.snapshot()["failures"] == 0  # type: ignore[index]


async def test_integers_beyond_the_database_are_refused_with_422(tmp_path: Path) -> None:
    """The requests of issue 9 that answered 500 (OverflowError from the SQLite driver):
    ids and offsets are bounded in the document, so they answer 422; the largest valid ones
    reach the database and answer 404 or an empty page."""
    environ = {
        "ORDERS__DB__URL": f"sqlite:///{tmp_path}/orders.db",
        "ORDERS__PRICING__STUB_PORT": "0",
    }
    async with TestApp(app, config=[EnvSource("orders", environ=environ)]) as client:
        for method, url, params, where in [
            ("GET", "/orders/336648701686627565568", {}, ["path", "order_id"]),
            ("GET", f"/orders/{2**63}", {}, ["path", "order_id"]),
            ("POST", f"/orders/{2**63}/fulfil", {}, ["path", "order_id"]),
            ("GET", "/orders/0", {}, ["path", "order_id"]),
            ("GET", "/orders", {"offset": "11580777935712" + "0" * 10}, ["query", "offset"]),
            ("GET", "/orders", {"offset": str(2**63)}, ["query", "offset"]),
            ("GET", "/orders", {"limit": "101"}, ["query", "limit"]),
        ]:
            answer = await client.request(method, url, params=params)
            assert answer.status_code == 422, (method, url, params, answer.text)
            assert answer.headers["content-type"] == "application/problem+json"
            assert [e["loc"] for e in answer.json()["errors"]] == [where]
        largest = await client.get(f"/orders/{2**63 - 1}")
        assert largest.status_code == 404, largest.text
        page = await client.get("/orders", params={"offset": str(2**63 - 1), "limit": "100"})
        assert page.status_code == 200, page.text
        assert page.json() == {"orders": [], "limit": 100, "offset": 2**63 - 1}


async def test_healthcheck_answers_version_and_database_round_trip(tmp_path: Path) -> None:
    """The seed spec's minimal service: /healthcheck on the db model, its adapter and the
    configuration."""
    environ = {
        "ORDERS__DB__URL": f"sqlite:///{tmp_path}/orders.db",
        "ORDERS__PRICING__STUB_PORT": "0",
    }
    async with TestApp(app, config=[EnvSource("orders", environ=environ)]) as client:
        answer = await client.get("/healthcheck")
    assert answer.status_code == 200
    body = answer.json()
    assert body["status"] == "ok"
    assert body["version"] == "1.0.0"
    assert body["database"] == "sqlite"
    assert 0 < body["round_trip_ms"] < 5000
