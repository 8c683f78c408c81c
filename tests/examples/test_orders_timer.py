"""The example's timer: orders still new after shop.resend_after are announced again."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from examples.orders import app
from examples.orders.models import NewOrder
from examples.orders.storage import OrderStore

from cordio.config import EnvSource
from cordio.testing import TestApp


async def test_an_order_whose_announcement_was_lost_is_fulfilled_after_the_timer(
    tmp_path: Path,
) -> None:
    environ = {
        "ORDERS__DB__URL": f"sqlite:///{tmp_path}/o.db",
        "ORDERS__PRICING__STUB_PORT": "0",
        "ORDERS__SHOP__RESEND_AFTER": "0.001",
        "ORDERS__TIMERS__ANNOUNCE_UNFULFILLED__JITTER": "0",
    }
    async with TestApp(app, config=[EnvSource("orders", environ=environ)]) as client:
        store: OrderStore = app.get(OrderStore)
        lost = await store.add(NewOrder(item="tea", quantity=1), Decimal("2.50"))  # no event
        await client.advance(59)
        await client.drained()
        assert (await client.get(f"/orders/{lost.id}")).json()["status"] == "new"
        await client.advance(1)  # the timer's first run announces it; the consumer fulfils
        await client.drained()
        assert (await client.get(f"/orders/{lost.id}")).json()["status"] == "fulfilled"
