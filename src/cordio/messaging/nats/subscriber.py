"""NATS JetStream subscriptions: a fetch loop on a durable pull consumer feeding a fixed
pool of handler tasks, and the deliveries it hands them (ack, nack with delay, dead-letter,
kept alive with ``in_progress`` while the handler runs)."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from cordio.errors import require_extra
from cordio.messaging.broker import Handler
from cordio.messaging.nats.wire import from_nats

if TYPE_CHECKING:
    from cordio.messaging.nats.broker import NatsBroker

log = logging.getLogger("cordio.messaging")

_IDLE_CHECK = 5  # empty fetches (1 s each) between checks that the consumer still exists


#: Seconds :meth:`NatsSubscription.backlog` waits for the server.
BACKLOG_TIMEOUT = 5.0


class NatsDelivery:
    """A delivery from JetStream; its subscription keeps it alive with ``in_progress``."""

    __slots__ = ("_broker", "_msg", "_owner", "_subject", "message")

    def __init__(self, broker: NatsBroker, subject: str, msg: Any, owner: NatsSubscription):
        self.message = from_nats(msg)
        self._broker = broker
        self._subject = subject
        self._msg = msg
        self._owner = owner

    def _settled(self) -> None:
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
        await self._broker._send(self._subject + self._broker.dead_letter_suffix, dead)
        await self._msg.term()


class NatsSubscription:
    """A fetch loop on a durable pull consumer, and ``workers`` tasks running the handler
    (a fixed pool rather than a task per message: cheaper under load)."""

    bounded = True  # at most ``workers`` handler calls at once

    def __init__(
        self,
        broker: NatsBroker,
        subject: str,
        sub: Any,
        handler: Handler,
        prefetch: int,
        workers: int,
    ) -> None:
        self._broker = broker
        self._subject = subject
        self._sub = sub
        self._handler = handler
        self._prefetch = prefetch
        self._unsettled: set[NatsDelivery] = set()
        self._ready: collections.deque[NatsDelivery] = collections.deque()
        self._idle: collections.deque[asyncio.Future[None]] = collections.deque()
        self._check_pending = False
        self._room = asyncio.Event()
        self._room.set()
        self._low_water = prefetch // 2
        loop = asyncio.get_running_loop()
        self._workers = [loop.create_task(self._work()) for _ in range(workers)]
        self._loop = loop.create_task(self._fetch())
        self._keepalive = loop.create_task(self._keep_alive())

    async def _work(self) -> None:
        """Take ready deliveries one by one. Another worker is woken only once this one
        yields with work left (its handler awaits I/O): fast handlers run back to back in
        one worker, without a task switch per message."""
        loop = asyncio.get_running_loop()
        ready = self._ready
        while True:
            if not ready:
                waiter = loop.create_future()
                self._idle.append(waiter)
                await waiter
                continue
            delivery = ready.popleft()
            if ready and not self._check_pending:
                self._check_pending = True
                loop.call_soon(self._wake_if_waiting)
            try:
                await self._handler(delivery)
            except Exception:  # a handler must settle, not raise; keep the worker alive
                log.exception("handler of %s raised", self._subject)

    def _wake_if_waiting(self) -> None:
        self._check_pending = False
        if self._ready:
            self._wake_one()

    def _wake_one(self) -> None:
        while self._idle:
            waiter = self._idle.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def _keep_alive(self) -> None:
        """Every half ``ack_wait``, tell JetStream each unsettled message is in progress."""
        while True:
            await asyncio.sleep(self._broker.settings.ack_wait / 2)
            for delivery in list(self._unsettled):
                with contextlib.suppress(Exception):
                    await delivery._msg.in_progress()

    def _settled(self, delivery: NatsDelivery) -> None:
        self._unsettled.discard(delivery)
        if len(self._unsettled) <= self._low_water:
            self._room.set()

    async def _fetch(self) -> None:
        nats_errors = require_extra("nats.errors", feature="NATS", extra="nats")
        idle = pending = 0
        while True:
            room = self._prefetch - len(self._unsettled)
            if len(self._unsettled) > self._low_water:
                # refill in batches: wait until half the prefetch is settled
                self._room.clear()
                await self._room.wait()
                continue
            if not self._broker.is_connected:
                await self._broker.state._up.wait()
            # nats-py's fetch waits for a whole batch once one message arrived; so a
            # backlog is fetched in batches (briefly), an idle consumer one message at a
            # time (long poll, returning at the first message)
            batch, timeout = (min(room, pending), 0.2) if pending else (1, 1.0)
            try:
                msgs = await self._sub.fetch(batch=batch, timeout=timeout)
                idle = 0
                pending = msgs[-1].metadata.num_pending if msgs else 0
            except nats_errors.TimeoutError:  # type: ignore[attr-defined]
                pending = 0
                idle += 1
                if idle % _IDLE_CHECK == 0:
                    await self._ensure_consumer()
                continue
            except Exception as exc:  # connection trouble or a deleted consumer
                pending = 0
                log.warning("NATS fetch on %s failed: %r", self._subject, exc)
                await asyncio.sleep(0.5)
                await self._ensure_consumer()
                continue
            for msg in msgs:
                delivery = NatsDelivery(self._broker, self._subject, msg, self)
                self._unsettled.add(delivery)
                self._ready.append(delivery)
            if msgs:
                self._wake_one()

    async def _ensure_consumer(self) -> None:
        """Create the durable consumer (and stream) again if the server lost them."""
        if not self._broker.is_connected:
            return
        try:
            await self._sub.consumer_info()
        except Exception as exc:
            js_errors: Any = require_extra("nats.js.errors", feature="NATS", extra="nats")
            if not isinstance(exc, js_errors.NotFoundError):
                return
            log.warning(
                "NATS consumer of %s is gone on the server; subscribing again", self._subject
            )
            try:
                self._sub = await self._broker._pull_subscribe(self._subject, self._prefetch)
            except Exception:
                log.warning("subscribing again to %s failed", self._subject, exc_info=True)

    async def backlog(self) -> int | None:
        """The durable consumer's pending messages (JetStream consumer info
        ``num_pending``: stored, not yet delivered to it)."""
        try:
            info = await asyncio.wait_for(self._sub.consumer_info(), BACKLOG_TIMEOUT)
            return int(info.num_pending)
        except Exception:
            return None

    async def pause(self) -> None:
        if not self._loop.done():
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop
        while self._ready:  # fetched, not started: back to the server now
            delivery = self._ready.popleft()
            self._unsettled.discard(delivery)
            with contextlib.suppress(Exception):
                await delivery._msg.nak()

    async def cancel(self) -> None:
        await self.pause()
        self._keepalive.cancel()
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        for delivery in list(self._unsettled):
            with contextlib.suppress(Exception):
                await delivery._msg.nak()
        self._unsettled.clear()
        with contextlib.suppress(Exception):
            await self._sub.unsubscribe()
