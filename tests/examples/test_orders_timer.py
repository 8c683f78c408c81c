"""The example's timer: orders still new after shop.resend_after are announced again."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from examples.orders import app
from examples.orders.models import NewOrder
from examples.orders.storage import OrderStore

from cordio.config import EnvSource
from cordio.testing import TestApp
from tests.eventually import eventually


async def test_an_order_whose_announcement_was_lost_is_fulfilled_after_the_timer(
    tmp_path: Path,
) -> None:
    environ = {
        "ORDERS__DB__URL": f"sqlite:///{tmp_path}/o.db",
        "ORDERS__PRICING__STUB_PORT": "0",
        "ORDERS__SHOP__RESEND_AFTER": "0.001",
        "ORDERS__TIMERS__REANNOUNCE_NEW_ORDERS__JITTER": "0",
    }
    async with TestApp(app, config=[EnvSource("orders", environ=environ)]) as client:
        store: OrderStore = app.get(OrderStore)
        lost = await store.add(NewOrder(item="tea", quantity=1), Decimal("2.50"))  # no event
        await client.advance(59)
        await client.drained()
        assert (await client.get(f"/orders/{lost.id}")).json()["status"] == "new"
        await client.advance(1)  # the timer's first run announces it; the consumer fulfils
        assert client.runtime is not None
        (timer,) = [
            s for s in client.runtime.services if getattr(s, "name", "") == "reannounce_new_orders"
        ]
        await eventually(lambda: timer.runs == 1, what="the timer's run")  # it reads the db
        await client.drained()
        assert (await client.get(f"/orders/{lost.id}")).json()["status"] == "fulfilled"
