"""Class-based handlers: one injected instance, setup/teardown, methods in one layer."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from cordio import App, StartupError
from cordio.config import EnvSource
from cordio.messaging import MemoryBroker, Publisher
from cordio.policy import fallback, respond
from cordio.testing import TestApp


class Store:
    def __init__(self) -> None:
        self.items: dict[int, str] = {1: "tea"}


class Missing(LookupError):
    pass


class Flaky(Exception):
    pass


async def test_methods_share_one_instance_setup_teardown_and_layer() -> None:
    app = App("svc", config=[EnvSource("svc", environ={"SVC__BROKER__REQUEUE_DELAY": "0"})])
    events: list[str] = []

    @app.resource
    async def store() -> AsyncIterator[Store]:
        events.append("store up")
        yield Store()
        events.append("store down")

    @app.handlers(on_error={Missing: respond(404, title="No such item"), Flaky: fallback(None)})
    class Items:
        def __init__(self, store: Store) -> None:
            self.store = store
            self.calls = 0

        async def setup(self) -> None:
            events.append("setup")

        async def teardown(self) -> None:
            events.append("teardown")

        @app.http.get("/items/{item_id}")
        async def get_item(self, item_id: int) -> dict[str, object]:
            self.calls += 1
            if item_id not in self.store.items:
                raise Missing(f"item {item_id}")
            return {"name": self.store.items[item_id], "calls": self.calls}

        @app.consume("items.added")
        async def add(self, item: dict[str, str]) -> None:
            self.calls += 1
            if item["name"] == "flaky":
                raise Flaky("ignored by the class's layer")
            self.store.items[int(item["id"])] = item["name"]

    async with TestApp(app) as client:
        assert events == ["store up", "setup"]
        assert (await client.get("/items/1")).json() == {"name": "tea", "calls": 1}
        missing = await client.get("/items/9")
        assert missing.status_code == 404
        assert missing.json()["title"] == "No such item"
        await app.get(Publisher).publish("items.added", {"id": "2", "name": "coffee"})
        await client.drained()
        assert (await client.get("/items/2")).json() == {"name": "coffee", "calls": 4}
        await app.get(Publisher).publish("items.added", {"id": "3", "name": "flaky"})
        await client.drained()
        broker: MemoryBroker = app.get("broker")
        assert broker.depth("items.added") == 0
        assert broker.depth("items.added.dead-letter") == 0  # the fallback acked it
        # handled once (call 5), not delivered again: this is call 6
        assert (await client.get("/items/1")).json() == {"name": "tea", "calls": 6}
    assert events == ["store up", "setup", "teardown", "store down"]


def test_a_class_without_handler_methods_is_refused() -> None:
    app = App("svc")
    with pytest.raises(ValueError, match=r"class .*Empty has no handler methods"):

        @app.handlers
        class Empty:
            async def helper(self) -> None:
                return None


async def test_a_failing_setup_fails_start_up_and_tears_down() -> None:
    app = App("svc")
    events: list[str] = []

    @app.resource
    async def store() -> AsyncIterator[Store]:
        yield Store()
        events.append("store down")

    @app.handlers
    class Broken:
        def __init__(self, store: Store) -> None:
            pass

        async def setup(self) -> None:
            raise ConnectionError("cannot warm the cache")

        @app.http.get("/")
        async def root(self) -> str:
            return "never"

    with pytest.raises(
        StartupError, match=r"^svc: start-up failed: ConnectionError\('cannot warm the cache'\)$"
    ) as info:
        async with TestApp(app):
            pass
    assert type(info.value.__cause__) is ConnectionError
    assert events == ["store down"]
