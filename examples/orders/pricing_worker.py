"""The pricing service as a ZeroMQ (Majordomo) worker: ``pricing`` answers
``{"item": ...}`` with ``{"item", "price"}``, the same prices as the HTTP stub.

Run it on its own against a broker (``PRICING__ZMQ__URL=tcp://127.0.0.1:5555 cordio run
examples.orders.pricing_worker:app``), or let the orders app start and supervise it
(``zmq.workers.target``); see docs/zmq.md.
"""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, Field

from cordio import App
from examples.orders.models import PRINTABLE

app = App("pricing", version="1.0.0")


class PriceRequest(BaseModel):
    item: str = Field(min_length=1, max_length=200, pattern=PRINTABLE)


class PriceReply(BaseModel):
    item: str
    price: str


@app.zmq.service("pricing")
async def price(request: PriceRequest) -> PriceReply:
    """The unit price of an item (a made-up table: 1.00 to 9.99)."""
    cents = 100 + sum(request.item.encode()) % 900
    return PriceReply(item=request.item, price=str(Decimal(cents) / 100))
