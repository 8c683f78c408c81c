"""Request/reply on memory, RabbitMQ and NATS: replies, error replies, timeouts."""

from __future__ import annotations

import secrets

import pytest
from pydantic import BaseModel

from cordio import App
from cordio.config import EnvSource
from cordio.messaging import Message, Publisher, PublishError, RemoteError
from cordio.messaging.rpc import Replies
from cordio.policy import respond
from cordio.testing import TestApp
from tests.conftest import need_server

URLS = {
    "memory": "memory://",
    "rabbitmq": "amqp://guest:guest@127.0.0.1:5672/",
    "nats": "nats://127.0.0.1:4222",
}


class Add(BaseModel):
    a: int
    b: int


class Sum(BaseModel):
    total: int


class Overflow(Exception):
    pass


@pytest.mark.parametrize("broker", sorted(URLS))
async def test_request_reply_errors_and_timeouts(broker: str) -> None:
    if broker == "rabbitmq":
        need_server("RabbitMQ", "127.0.0.1", 5672)
    if broker == "nats":
        need_server("NATS", "127.0.0.1", 4222)
    source = "cordio.rpc." + secrets.token_hex(4)
    environ = {"SVC__BROKER__URL": URLS[broker], "SVC__BROKER__REQUEUE_DELAY": "0"}
    app = App("svc", config=[EnvSource("svc", environ=environ)])
    app.on_error({Overflow: respond(422, title="Too big")})
    calls: list[int] = []

    @app.consume(source, max_concurrency=4)
    async def add(request: Add) -> Sum:
        calls.append(request.a)
        if request.a > 1000:
            raise Overflow(f"{request.a} is too big")
        if request.a < 0:
            raise RuntimeError("secret internals")
        return Sum(total=request.a + request.b)

    try:
        async with TestApp(app):
            publisher = app.get(Publisher)
            assert await publisher.request(source, Add(a=2, b=3), returns=Sum) == Sum(total=5)
            assert await publisher.request(source, {"a": 1, "b": 1}) == {"total": 2}
            with pytest.raises(RemoteError) as mapped:
                await publisher.request(source, Add(a=5000, b=0))
            assert (mapped.value.status, mapped.value.title) == (422, "Too big")
            assert mapped.value.detail == "5000 is too big"
            with pytest.raises(RemoteError) as failed:
                await publisher.request(source, Add(a=-1, b=0))
            assert failed.value.status == 500
            assert "secret" not in str(failed.value)
            with pytest.raises(RemoteError) as invalid:
                await publisher.request(source, {"a": "x"})
            assert invalid.value.status == 422
            assert "invalid payload" in (invalid.value.detail or "")
            nobody = source + ".nobody"
            if broker == "nats":  # no stream stores it: a core request, the server says so
                with pytest.raises(PublishError, match=f"no responder for '{nobody}'"):
                    await publisher.request(nobody, Add(a=1, b=1), timeout=0.2)
            else:  # no such queue, and the app did not declare it: nothing is created
                with pytest.raises(PublishError, match=f"no queue or exchange named '{nobody}'"):
                    await publisher.request(nobody, Add(a=1, b=1), timeout=0.2)
            # MessagePack both ways: the reply is decoded by its content type
            packed = await publisher.request(
                source, Add(a=4, b=5), returns=Sum, content_type="application/msgpack"
            )
            assert packed == Sum(total=9)
        assert calls.count(-1) == 1  # an error reply settles the request: no redelivery
    finally:
        await cleanup(broker, source)


def test_a_reply_nobody_waits_for_is_dropped(caplog: pytest.LogCaptureFixture) -> None:
    assert Replies().resolve(Message(b"1", correlation_id="nope")) is False
    assert "unknown correlation id 'nope'" in caplog.text


async def cleanup(broker: str, source: str) -> None:
    if broker == "rabbitmq":
        import aio_pika

        connection = await aio_pika.connect(URLS[broker])
        async with connection:
            channel = await connection.channel()
            for name in (source, source + ".nobody", source + ".dead-letter"):
                await channel.queue_delete(name)
    elif broker == "nats":
        import nats

        nc = await nats.connect(URLS[broker])
        js = nc.jetstream()
        for name in (source, source + ".nobody", source + ".dead-letter"):
            try:
                await js.delete_stream("CORDIO_" + name.replace(".", "_"))
            except Exception:  # never created
                pass
        await nc.close()
