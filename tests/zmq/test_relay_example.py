"""The relay example on the memory broker: requests go to the relay's threads and back, a
refused text is an error reply, and no thread outlives the app."""

from __future__ import annotations

import asyncio
import hashlib
import threading

import pytest
from examples.relay_amqp import Digest, Text, app

from cordio.messaging import Publisher, RemoteError
from cordio.testing import TestApp
from cordio.zmq.relay import Relay

pytestmark = pytest.mark.timeout(30)


def expected(text: str) -> str:
    return hashlib.pbkdf2_hmac("sha256", text.encode(), b"cordio-example", 10_000).hex()


async def test_consumer_awaits_the_relay_threads_and_replies() -> None:
    before = set(threading.enumerate())
    async with TestApp(app, memory_broker=True):
        publisher: Publisher = app.get("publisher")
        relay: Relay = app.get(Relay)
        texts = [f"tea {i}" for i in range(40)]
        replies = await asyncio.gather(
            *(
                publisher.request("text.digest", Text(text=t), returns=Digest, timeout=10)
                for t in texts
            )
        )
        assert [reply.digest for reply in replies] == [expected(t) for t in texts]
        # dealt to both threads of digest.threads (2)
        assert {reply.thread for reply in replies} == {
            "cordio.relay:digest:0",
            "cordio.relay:digest:1",
        }
        assert relay.processed == 40

        with pytest.raises(RemoteError) as refused:
            await publisher.request("text.digest", Text(text="   "), timeout=10)
        assert refused.value.status == 422
        assert "blank text" in str(refused.value)
        assert relay.failed == 1
        # the relay serves on
        reply = await publisher.request("text.digest", Text(text="tea"), returns=Digest)
        assert reply.digest == expected("tea")
    assert not relay.running
    assert relay.lost == 0
    assert set(threading.enumerate()) == before
