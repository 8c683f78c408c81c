"""The orders service: create, read and list orders over HTTP.

Run it on embedded defaults (SQLite under ``var/``)::

    cordio run examples.orders:app

and on PostgreSQL by changing one setting::

    ORDERS__DB__URL=postgresql://postgres@127.0.0.1:5432/test cordio run examples.orders:app
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated

from pydantic import Field

from cordio import App, Settings
from cordio.http import ProblemError, Query
from examples.orders.models import NewOrder, Order, OrderPage
from examples.orders.storage import Adapter, OrderNotFound, OrderStore, open_adapter


class DbSettings(Settings, section="db"):
    """Where orders are stored."""

    url: str = Field("sqlite:///var/orders.db", description="sqlite:///path or postgresql://...")
    pool_size: int = Field(10, ge=1, le=100, description="PostgreSQL connections")


class ShopSettings(Settings, section="shop"):
    """Behaviour of the shop."""

    work_delay: float = Field(0.0, ge=0, description="seconds of simulated work per new order")


app = App("orders", version="1.0.0")


async def _ping(adapter: Adapter) -> None:
    await adapter.ping()


@app.resource(check=_ping)
async def db_adapter(cfg: DbSettings) -> AsyncIterator[Adapter]:
    """The database connection (pool), closed at shutdown."""
    async for adapter in open_adapter(cfg.url, cfg.pool_size):
        yield adapter


@app.resource
async def db(db_adapter: Adapter) -> OrderStore:
    """The order store, its table created at start-up."""
    store = OrderStore(db_adapter)
    await store.create_schema()
    return store


@app.http.post("/orders", status_code=201)
async def create_order(order: NewOrder, db: OrderStore, shop: ShopSettings) -> Order:
    """Create an order."""
    if shop.work_delay:
        await asyncio.sleep(shop.work_delay)
    return await db.add(order)


@app.http.get("/orders/{order_id}")
async def get_order(order_id: int, db: OrderStore) -> Order:
    """Get one order by id."""
    try:
        return await db.get(order_id)
    except OrderNotFound:
        detail = f"order {order_id} does not exist"
        raise ProblemError(404, detail, title="Order not found") from None


@app.http.get("/orders")
async def list_orders(
    db: OrderStore,
    limit: Annotated[int, Query(), Field(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(), Field(ge=0)] = 0,
) -> OrderPage:
    """List orders, newest first."""
    return OrderPage(orders=list(await db.list(limit, offset)), limit=limit, offset=offset)
