"""A consumer's parameter that is neither a resource, a settings section nor a valid payload
stops start-up with a DependencyError naming the handler, the parameter and the candidates,
as for HTTP handlers; so does a second parameter claiming the payload."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from cordio import App
from cordio.errors import DependencyError, MissingDependencyError
from cordio.testing import TestApp


class Order(BaseModel):
    id: int


class Refund(BaseModel):
    amount: int


class OrderStore:
    """A class that is no registered resource (a mistyped or forgotten dependency)."""


async def test_a_parameter_of_an_unknown_type_names_the_handler_parameter_and_resources() -> None:
    app = App("shop")

    @app.consume("orders")
    async def fulfil(order: Order, store: OrderStore) -> None:
        return None

    with pytest.raises(MissingDependencyError) as refused:
        async with TestApp(app):
            pass
    message = str(refused.value)
    assert message.startswith(
        "handler 'fulfil': parameter 'store' (OrderStore) matches no resource, settings section"
    )
    assert (
        "resources: app_metrics (Metrics), broker (Broker), dedup (DedupStore),"
        " publisher (Publisher)"
    ) in message
    assert "pydantic" not in message


async def test_a_second_payload_parameter_names_the_handler_and_both_parameters() -> None:
    app = App("shop")

    @app.consume("orders")
    async def fulfil(order: Order, refund: Refund) -> None:
        return None

    with pytest.raises(DependencyError) as refused:
        async with TestApp(app):
            pass
    assert type(refused.value) is DependencyError
    assert str(refused.value).startswith(
        "handler 'fulfil': parameters 'order', 'refund' all claim the message payload; only one may"
    )
