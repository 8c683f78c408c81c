"""Custom layers inside handlers; Retry-After hints."""

from __future__ import annotations

import io
import json
import logging

from cordio import App
from cordio.observe.logging import LogSettings, configure_logging
from cordio.policy import Retry, current_layers, fallback, layer, respond
from cordio.testing import TestApp


class QuoteUnavailable(Exception):
    pass


class CardDeclined(Exception):
    pass


async def test_a_custom_layer_inside_a_handler_handles_first() -> None:
    app = App("svc")
    app.on_error({QuoteUnavailable: respond(503)})
    seen_layers: list[tuple[str, ...]] = []

    @layer("pricing", on_error={QuoteUnavailable: fallback("list price")})
    async def quote(item: str) -> str:
        seen_layers.append(current_layers())
        raise QuoteUnavailable(item)

    async def unguarded(item: str) -> str:
        raise QuoteUnavailable(item)

    @app.http.get("/quote/{item}")
    async def get_quote(item: str) -> str:
        if item == "raw":
            return await unguarded(item)  # no layer: the app's mapping answers
        return await quote(item)

    @app.http.post("/pay")
    async def pay() -> str:
        async with layer("checkout", on_error={CardDeclined: respond(402, title="Declined")}):
            assert current_layers() == ("checkout",)
            raise CardDeclined("insufficient funds")

    async with TestApp(app) as client:
        assert (await client.get("/quote/tea")).json() == "list price"
        assert (await client.get("/quote/raw")).status_code == 503
        paid = await client.post("/pay")
    assert paid.status_code == 402
    assert paid.json()["detail"] == "insufficient funds"
    assert seen_layers == [("pricing",)]
    assert current_layers() == ()


def test_log_lines_name_the_layer(restore_logging: None) -> None:
    stream = io.StringIO()
    configure_logging("svc", LogSettings(format="json"), stream)

    async def work() -> None:
        async with layer("billing"):
            logging.getLogger("svc").warning("inside")

    import asyncio

    asyncio.run(work())
    assert json.loads(stream.getvalue())["layer"] == "billing"


class Throttled(ConnectionError):
    def __init__(self, retry_after: float) -> None:
        super().__init__("429")
        self.retry_after = retry_after


async def test_retry_after_is_honoured() -> None:
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    calls = 0

    async def throttled() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise Throttled(retry_after=2.5)
        return "ok"

    retry = Retry(attempts=2, initial_delay=0.01, max_delay=0.01, sleep=sleep)
    assert await retry.call(throttled) == "ok"
    assert sleeps == [2.5]
