"""The NATS JetStream broker (``nats://``) on nats-py, with the contract's semantics.

- A destination is a subject stored by a stream of its own (``CORDIO_<subject>``, created
  on first use); a publish waits for the JetStream ack and carries ``Nats-Msg-Id``, so the
  server drops a duplicate sent within the stream's de-duplication window.
- A subscription is a durable pull consumer named after the source (``cordio_<subject>``):
  replicas subscribing to the same source share it (competing consumers). At most
  ``prefetch`` deliveries are unsettled (``max_ack_pending`` and the fetch size).
- The attempt number is the server's delivery count; ``nack(delay)`` is a NAK with that
  delay; ``dead_letter`` publishes to ``<subject><suffix>`` and terminates the original.
- While a handler runs, ``in_progress`` is sent every half ``ack_wait``, so a slow handler
  keeps its message instead of seeing it redelivered.
- ``pause`` stops fetching; ``cancel`` also NAKs what is unsettled, for prompt redelivery.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from typing import Any

from cordio.errors import require_extra
from cordio.messaging.broker import Handler
from cordio.messaging.message import ATTEMPT, Message, check_size
from cordio.messaging.rpc import Replies

log = logging.getLogger("cordio.messaging")

ACK_WAIT = 30.0
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def _name(subject: str) -> str:
    return _UNSAFE.sub("_", subject)


def _to_headers(message: Message) -> dict[str, str]:
    headers = {
        **message.headers,
        "Nats-Msg-Id": message.message_id,
        "Content-Type": message.content_type,
    }
    if message.reply_to:
        headers["Reply-To"] = message.reply_to
    if message.correlation_id:
        headers["Correlation-Id"] = message.correlation_id
    return headers


def _from_nats(msg: Any) -> Message:
    headers = dict(msg.headers or {})
    attempt = int(msg.metadata.num_delivered) if msg.metadata else 1
    return Message(
        body=msg.data,
        headers={k: v for k, v in headers.items() if k not in ("Nats-Msg-Id", "Content-Type")},
        message_id=headers.get("Nats-Msg-Id", ""),
        content_type=headers.get("Content-Type", "application/json"),
        reply_to=headers.get("Reply-To"),
        correlation_id=headers.get("Correlation-Id"),
        redelivered=attempt > 1,
        attempt=attempt,
    )


class NatsDelivery:
    """A delivery from JetStream, kept alive with ``in_progress`` while unsettled."""

    def __init__(self, broker: NatsBroker, subject: str, msg: Any, owner: NatsSubscription):
        self.message = _from_nats(msg)
        self._broker = broker
        self._subject = subject
        self._msg = msg
        self._owner = owner
        self._keepalive = asyncio.get_running_loop().create_task(self._keep_alive())

    async def _keep_alive(self) -> None:
        while True:
            await asyncio.sleep(ACK_WAIT / 2)
            with contextlib.suppress(Exception):
                await self._msg.in_progress()

    def _settled(self) -> None:
        self._keepalive.cancel()
        self._owner._settled(self)

    async def ack(self) -> None:
        self._settled()
        await self._msg.ack()

    async def nack(self, *, delay: float = 0.0) -> None:
        self._settled()
        await self._msg.nak(delay=delay or None)

    async def dead_letter(self, reason: str) -> None:
        self._settled()
        dead = self.message.dead_lettered(reason, message_id=f"{self.message.message_id}:dead")
        await self._broker.publish(self._subject + self._broker.dead_letter_suffix, dead)
        await self._msg.term()


class NatsSubscription:
    """A fetch loop on a durable pull consumer."""

    def __init__(
        self, broker: NatsBroker, subject: str, sub: Any, handler: Handler, prefetch: int
    ) -> None:
        self._broker = broker
        self._subject = subject
        self._sub = sub
        self._handler = handler
        self._prefetch = prefetch
        self._unsettled: set[NatsDelivery] = set()
        self._room = asyncio.Event()
        self._room.set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop = asyncio.get_running_loop().create_task(self._fetch())

    def _settled(self, delivery: NatsDelivery) -> None:
        self._unsettled.discard(delivery)
        self._room.set()

    async def _fetch(self) -> None:
        nats_errors = require_extra("nats.errors", feature="NATS", extra="nats")
        while True:
            room = self._prefetch - len(self._unsettled)
            if room <= 0:
                self._room.clear()
                await self._room.wait()
                continue
            try:
                msgs = await self._sub.fetch(batch=room, timeout=1)
            except nats_errors.TimeoutError:  # type: ignore[attr-defined]
                continue
            except Exception as exc:  # connection trouble: nats-py reconnects; try again
                log.warning("NATS fetch on %s failed: %r", self._subject, exc)
                await asyncio.sleep(0.5)
                continue
            for msg in msgs:
                delivery = NatsDelivery(self._broker, self._subject, msg, self)
                self._unsettled.add(delivery)
                task = asyncio.get_running_loop().create_task(self._handler(delivery))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def pause(self) -> None:
        if not self._loop.done():
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop

    async def cancel(self) -> None:
        await self.pause()
        for delivery in list(self._unsettled):
            delivery._keepalive.cancel()
            with contextlib.suppress(Exception):
                await delivery._msg.nak()
        self._unsettled.clear()
        with contextlib.suppress(Exception):
            await self._sub.unsubscribe()


class NatsBroker:
    """NATS JetStream through nats-py.

    Args:
        url: ``nats://host:4222`` (several comma-separated for a cluster).
        dead_letter_suffix: appended to a subject for its dead-letter subject.
        max_message_bytes: larger messages are refused by :meth:`publish`.
    """

    def __init__(
        self,
        url: str,
        *,
        dead_letter_suffix: str = ".dead-letter",
        max_message_bytes: int = 1 << 20,
    ) -> None:
        self.url = url
        self.dead_letter_suffix = dead_letter_suffix
        self.max_message_bytes = max_message_bytes
        self._nc: Any = None
        self._js: Any = None
        self._streams: set[str] = set()
        self._subscriptions: list[NatsSubscription] = []
        self.replies = Replies()
        self._inbox: str | None = None

    @property
    def is_connected(self) -> bool:
        """Whether the connection is up now; false while nats-py reconnects."""
        return self._nc is not None and bool(self._nc.is_connected)

    async def connect(self) -> None:
        nats: Any = require_extra("nats", feature="NATS", extra="nats")
        self._nc = await nats.connect(
            self.url.split(","), connect_timeout=10, max_reconnect_attempts=-1
        )
        self._js = self._nc.jetstream()

    async def close(self) -> None:
        for subscription in self._subscriptions:
            with contextlib.suppress(Exception):
                await subscription.cancel()
        self._subscriptions.clear()
        if self._nc is not None:
            await self._nc.drain()
            self._nc = None

    async def _stream(self, subject: str) -> str:
        name = "CORDIO_" + _name(subject)
        if name not in self._streams:
            js_errors: Any = require_extra("nats.js.errors", feature="NATS", extra="nats")
            try:
                await self._js.stream_info(name)
            except js_errors.NotFoundError:
                await self._js.add_stream(name=name, subjects=[subject])
            self._streams.add(name)
        return name

    async def publish(self, destination: str, message: Message) -> None:
        if self._js is None:
            raise ConnectionError("NATS broker is not connected")
        check_size(message, self.max_message_bytes)
        stream = await self._stream(destination)
        headers = _to_headers(message)
        headers.pop(ATTEMPT, None)
        await self._js.publish(
            destination, message.body, timeout=10, stream=stream, headers=headers
        )

    async def reply_address(self) -> str:
        if self._inbox is None:
            inbox = self._nc.new_inbox()

            async def on_reply(msg: Any) -> None:
                headers = dict(msg.headers or {})
                self.replies.resolve(
                    Message(
                        body=msg.data,
                        headers=headers,
                        content_type=headers.get("Content-Type", "application/json"),
                        correlation_id=headers.get("Correlation-Id"),
                    )
                )

            await self._nc.subscribe(inbox, cb=on_reply)
            self._inbox = inbox
        return self._inbox

    async def reply(self, to: str, message: Message) -> None:
        await self._nc.publish(to, message.body, headers=_to_headers(message))

    async def subscribe(self, source: str, handler: Handler, *, prefetch: int) -> NatsSubscription:
        api: Any = require_extra("nats.js.api", feature="NATS", extra="nats")
        stream = await self._stream(source)
        durable = "cordio_" + _name(source)
        config = api.ConsumerConfig(
            ack_policy=api.AckPolicy.EXPLICIT,
            max_ack_pending=prefetch,
            ack_wait=ACK_WAIT,
            max_deliver=-1,
        )
        sub = await self._js.pull_subscribe(source, durable=durable, stream=stream, config=config)
        subscription = NatsSubscription(self, source, sub, handler, prefetch)
        self._subscriptions.append(subscription)
        return subscription
