"""De-duplication: one contract for the memory, Redis and PostgreSQL stores, and consumers
that skip what they handled before; the thread hand-off option."""

from __future__ import annotations

import asyncio
import secrets
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest

from cordio.messaging import MemoryBroker, Message
from cordio.messaging.dedup import DedupSettings, MemoryDedup, dedup_store
from cordio.testing import TestApp
from tests.conftest import POSTGRES_URL, need_server
from tests.eventually import eventually
from tests.messaging.test_consumer import make_app


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "redis", "postgresql"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    if request.param == "memory":
        yield MemoryDedup()
        return
    if request.param == "redis":
        need_server("Redis", "127.0.0.1", 6379)
        cfg = DedupSettings(url="redis://127.0.0.1:6379/0")
    else:
        need_server("PostgreSQL", "127.0.0.1", 5432)
        cfg = DedupSettings(url=POSTGRES_URL, table="cordio_dedup_test")
    resource = dedup_store(cfg)
    yield await resource.__anext__()
    await resource.aclose()


async def test_claim_then_complete_makes_copies_duplicates(store: Any) -> None:
    key = "h:" + secrets.token_hex(6)
    assert await store.claim(key, 30) == "claimed"
    assert await store.claim(key, 30) == "busy"  # another replica while it runs
    await store.complete(key, 60)
    assert await store.claim(key, 30) == "done"
    await store.release(key)  # a done record is not released
    assert await store.claim(key, 30) == "done"


async def test_release_lets_the_redelivery_run_again(store: Any) -> None:
    key = "h:" + secrets.token_hex(6)
    assert await store.claim(key, 30) == "claimed"
    await store.release(key)
    assert await store.claim(key, 30) == "claimed"


async def test_an_expired_claim_can_be_taken_over(store: Any) -> None:
    """A consumer that died mid-handler leaves a claim; after the lease another takes it."""
    key = "h:" + secrets.token_hex(6)
    assert await store.claim(key, 0.05) == "claimed"
    await asyncio.sleep(0.1)  # a real store's clock: no fake clock reaches Redis/PostgreSQL
    assert await store.claim(key, 30) == "claimed"


async def test_concurrent_claims_have_one_winner(store: Any) -> None:
    key = "h:" + secrets.token_hex(6)
    results = await asyncio.gather(*(store.claim(key, 30) for _ in range(10)))
    assert sorted(results).count("claimed") == 1


def test_memory_store_forgets_after_ttl_and_is_bounded() -> None:
    clock = FakeClock()
    store = MemoryDedup(max_entries=3, clock=clock)

    async def scenario() -> None:
        assert await store.claim("a", 10) == "claimed"
        await store.complete("a", 60)
        clock.now += 61
        assert await store.claim("a", 10) == "claimed"  # forgotten after ttl
        for key in "bcd":
            await store.claim(key, 10)
        assert "a" not in store._entries  # oldest dropped past max_entries

    asyncio.run(scenario())


def test_bad_dedup_url_names_the_setting() -> None:
    with pytest.raises(ValueError, match="unsupported dedup url scheme 'mongodb'"):
        DedupSettings(url="mongodb://x")


async def test_consumer_with_dedup_handles_each_message_id_once() -> None:
    app = make_app()
    handled: list[str] = []
    fail_once = {"m2"}

    @app.consume("orders", dedup=True, max_concurrency=4)
    async def handle(msg: Message) -> None:
        if msg.message_id in fail_once:
            fail_once.discard(msg.message_id)
            raise RuntimeError("transient")
        handled.append(msg.message_id)

    async with TestApp(app):
        broker: MemoryBroker = app.get("broker")
        for message_id in ["m1", "m1", "m2", "m1", "m2", "m3"]:
            await broker.publish("orders", Message(b"{}", message_id=message_id))
        consumer = next(s for s in app.runtime.services if getattr(s, "name", "") == "handle")
        await eventually(lambda: consumer.acked + consumer.duplicates == 6)
    assert sorted(handled) == ["m1", "m2", "m3"]
    assert consumer.duplicates == 3


async def test_thread_hand_off_runs_in_the_consumers_pool_and_acks_after_return() -> None:
    app = make_app()
    threads: set[str] = set()
    running = 0
    most = 0
    lock = threading.Lock()
    release = threading.Event()

    @app.consume("work", threads=3, prefetch=5)
    def work(n: int) -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
            threads.add(threading.current_thread().name)
        release.wait(5)
        with lock:
            running -= 1

    async with TestApp(app):
        broker: MemoryBroker = app.get("broker")
        for n in range(10):
            await broker.publish("work", Message(str(n).encode()))
        consumer = next(s for s in app.runtime.services if getattr(s, "name", "") == "work")
        await eventually(lambda: running == 3)
        assert broker.depth("work") == 5  # prefetch holds back the rest: back-pressure
        assert consumer.acked == 0  # nothing acked while the calls run
        release.set()
        await eventually(lambda: consumer.acked == 10)
    assert most == 3
    assert all(name.startswith("work") for name in threads)


def test_thread_hand_off_needs_a_plain_function() -> None:
    app = make_app()
    with pytest.raises(ValueError, match="plain \\(sync\\) function"):

        @app.consume("q", threads=2)
        async def handle(n: int) -> None:
            return None

    with pytest.raises(ValueError, match="leave max_concurrency out"):
        app.consume("q", threads=2, max_concurrency=4)


class FlakyStore(MemoryDedup):
    """A store that is down for its first ``failures`` claims and every complete."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def claim(self, key: str, lease: float) -> Any:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("store down")
        return await super().claim(key, lease)

    async def complete(self, key: str, ttl: float) -> None:
        raise ConnectionError("store down")


async def test_a_failing_store_delays_messages_and_never_loses_or_holds_them() -> None:
    app = make_app()
    handled: list[str] = []

    @app.consume("orders", dedup=True)
    async def handle(msg: Message) -> None:
        handled.append(msg.message_id)

    async with TestApp(app, overrides={"dedup": FlakyStore(failures=2)}) as client:
        await client.publish("orders", {}, message_id="m1")
        await client.publish("orders", {}, message_id="m2")
        await client.drained()
    # claims failed twice: those deliveries went back and came again; a failing complete
    # still acks (the handler ran)
    assert sorted(handled) == ["m1", "m2"]
