"""Data models of the orders example."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, Field


class NewOrder(BaseModel):
    """An order as a client submits it."""

    item: str = Field(min_length=1, max_length=200, description="what is ordered")
    quantity: int = Field(ge=1, le=1000, description="how many")


class Order(NewOrder):
    """A stored order."""

    id: int
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
