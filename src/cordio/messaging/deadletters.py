"""Dead-letter queues: list, show, replay and purge what a consumer dead-lettered.

A consumer dead-letters a message to ``<source><broker.dead_letter_suffix>`` (default
``.dead-letter``) with the reason and the attempt count in the ``x-cordio-death-reason`` and
``x-cordio-death-attempts`` headers (see :mod:`cordio.messaging.consumer`). This module reads
that destination on the broker the ``broker`` section names:

- **RabbitMQ**: the queue ``<source>.dead-letter``, read with ``basic.get``; a message kept
  is returned to the queue (``basic.nack`` with requeue), in its place;
- **NATS JetStream**: the subject ``<source>.dead-letter`` in the stream that stores it, read
  by stream sequence; a message taken out is deleted from the stream;
- **memory**: the broker lives in the app's process, so there is nothing a separate command
  can read; in tests use :meth:`cordio.messaging.MemoryBroker.take`.

Replaying publishes the message again to ``<source>`` with its body, content type and
headers, without the death headers and as a first attempt, then removes it from the
dead-letter queue (a crash in between leaves a copy in both: at least once). On NATS the
replayed copy's ``Nats-Msg-Id`` is ``<id>:replay:<sequence>`` (the original id is inside
the JetStream duplicate window for a while, and would be dropped).

::

    async with open_dead_letters(BrokerSettings(url="amqp://guest:guest@localhost/"),
                                 "orders.created") as queue:
        for dead in await queue.list():
            print(dead.message_id, dead.reason)
        await queue.replay({"9f2c..."})
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass
from typing import Any, Protocol

from cordio.errors import require_extra
from cordio.messaging.broker import broker_class
from cordio.messaging.errors import DeadLetterError as DeadLetterError
from cordio.messaging.message import ATTEMPT, DEATH_ATTEMPTS, DEATH_REASON, Message
from cordio.messaging.settings import BrokerSettings


@dataclass(frozen=True)
class DeadLetter:
    """One dead-lettered message.

    Attributes:
        position: 1 for the oldest in the queue (NATS: the stream sequence number).
        message: the message as dead-lettered (headers include the death headers).
        reason: why it was dead-lettered (``x-cordio-death-reason``), or ``None``.
        attempts: delivery attempts made (``x-cordio-death-attempts``), or ``None``.
    """

    position: int
    message: Message

    @property
    def message_id(self) -> str:
        return self.message.message_id

    @property
    def reason(self) -> str | None:
        return self.message.headers.get(DEATH_REASON)

    @property
    def attempts(self) -> int | None:
        raw = self.message.headers.get(DEATH_ATTEMPTS, "")
        return int(raw) if raw.isdigit() else None


def revived(message: Message, *, message_id: str | None = None) -> Message:
    """The message to publish again: no death headers, a first attempt."""
    headers = {
        k: v for k, v in message.headers.items() if k not in (DEATH_REASON, DEATH_ATTEMPTS, ATTEMPT)
    }
    return Message(
        body=message.body,
        headers=headers,
        message_id=message_id or message.message_id,
        content_type=message.content_type,
    )


class DeadLetterQueue(Protocol):
    """The dead-letter queue of one source.

    ``ids`` selects messages by message id; ``None`` selects every message. Each method
    raises :class:`DeadLetterError` for an id that is not in the queue, before changing
    anything.
    """

    source: str
    name: str

    async def list(self, limit: int | None = None) -> list[DeadLetter]:
        """The messages, oldest first, at most ``limit`` (``None``: all)."""
        ...

    async def replay(self, ids: Collection[str] | None = None) -> int:
        """Publish the selected messages to the source again and remove them; the count."""
        ...

    async def purge(self, ids: Collection[str] | None = None) -> int:
        """Remove the selected messages; the count."""
        ...


def _missing(ids: Collection[str] | None, found: Collection[str], name: str) -> None:
    if ids is None:
        return
    absent = sorted(set(ids) - set(found))
    if absent:
        raise DeadLetterError(f"{name}: no dead-lettered message with id {', '.join(absent)}")


class AmqpDeadLetters:
    """The dead-letter queue of ``source`` on RabbitMQ (see the module docstring)."""

    def __init__(self, broker: Any, source: str) -> None:
        self._broker = broker
        self.source = source
        self.name = source + broker.dead_letter_suffix

    async def _take(self, limit: int | None) -> tuple[Any, list[tuple[Any, DeadLetter]]]:
        """Get up to ``limit`` messages, unacked; the caller settles every one."""
        from cordio.messaging.amqp.wire import from_amqp

        errors: Any = require_extra("aiormq.exceptions", feature="RabbitMQ", extra="amqp")
        channel = await self._broker._connection.channel()
        try:
            queue = await channel.declare_queue(self.name, passive=True)
        except errors.ChannelNotFoundEntity:
            raise DeadLetterError(f"RabbitMQ has no queue {self.name!r}") from None
        taken: list[tuple[Any, DeadLetter]] = []
        while limit is None or len(taken) < limit:
            incoming = await queue.get(no_ack=False, fail=False)
            if incoming is None:
                break
            taken.append((incoming, DeadLetter(len(taken) + 1, from_amqp(incoming))))
        return channel, taken

    async def list(self, limit: int | None = None) -> list[DeadLetter]:
        channel, taken = await self._take(limit)
        try:
            return [dead for _, dead in taken]
        finally:
            await channel.close()  # returns every unacked message to the queue, in place

    async def _settle(self, ids: Collection[str] | None, replay: bool) -> int:
        from cordio.messaging.amqp.wire import to_amqp

        channel, taken = await self._take(None)
        try:
            _missing(ids, [dead.message_id for _, dead in taken], self.name)
            done = 0
            for incoming, dead in taken:
                if ids is not None and dead.message_id not in ids:
                    continue
                if replay:
                    await self._broker._send(self.source, to_amqp(revived(dead.message)))
                await incoming.ack()
                done += 1
            return done
        finally:
            await channel.close()

    async def replay(self, ids: Collection[str] | None = None) -> int:
        return await self._settle(ids, replay=True)

    async def purge(self, ids: Collection[str] | None = None) -> int:
        return await self._settle(ids, replay=False)


class NatsDeadLetters:
    """The dead-letter subject of ``source`` on NATS JetStream (see the module docstring)."""

    def __init__(self, broker: Any, source: str) -> None:
        self._broker = broker
        self.source = source
        self.name = source + broker.dead_letter_suffix

    async def _stream(self) -> str:
        stream: str | None = await self._broker._stored_by(self.name)
        if stream is None:
            raise DeadLetterError(f"no NATS stream stores the subject {self.name!r}")
        return stream

    async def _read(self, limit: int | None) -> tuple[str, list[DeadLetter]]:
        js_errors: Any = require_extra("nats.js.errors", feature="NATS", extra="nats")
        stream = await self._stream()
        found: list[DeadLetter] = []
        seq = 1
        while limit is None or len(found) < limit:
            try:
                raw = await self._broker._js.get_msg(stream, seq=seq, subject=self.name, next=True)
            except js_errors.NotFoundError:
                break
            headers = dict(raw.headers or {})
            message = Message(
                body=raw.data or b"",
                headers={
                    k: v
                    for k, v in headers.items()
                    if k not in ("Nats-Msg-Id", "Content-Type", "Nats-Expected-Stream")
                },
                message_id=headers.get("Nats-Msg-Id", f"{stream}:{raw.seq}"),
                content_type=headers.get("Content-Type", "application/json"),
            )
            found.append(DeadLetter(int(raw.seq), message))
            seq = int(raw.seq) + 1
        return stream, found

    async def list(self, limit: int | None = None) -> list[DeadLetter]:
        return (await self._read(limit))[1]

    async def _settle(self, ids: Collection[str] | None, replay: bool) -> int:
        stream, found = await self._read(None)
        _missing(ids, [dead.message_id for dead in found], self.name)
        done = 0
        for dead in found:
            if ids is not None and dead.message_id not in ids:
                continue
            if replay:
                original = dead.message_id.removesuffix(":dead")
                again = revived(dead.message, message_id=f"{original}:replay:{dead.position}")
                await self._broker._send(self.source, again)
            await self._broker._js.delete_msg(stream, dead.position)
            done += 1
        return done

    async def replay(self, ids: Collection[str] | None = None) -> int:
        return await self._settle(ids, replay=True)

    async def purge(self, ids: Collection[str] | None = None) -> int:
        return await self._settle(ids, replay=False)


@contextlib.asynccontextmanager
async def open_dead_letters(
    settings: BrokerSettings, source: str
) -> AsyncIterator[DeadLetterQueue]:
    """Connect to the broker of ``settings.url`` and yield the dead-letter queue of
    ``source``; disconnect on exit.

    Raises:
        DeadLetterError: the URL is ``memory://`` (in-process: nothing to read from outside
            the app) or names no broker cordio knows.
    """
    from cordio.messaging.amqp import AmqpBroker
    from cordio.messaging.nats import NatsBroker

    readers: dict[Any, type[AmqpDeadLetters | NatsDeadLetters]] = {
        AmqpBroker: AmqpDeadLetters,
        NatsBroker: NatsDeadLetters,
    }
    scheme = settings.url.split("://", 1)[0]
    factory = broker_class(settings.url)
    if factory is None:
        raise DeadLetterError(f"broker.url {settings.url!r}: no broker for scheme {scheme!r}")
    reader = readers.get(factory)
    if reader is None:  # the memory broker
        raise DeadLetterError(
            "broker.url is memory://: the memory broker lives in the app's process, so its"
            " dead letters cannot be read from outside it (in tests: MemoryBroker.take)"
        )
    broker: Any = factory.from_settings(settings)
    queue = reader(broker, source)
    await broker.connect()
    try:
        yield queue
    finally:
        await broker.close()
