"""The orders service: create, read and list orders over HTTP.

Run it on embedded defaults (SQLite under ``var/``)::

    cordio run examples.orders:app

and on PostgreSQL by changing one setting::

    ORDERS__DB__URL=postgresql://postgres@127.0.0.1:5432/test cordio run examples.orders:app

Each new order is published on ``orders.created`` (``broker.url``: the in-process broker by
default, RabbitMQ or NATS by changing it) and fulfilled by the ``fulfilment`` consumer, here
and in any number of worker processes (``examples.orders.worker``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from cordio import App, Reconnect, Settings
from cordio.http import ProblemError, Query
from cordio.messaging import Publisher
from cordio.policy import CircuitOpenError, OnError, ignore, respond
from examples.orders.models import NewOrder, Order, OrderCreated, OrderId, OrderPage
from examples.orders.pricing import (
    NoPrice,
    PricingClient,
    PricingUnavailable,
    pricing_client,
    pricing_policy,
    pricing_stub,
)
from examples.orders.storage import (
    Adapter,
    AlreadyFulfilled,
    OrderNotFound,
    OrderStore,
    db_policy,
    open_adapter,
)

log = logging.getLogger("orders")


class DbSettings(Settings, section="db"):
    """Where orders are stored."""

    url: str = Field("sqlite:///var/orders.db", description="sqlite:///path or postgresql://...")
    pool_size: int = Field(10, ge=1, le=100, description="PostgreSQL connections")


class ShopSettings(Settings, section="shop"):
    """Behaviour of the shop."""

    work_delay: float = Field(0.0, ge=0, description="seconds of simulated work per new order")
    resend_after: float = Field(
        300.0, gt=0, description="seconds after which a still-new order is announced again"
    )


async def _ping(adapter: Adapter) -> None:
    await adapter.ping()


async def db_adapter(cfg: DbSettings) -> AsyncIterator[Adapter]:
    """The database connection (pool), closed at shutdown."""
    async for adapter in open_adapter(cfg.url, cfg.pool_size):
        yield adapter


async def db(db_adapter: Adapter) -> OrderStore:
    """The order store, its table created at start-up."""
    store = OrderStore(db_adapter)
    await store.create_schema()
    return store


@OnError({AlreadyFulfilled: ignore()})  # a redelivered event: the work is done already
async def fulfilment(event: OrderCreated, db: OrderStore) -> None:
    """Fulfil each new order (at least once; fulfilling twice is a no-op)."""
    await db.fulfil(event.order_id)
    log.info("order %d fulfilled", event.order_id)


def add_storage(app: App) -> None:
    """Register the database resources and their retry policy on ``app``."""
    app.policy(db_policy)
    app.resource(db_adapter, check=_ping, reconnect=Reconnect(attempts=5, initial_delay=0.2))
    app.resource(db)


def add_fulfilment(app: App) -> None:
    """Register the ``fulfilment`` consumer of ``orders.created`` on ``app``."""
    app.consume("orders.created", max_concurrency=4)(fulfilment)


app = App("orders", version="1.0.0")
add_storage(app)
add_fulfilment(app)
app.policy(pricing_policy)
app.on_error(
    {
        OrderNotFound: respond(404, title="Order not found"),
        AlreadyFulfilled: respond(409, title="Order already fulfilled"),
        CircuitOpenError: respond(503, title="Pricing unavailable", detail=True),
        PricingUnavailable: respond(503, title="Pricing unavailable"),
        NoPrice: respond(422, title="No price for this item"),
    }
)
app.publishes("orders.created", OrderCreated)
app.resource(pricing_stub)
app.resource(pricing_client)


@app.http.post("/orders", status_code=201)
async def create_order(
    order: NewOrder,
    db: OrderStore,
    pricing: PricingClient,
    publisher: Publisher,
    shop: ShopSettings,
) -> Order:
    """Create an order at the current price; announce it on ``orders.created``."""
    unit_price = await pricing.price(order.item)
    if shop.work_delay:
        await asyncio.sleep(shop.work_delay)
    stored = await db.add(order, unit_price)
    event = OrderCreated(order_id=stored.id, item=stored.item, quantity=stored.quantity)
    # one id per stored order, so a re-sent publish is recognised as a duplicate
    message_id = f"order-{stored.id}-{stored.created_at.timestamp():.6f}"
    await publisher.publish("orders.created", event, message_id=message_id)
    return stored


@app.every(seconds=60, jitter=5)
async def reannounce_new_orders(db: OrderStore, publisher: Publisher, shop: ShopSettings) -> None:
    """Announce again the orders still new after ``shop.resend_after`` seconds (their first
    announcement was lost, or the fulfilment failed for good): a timer, every minute, set
    under ``timers.reannounce_new_orders`` in configuration. Fulfilling is idempotent, so
    announcing twice is harmless."""
    for order in await db.unfulfilled(older_than=shop.resend_after):
        event = OrderCreated(order_id=order.id, item=order.item, quantity=order.quantity)
        await publisher.publish("orders.created", event)
        log.info("order %d announced again", order.id)


@app.http.get("/orders/{order_id}", responses={404: "No such order"})
async def get_order(order_id: OrderId, db: OrderStore) -> Order:
    """Get one order by id."""
    return await db.get(order_id)


@app.http.post(
    "/orders/{order_id}/fulfil",
    responses={404: "No such order", 409: "The order was fulfilled already"},
)
async def fulfil_order(order_id: OrderId, db: OrderStore) -> Order:
    """Mark an order fulfilled (409 if it was already)."""
    return await db.fulfil(order_id)


@app.http.get("/orders")
async def list_orders(
    db: OrderStore,
    limit: Annotated[int, Query(), Field(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(), Field(ge=0, lt=2**63)] = 0,
) -> OrderPage:
    """List orders, newest first."""
    return OrderPage(orders=list(await db.list(limit, offset)), limit=limit, offset=offset)


class HealthCheck(BaseModel):
    """The answer of ``/healthcheck``."""

    status: Literal["ok"]
    version: str
    database: str = Field(description="sqlite or postgresql")
    round_trip_ms: float = Field(description="milliseconds of one database round trip")


@app.http.get("/healthcheck", responses={503: "The database does not answer"})
async def healthcheck(db: OrderStore, cfg: DbSettings) -> HealthCheck:
    """The seed spec's minimal service: a handler on the db model (which depends on the db
    adapter) and the configuration, answering the database's round-trip time."""
    started = time.perf_counter()
    try:
        await db.adapter.ping()
    except Exception as exc:
        raise ProblemError(503, f"the database does not answer: {type(exc).__name__}") from exc
    return HealthCheck(
        status="ok",
        version=app.version or "0",
        database=cfg.url.split(":", 1)[0],
        round_trip_ms=round((time.perf_counter() - started) * 1000, 3),
    )
