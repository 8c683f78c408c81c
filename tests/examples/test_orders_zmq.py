"""The example with prices from the pricing MDP worker instead of the HTTP stub."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal
from pathlib import Path

from examples.orders import app, pricing_worker

from cordio.config import EnvSource
from cordio.testing import TestApp


async def test_orders_are_priced_by_the_zmq_worker(tmp_path: Path) -> None:
    url = f"inproc://orders-{uuid.uuid4().hex}"
    orders_env = {
        "ORDERS__DB__URL": f"sqlite:///{tmp_path}/o.db",
        "ORDERS__PRICING__STUB_PORT": "0",
        "ORDERS__PRICING__VIA": "zmq",
        "ORDERS__PRICING__STUB_FAILURE_RATE": "1",  # the HTTP stub would fail every call
        "ORDERS__ZMQ__URL": url,
        "ORDERS__ZMQ__BROKER__ENABLED": "true",
        "ORDERS__ZMQ__BROKER__BIND": json.dumps([url]),
    }
    worker_env = {"PRICING__ZMQ__URL": url}
    orders = TestApp(app, config=[EnvSource("orders", environ=orders_env)])
    worker = TestApp(pricing_worker.app, config=[EnvSource("pricing", environ=worker_env)])
    async with orders as client, worker:  # the broker is the orders app's: it starts first
        response = await client.post("/orders", json={"item": "tea", "quantity": 2})
        assert response.status_code == 201, response.text
        cents = 100 + sum(b"tea") % 900
        assert Decimal(response.json()["unit_price"]) == Decimal(cents) / 100
