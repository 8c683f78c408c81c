"""The AsyncAPI 3.0 document: served at /asyncapi.json and written by `cordio docs asyncapi`."""

from __future__ import annotations

import json

from click.testing import CliRunner
from pydantic import BaseModel

from cordio import App
from cordio.cli import main
from cordio.testing import TestApp


class Shipped(BaseModel):
    order_id: int
    carrier: str


async def test_consumers_and_publications_with_payload_schemas() -> None:
    app = App("svc", version="2.0.0")
    app.publishes("orders.shipped", Shipped)

    @app.consume("orders.shipped")
    async def notify(event: Shipped) -> None:
        return None

    @app.consume("audit")
    async def audit(entry: dict[str, str]) -> None:
        return None

    async with TestApp(app) as client:
        doc = (await client.get("/asyncapi.json")).json()
    assert doc["asyncapi"] == "3.0.0"
    assert doc["info"] == {"title": "svc", "version": "2.0.0"}
    assert doc["servers"]["default"]["protocol"] == "memory"
    assert doc["channels"]["orders_shipped"]["address"] == "orders.shipped"
    assert doc["operations"]["notify"]["action"] == "receive"
    assert doc["operations"]["send_orders_shipped"]["action"] == "send"
    assert doc["operations"]["notify"]["channel"] == {"$ref": "#/channels/orders_shipped"}
    message = doc["components"]["messages"]["Shipped"]
    assert message["payload"] == {"$ref": "#/components/schemas/Shipped"}
    assert doc["components"]["schemas"]["Shipped"]["required"] == ["order_id", "carrier"]
    audit_payload = doc["components"]["messages"]["dict"]["payload"]
    assert audit_payload["type"] == "object"


def test_cli_writes_the_example_document() -> None:
    result = CliRunner().invoke(main, ["docs", "asyncapi", "examples.orders:app"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["operations"]["fulfilment"]["action"] == "receive"
    assert "OrderCreated" in doc["components"]["schemas"]
