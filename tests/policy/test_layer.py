"""Custom layers inside handlers; Retry-After hints."""

from __future__ import annotations

import asyncio
import io
import json
import logging

from cordio import App
from cordio.observe.logging import LogSettings, configure_logging
from cordio.policy import Retry, current_layers, fallback, layer, respond
from cordio.testing import TestApp
from tests.eventually import eventually


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


async def test_one_layer_shared_by_100_tasks_each_sees_its_own_layers() -> None:
    """A module-level layer entered by many tasks at once, as a block and as a decorator,
    some nested in another layer: every task sees exactly its own layers, every failure
    meets the layer's mapping, and nothing is left behind."""
    pricing = layer("pricing", on_error={QuoteUnavailable: fallback("list price")})
    outer = layer("checkout")
    turn = asyncio.Event()
    waiting = 0

    async def quote(i: int) -> tuple[tuple[str, ...], str]:
        nonlocal waiting
        waiting += 1
        await turn.wait()  # every task is inside its layers before any leaves
        seen = current_layers()
        if i % 3 == 0:
            raise QuoteUnavailable(str(i))
        return seen, f"price {i}"

    decorated = pricing(quote)

    async def run(i: int) -> tuple[tuple[str, ...], object]:
        result: object = None  # a block's fallback suppresses the exception
        if i % 2:
            async with outer:
                result = await decorated(i)
        else:
            async with pricing:
                result = await quote(i)
        return current_layers(), result

    tasks = [asyncio.ensure_future(run(i)) for i in range(100)]
    await eventually(lambda: waiting == 100, what="100 tasks inside their layers")
    turn.set()
    results = await asyncio.gather(*tasks)
    for i, (after, result) in enumerate(results):
        assert after == (), i
        if i % 3 == 0:
            assert result == ("list price" if i % 2 else None), i
        else:
            expected = ("checkout", "pricing") if i % 2 else ("pricing",)
            assert result == (expected, f"price {i}"), i
    assert current_layers() == ()
