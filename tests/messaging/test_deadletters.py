"""`cordio messaging dead-letters` list/show/replay/purge on the real RabbitMQ and NATS."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import AsyncIterator

import pytest
from click.testing import CliRunner

from cordio import App
from cordio.cli import main
from cordio.config import EnvSource
from cordio.messaging import Publisher
from cordio.messaging.deadletters import DeadLetterError, open_dead_letters
from cordio.messaging.settings import BrokerSettings
from cordio.testing import TestApp
from tests.conftest import need_server
from tests.eventually import eventually

URLS = {"amqp": "amqp://guest:guest@127.0.0.1:5672/", "nats": "nats://127.0.0.1:4222"}
TARGET = "tests.apps.dead_letters:app"


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


async def run_cli(*args: str) -> tuple[int, str]:
    return await asyncio.to_thread(cli, *args)  # the command runs its own event loop


async def _cleanup(kind: str, source: str) -> None:
    if kind == "amqp":
        import aio_pika

        connection = await aio_pika.connect(URLS["amqp"])
        async with connection:
            channel = await connection.channel()
            for suffix in ("", ".dead-letter", ".retry"):
                await channel.queue_delete(source + suffix)
        return
    import nats

    nc = await nats.connect(URLS["nats"])
    js = nc.jetstream()
    for suffix in ("", ".dead-letter"):
        with contextlib.suppress(Exception):
            await js.delete_stream("CORDIO_" + (source + suffix).replace(".", "_"))
    await nc.close()


@pytest.fixture(params=["amqp", "nats"])
async def broker(request: pytest.FixtureRequest) -> AsyncIterator[tuple[str, str, str]]:
    kind: str = request.param
    if kind == "amqp":
        need_server("RabbitMQ", "127.0.0.1", 5672)
    else:
        need_server("NATS", "127.0.0.1", 4222)
    source = f"cordio.dl.{secrets.token_hex(4)}"
    yield kind, URLS[kind], source
    await _cleanup(kind, source)


def consuming_app(url: str, source: str, handled: list[int], failing: list[bool]) -> App:
    environ = {
        "SVC__BROKER__URL": url,
        "SVC__BROKER__MAX_ATTEMPTS": "1",
        "SVC__BROKER__REQUEUE_DELAY": "0",
    }
    app = App("svc", config=[EnvSource("svc", environ=environ)])

    @app.consume(source)
    async def work(payload: dict[str, int]) -> None:
        if failing[0]:
            raise RuntimeError(f"job {payload['n']} failed")
        handled.append(payload["n"])

    return app


async def test_list_show_replay_and_purge(broker: tuple[str, str, str]) -> None:
    kind, url, source = broker
    handled: list[int] = []
    failing = [True]
    app = consuming_app(url, source, handled, failing)
    async with TestApp(app):
        publisher = app.get(Publisher)
        sent = [
            await publisher.publish(source, {"n": n}, headers={"tenant": "acme"}) for n in (1, 2, 3)
        ]
        settings = BrokerSettings(url=url)

        async def three_dead() -> bool:
            async with open_dead_letters(settings, source) as queue:
                return len(await queue.list()) == 3

        await eventually(three_dead, what="3 dead letters", timeout=20)
    opts = ("--broker.url", url)

    code, out = await run_cli(
        "messaging", "dead-letters", "list", TARGET, source, *opts, "--format", "json"
    )
    assert code == 0, out
    rows = json.loads(out)
    ids = [row["message_id"] for row in rows]
    assert len(ids) == 3
    assert [row["attempts"] for row in rows] == [1, 1, 1]
    assert [row["reason"] for row in rows] == [
        f"failed 1 times: RuntimeError: job {n} failed" for n in (1, 2, 3)
    ]
    if kind == "amqp":  # RabbitMQ keeps the message id; NATS marks the dead copy
        assert ids == [m.message_id for m in sent]
    else:
        assert ids == [f"{m.message_id}:dead" for m in sent]

    code, out = await run_cli("messaging", "dead-letters", "show", TARGET, source, ids[1], *opts)
    assert code == 0, out
    assert f"message {ids[1]} (position " in out
    assert "  reason: failed 1 times: RuntimeError: job 2 failed\n" in out
    assert "  attempts: 1\n" in out
    assert "    tenant: acme\n" in out
    assert '  body (7 bytes): {"n":2}\n' in out

    code, out = await run_cli("messaging", "dead-letters", "list", TARGET, source, *opts)
    assert code == 0, out  # showing and listing leave every message in place
    assert out.startswith(f"3 message(s) in {source}.dead-letter\n")

    failing[0] = False
    app = consuming_app(url, source, handled, failing)
    async with TestApp(app):
        code, out = await run_cli(
            "messaging", "dead-letters", "replay", TARGET, source, ids[1], *opts
        )
        assert code == 0, out
        assert out == f"replayed 1 message(s) from {source}.dead-letter to {source}\n"
        await eventually(lambda: handled == [2], what="the replayed message handled")

    code, out = await run_cli("messaging", "dead-letters", "purge", TARGET, source, "--all", *opts)
    assert code == 0, out
    assert out == f"purged 2 message(s) from {source}.dead-letter\n"
    code, out = await run_cli(
        "messaging", "dead-letters", "list", TARGET, source, *opts, "--format", "json"
    )
    assert json.loads(out) == []
    assert handled == [2]

    code, out = await run_cli("messaging", "dead-letters", "purge", TARGET, source, "nope", *opts)
    assert code == 1
    assert f"Error: {source}.dead-letter: no dead-lettered message with id nope" in out


async def test_replay_needs_ids_or_all(broker: tuple[str, str, str]) -> None:
    _, url, source = broker
    code, out = await run_cli(
        "messaging", "dead-letters", "replay", TARGET, source, "--broker.url", url
    )
    assert code == 2
    assert "give message ids, or --all (not both)" in out


async def test_a_missing_dead_letter_queue_is_named(broker: tuple[str, str, str]) -> None:
    _, url, source = broker
    with pytest.raises(DeadLetterError, match=f"{source}.dead-letter"):
        async with open_dead_letters(BrokerSettings(url=url), source) as queue:
            await queue.list()


async def test_a_url_no_broker_has_is_named() -> None:
    unchecked = BrokerSettings().model_copy(update={"url": "kafka://h"})  # skips the check
    with pytest.raises(DeadLetterError, match="no broker for scheme 'kafka'"):
        async with open_dead_letters(unchecked, "q"):
            pass


def test_the_memory_broker_cannot_be_read_from_a_command() -> None:
    code, out = cli("messaging", "dead-letters", "list", TARGET, "dl.jobs")
    assert code == 1
    assert "memory broker lives in the app's process" in out
