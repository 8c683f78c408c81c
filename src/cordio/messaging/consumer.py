"""A consumer: delivers one source's messages to one handler with at-least-once semantics.

For each delivery, in this order:

1. decode and validate the payload; a message that cannot be (poison) is dead-lettered at
   once with the reason, and never blocks the queue;
2. run the handler (at most ``max_concurrency`` at once; in order when 1);
3. the handler returned: **ack**; it raised: deliver again after ``requeue_delay`` seconds
   (**nack**), or, at the ``max_attempts``-th attempt, **dead-letter** with the reason and the
   attempt count in headers;
4. it was cancelled (shutdown past the grace period): nothing — the delivery stays unsettled
   and the broker delivers it again. Cancellation never acks.

A message delivered more than ``max_attempts`` times without ever being settled (its handler
crashes the process each time) is dead-lettered before its handler runs again. RabbitMQ
classic queues cannot count such deliveries (quorum queues can: ``x-delivery-count``).

A message with ``reply_to`` (a request) gets the handler's return value as the reply, or an
error reply (``cordio.messaging.rpc``) when it fails — and is then acked, never redelivered.

OnError decides too (the handler's own, then the app's, in the error pipeline of
:meth:`cordio.handler.Invoker.run`): a fallback or ``ignore`` acks (a request gets the
fallback as its reply); ``respond`` with a status below 500 dead-letters at once (a client
error fails again on every delivery); a status of 500 or more is a failure like any other
(requeue, then dead-letter). The handler may settle the message itself with the signals of
:mod:`cordio.messaging.signals` (``Ack``, ``Nack``, ``Reject``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter

from cordio.context import Context, trace_id_from_traceparent, using_context
from cordio.handler import handler_executor
from cordio.messaging.broker import Broker, Delivery, Subscription
from cordio.messaging.codec import JSON, MSGPACK, PoisonMessage, decode, encode, media_kind
from cordio.messaging.dedup import DedupSettings, DedupStore
from cordio.messaging.message import Message
from cordio.messaging.rpc import error_reply
from cordio.messaging.settings import BrokerSettings
from cordio.messaging.signals import Ack, Nack, Reject
from cordio.observe.masking import masked
from cordio.outcome import Settle
from cordio.policy.commit import Line, collecting_lines
from cordio.policy.onerror import ErrorResponse

if TYPE_CHECKING:
    from cordio.handler import Invoker

log = logging.getLogger("cordio.messaging")

_TRACE_ID = re.compile(r"(?!0{32})[0-9a-fA-F]{32}")


class MessageContext(Context):
    """The :class:`~cordio.context.Context` of a message: ``message`` is the raw message.

    The trace id is the one of the message's ``traceparent`` header; without a valid one,
    the message id when it has the trace id's form (32 hex digits, as cordio's publisher
    makes them), so every attempt of a message logs the same trace id; else a new one.
    """

    __slots__ = ("message",)

    def __init__(self, handler: str, message: Message) -> None:
        super().__init__(handler, "messaging", attempt=message.attempt, headers=message.headers)
        self.message = message
        traceparent = message.headers.get("traceparent")
        if traceparent:
            self._trace_id = trace_id_from_traceparent(traceparent)
        if self._trace_id is None and _TRACE_ID.fullmatch(message.message_id):
            self._trace_id = message.message_id.lower()

    @property
    def message_id(self) -> str | None:
        return self.message.message_id or None


class Consumer:
    """The service consuming one source for one handler.

    Args:
        name: the handler's name.
        source: queue (or subject) name.
        invoker: the handler's compiled call.
        payload: ``(parameter, adapter)`` for the decoded payload, or ``None``.
        message_param: the parameter that receives the raw :class:`Message`, if any.
        broker: the connected broker.
        settings: the ``broker`` section.
        max_concurrency: handler calls running at once (1: in order).
        prefetch: unsettled deliveries at most (default ``broker.prefetch``).
        dedup: the de-duplication store, or ``None`` (see ``cordio.messaging.dedup``).
        dedup_settings: the ``dedup`` section (``ttl``, ``lease``), with ``dedup``.
        threads: run the (plain, sync) handler in a pool of this many threads of its own
            (then ``max_concurrency`` is this number); ``None``: the loop's default pool.
    """

    def __init__(
        self,
        name: str,
        source: str,
        invoker: Invoker,
        payload: tuple[str, TypeAdapter[Any]] | None,
        message_param: str | None,
        broker: Broker,
        settings: BrokerSettings,
        *,
        max_concurrency: int = 1,
        prefetch: int | None = None,
        dedup: DedupStore | None = None,
        dedup_settings: DedupSettings | None = None,
        threads: int | None = None,
    ) -> None:
        self.name = name
        self.source = source
        self.invoker = invoker
        self.payload = payload
        self.message_param = message_param
        self.broker = broker
        self.settings = settings
        self.prefetch = prefetch or settings.prefetch
        self._stopping = False
        self._active = 0  # deliveries between receipt and settlement
        self._idle = asyncio.Event()
        self.concurrency = threads or max_concurrency
        self._slots = asyncio.Semaphore(self.concurrency)
        self._bounded = False
        self._subscription: Subscription | None = None
        self.dedup = dedup
        self.dedup_settings = dedup_settings or DedupSettings()
        self.threads = threads
        self._executor: ThreadPoolExecutor | None = None
        self.acked = 0
        self.requeued = 0
        self.dead_lettered = 0
        self.unsettled = 0
        self.duplicates = 0

    def __repr__(self) -> str:
        return f"Consumer({self.name} <- {self.source})"

    async def backlog(self) -> int | None:
        """Messages waiting for this consumer, as the broker reports them; ``None`` before
        it subscribed or when the broker cannot say."""
        subscription = self._subscription
        return None if subscription is None else await subscription.backlog()

    async def start(self) -> None:
        if self.threads:
            self._executor = ThreadPoolExecutor(self.threads, thread_name_prefix=self.name)
        self._subscription = await self.broker.subscribe(
            self.source, self.handle, prefetch=self.prefetch, concurrency=self.concurrency
        )
        self._bounded = bool(getattr(self._subscription, "bounded", False))

    async def stop_accepting(self) -> None:
        self._stopping = True
        if self._subscription is not None:
            await self._subscription.pause()

    async def stop(self) -> None:
        if self._active:  # handlers are done (drained or cancelled); let settlements finish
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.publish_timeout + 1):
                    await self._idle.wait()
        if self._subscription is not None:
            await self._subscription.cancel()
            self._subscription = None
        if self._executor is not None:  # a thread still running finishes on its own
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    async def handle(self, delivery: Delivery) -> None:
        """Run the handler for one delivery and settle it.

        A settlement that fails (the connection dropped meanwhile) is logged: the broker
        still owns the message and delivers it again.
        """
        self._active += 1
        self._idle.clear()
        try:
            if self._bounded:  # the broker runs at most `concurrency` of these at once
                await self._run(delivery)
            else:
                async with self._slots:
                    await self._run(delivery)
        except Exception as exc:
            self.unsettled += 1
            log.warning(
                "%s: message %s could not be handled and settled, delivered again: %r",
                self.name,
                delivery.message.message_id,
                exc,
            )
            try:  # give it back now rather than hold it until the connection closes
                await delivery.nack(delay=self.settings.requeue_delay)
            except Exception:  # the connection is gone: the broker has it back already
                log.debug("nack after a failed settlement failed too", exc_info=True)
        finally:
            self._active -= 1
            if not self._active:
                self._idle.set()

    async def _run(self, delivery: Delivery) -> None:
        if self._stopping:  # received, never started: the broker delivers it again
            return
        ctx = MessageContext(self.name, delivery.message)
        with using_context(ctx):  # every line about this delivery carries its trace id
            await self._deliver(delivery, ctx)

    async def _deliver(self, delivery: Delivery, ctx: MessageContext) -> None:
        message = delivery.message
        if message.attempt > self.settings.max_attempts:
            # delivered again and again without being settled: its handler never finishes
            # (it crashes the process, or the connection drops each time); stop the loop
            reason = (
                f"delivered {message.attempt} times without being settled"
                f" (broker.max_attempts is {self.settings.max_attempts})"
            )
            log.error("%s: message %s dead-lettered: %s", self.name, message.message_id, reason)
            self.dead_lettered += 1
            await delivery.dead_letter(reason)
            return
        kwargs: dict[str, Any] = {}
        if self.payload is not None:
            param, adapter = self.payload
            try:
                kwargs[param] = decode(message, adapter, self.settings.max_message_bytes)
            except PoisonMessage as exc:
                log.warning("%s: message %s dead-lettered: %s", self.name, message.message_id, exc)
                self.dead_lettered += 1
                await self._answer_error(message, 422, "Invalid message", str(exc))
                await delivery.dead_letter(masked(f"poison: {exc}"))
                return
        if self.message_param is not None:
            kwargs[self.message_param] = message
        key = None
        if self.dedup is not None and message.message_id:
            key = f"{self.name}:{message.message_id}"
            if not await self._claim(delivery, key):
                return
        if self._executor is not None:
            handler_executor.set(self._executor)
        with collecting_lines() as lines:  # one line per attempt: the rule's merged in ours
            try:
                outcome = await self.invoker.run(kwargs, ctx)
            except asyncio.CancelledError:
                lines.take(None)
                if key is not None:  # let the redelivery run it at once
                    with contextlib.suppress(BaseException):
                        await asyncio.shield(self._release(key))
                raise  # not settled: the broker delivers it again
        rule = lines.take(outcome.error)
        if outcome.signal is not None:
            if key is not None:
                await self._release(key)
            await self._settle(delivery, outcome.signal)
            return
        if outcome.error is not None:
            if key is not None:
                await self._release(key)
            decided = outcome.response or outcome.error
            if message.reply_to:
                await self._answer_failure(delivery, decided, rule)
                return
            await self._failed(delivery, decided, rule)
            return
        if outcome.recorded and rule is not None:  # an OnError fallback answered: done
            rule.write()
        if key is not None:
            assert self.dedup is not None
            try:
                await self.dedup.complete(key, self.dedup_settings.ttl)
            except Exception as exc:  # the handler ran: ack anyway, a copy may run again
                log.warning("%s: recording %s as handled failed: %r", self.name, key, exc)
        if message.reply_to:
            await self._answer(message, outcome.value)
        self.acked += 1
        await delivery.ack()

    async def _settle(self, delivery: Delivery, signal: Settle) -> None:
        """Settle as the handler said: :class:`Ack`, :class:`Nack` or :class:`Reject`."""
        message = delivery.message
        if isinstance(signal, Ack):
            if message.reply_to:
                await self._answer(message, None)
            self.acked += 1
            await delivery.ack()
        elif isinstance(signal, Nack) and signal.requeue:
            delay = self.settings.requeue_delay if signal.delay is None else signal.delay
            log.info(
                "%s: message %s nacked by the handler, again in %.1f s",
                self.name,
                message.message_id,
                delay,
            )
            self.requeued += 1
            await delivery.nack(delay=delay)
        else:
            reason = signal.reason if isinstance(signal, Reject | Nack) else str(signal)
            log.warning(
                "%s: message %s rejected by the handler, dead-lettered: %s",
                self.name,
                message.message_id,
                reason,
            )
            await self._answer_error(message, 422, "Rejected", reason or None)
            self.dead_lettered += 1
            await delivery.dead_letter(f"rejected: {reason}"[:500])

    async def _claim(self, delivery: Delivery, key: str) -> bool:
        """Claim ``key`` in the de-duplication store; settle a duplicate. Whether to run."""
        assert self.dedup is not None
        message = delivery.message
        claim = await self.dedup.claim(key, self.dedup_settings.lease)
        if claim == "claimed":
            return True
        if claim == "done":
            log.info("%s: message %s handled before, acked", self.name, message.message_id)
            self.duplicates += 1
            await delivery.ack()
        else:
            log.info(
                "%s: message %s is being handled elsewhere, again in %.1f s",
                self.name,
                message.message_id,
                self.settings.requeue_delay,
            )
            await delivery.nack(delay=max(self.settings.requeue_delay, 0.1))
        return False

    async def _release(self, key: str) -> None:
        assert self.dedup is not None
        try:
            await self.dedup.release(key)
        except Exception:  # the claim expires after its lease
            log.warning("%s: releasing de-duplication claim %s failed", self.name, key)

    async def _answer(self, request: Message, result: Any) -> None:
        """Send the handler's return value to the requester: MessagePack if the request was,
        else JSON. A value that cannot be encoded is answered with a 500 error reply."""
        content_type = MSGPACK if media_kind(request.content_type) == MSGPACK else JSON
        try:
            body = encode(result, content_type)
        except Exception as exc:
            log.error(
                "%s: the reply to %s cannot be encoded as %s: %r",
                self.name,
                request.message_id,
                content_type,
                exc,
            )
            await self._answer_error(request, 500, "Internal Server Error", None)
            return
        reply = Message(body=body, correlation_id=request.correlation_id, content_type=content_type)
        assert request.reply_to is not None
        try:
            await self.broker.reply(request.reply_to, reply)
        except Exception as exc:  # the requester's address; the message itself is done
            log.warning("%s: reply to %s failed: %s", self.name, request.reply_to, exc)

    async def _answer_error(
        self, request: Message, status: int, title: str, detail: str | None
    ) -> None:
        if not request.reply_to:
            return
        try:
            await self.broker.reply(request.reply_to, error_reply(request, status, title, detail))
        except Exception:
            log.exception("%s: error reply to %s failed", self.name, request.reply_to)

    async def _answer_failure(
        self, delivery: Delivery, exc: BaseException, rule: Line | None
    ) -> None:
        """A request failed: answer with an error reply and settle it (the requester has its
        answer; redelivering would answer twice). ``rule``: the line a rule chose."""
        if rule is not None:
            rule.write()
        if isinstance(exc, ErrorResponse):
            action = exc.action
            status = action.status or 500
            await self._answer_error(
                delivery.message, status, action.title or HTTPStatus(status).phrase, exc.detail
            )
        else:
            if rule is None:
                log.error(
                    "%s: request %s failed", self.name, delivery.message.message_id, exc_info=exc
                )
            await self._answer_error(delivery.message, 500, "Internal Server Error", None)
        self.acked += 1
        await delivery.ack()

    async def _failed(self, delivery: Delivery, exc: BaseException, rule: Line | None) -> None:
        """Settle a failed delivery and write one line about it: at the level and with the
        stack of the rule that recorded the exception (``rule``), else at WARNING without
        stack, and the last attempt at ERROR with the exception's own traceback."""
        message = delivery.message
        cause = exc.error if isinstance(exc, ErrorResponse) else exc
        name = type(cause).__name__

        def line(default: int, stack: bool, text: str, *args: Any) -> None:
            level, stack = (rule.level, rule.stack) if rule is not None else (default, stack)
            log.log(
                level,
                "%s: message %s " + text,
                self.name,
                message.message_id,
                *args,
                exc_info=cause if stack else None,
                extra={"error": name},
            )

        if isinstance(exc, ErrorResponse) and (exc.action.status or 500) < 500:
            # a client error: another delivery would fail the same way
            reason = masked(f"rejected {exc.action.status}: {name}: {cause}")
            line(logging.WARNING, False, "dead-lettered: %s", reason)
            self.dead_lettered += 1
            await delivery.dead_letter(reason[:500])
            return
        reason = masked(f"{name}: {cause}")[:500]
        if message.attempt >= self.settings.max_attempts:
            line(logging.ERROR, True, "failed %d times, dead-lettered: %s", message.attempt, reason)
            self.dead_lettered += 1
            await delivery.dead_letter(f"failed {message.attempt} times: {reason}")
            return
        line(
            logging.WARNING,
            False,
            "failed (attempt %d of %d), again in %.1f s: %s",
            message.attempt,
            self.settings.max_attempts,
            self.settings.requeue_delay,
            reason,
        )
        self.requeued += 1
        await delivery.nack(delay=self.settings.requeue_delay)
