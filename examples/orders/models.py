"""Data models of the orders example."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, Field

#: An order id: a positive 64-bit integer (the database's BIGINT / INTEGER PRIMARY KEY).
OrderId = Annotated[int, Field(ge=1, lt=2**63, description="order id")]

#: Printable text: no control characters (C0, DEL, C1), so it is safe in logs and URLs.
PRINTABLE = r"^[^\x00-\x1f\x7f-\x9f]*$"


class NewOrder(BaseModel):
    """An order as a client submits it."""

    item: str = Field(
        min_length=1, max_length=200, pattern=PRINTABLE, description="what is ordered"
    )
    quantity: int = Field(ge=1, le=1000, strict=True, description="how many (a JSON integer)")


class Order(NewOrder):
    """A stored order."""

    id: OrderId
    status: Literal["new", "fulfilled"] = "new"
    unit_price: Decimal = Field(description="price of one item when ordered")
    created_at: datetime


class OrderPage(BaseModel):
    """A page of orders, newest first."""

    orders: list[Order]
    limit: int
    offset: int


class OrderCreated(BaseModel):
    """Published on ``orders.created`` after an order is stored."""

    order_id: int
    item: str
    quantity: int
