"""Fuzzing an app that uses every kind of parameter from its OpenAPI document."""

from __future__ import annotations

import datetime
import enum
import uuid
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from cordio import App
from cordio.http import Header, ProblemError, Query
from cordio.policy import Bulkhead, CircuitBreaker, OnError, Timeout, respond
from tests.http.fuzz import AppThread, fuzz


class Colour(enum.Enum):
    red = "red"
    green = "green"


class Line(BaseModel):
    sku: str = Field(min_length=1, max_length=20)
    quantity: int = Field(ge=1, le=10)
    price: Decimal = Field(ge=0, max_digits=8, decimal_places=2)


class Basket(BaseModel):
    owner: uuid.UUID
    lines: list[Line] = Field(max_length=5)
    deliver_on: datetime.date | None = None
    note: str = ""


class Receipt(BaseModel):
    total: Decimal
    lines: int
    colour: Colour


class Missing(Exception):
    pass


def rich_app() -> App:
    app = App("shop")
    breaker = CircuitBreaker("stock", consecutive_failures=3)
    bulkhead = Bulkhead(max_concurrent=4, max_queued=4, name="checkout")

    @app.resource
    async def stock() -> dict[str, int]:
        return {"tea": 3}

    @app.http.post("/baskets", status_code=201)
    @bulkhead
    async def checkout(
        basket: Basket,
        colour: Annotated[Colour, Query()] = Colour.red,
        x_request_id: Annotated[str | None, Header()] = None,
    ) -> Receipt:
        total = sum((line.price * line.quantity for line in basket.lines), Decimal(0))
        return Receipt(total=total, lines=len(basket.lines), colour=colour)

    @app.http.get("/stock/{sku}", responses={404: "Unknown SKU"})
    @OnError({Missing: respond(404)})
    @breaker
    @Timeout(1.0)
    async def level(sku: str, stock: dict[str, int]) -> int:
        if sku not in stock:
            raise Missing(sku)
        return stock[sku]

    @app.http.get("/search")
    async def search(
        q: Annotated[str, Query(), Field(max_length=50)],
        tags: Annotated[list[str], Query()] = [],  # noqa: B006 - never mutated
        page: Annotated[int, Query(), Field(ge=1, le=1000)] = 1,
        exact: bool = False,
        min_price: Annotated[float | None, Query(), Field(ge=0, le=1e6)] = None,
        since: datetime.datetime | None = None,
        order: Literal["asc", "desc"] = "asc",
    ) -> dict[str, object]:
        return {"q": q, "tags": tags, "page": page, "exact": exact, "order": order}

    @app.http.delete("/baskets/{basket_id}", status_code=204, responses={409: "Paid already"})
    async def drop(basket_id: uuid.UUID) -> None:
        if basket_id.int % 2:
            raise ProblemError(409, "paid already")

    return app


def test_every_operation_answers_only_what_its_document_declares() -> None:
    with AppThread(rich_app()) as thread:
        done = list(fuzz(thread, max_examples=100))
        assert thread.request("GET", "/health/live").status_code == 200
    assert sorted(done) == [
        "DELETE /baskets/{basket_id}",
        "GET /search",
        "GET /stock/{sku}",
        "POST /baskets",
        "methods of /baskets",
        "methods of /baskets/{basket_id}",
        "methods of /search",
        "methods of /stock/{sku}",
    ]
