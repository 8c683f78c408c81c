"""The NATS JetStream broker (``nats://``) on nats-py, with the contract's semantics.

- A destination is a subject stored by the stream that stores it on the server: one of
  ``broker.streams`` (created or updated from settings at connect), or any other, created by
  an operator or another service (found with ``$JS.API.STREAM.NAMES`` and a subject filter,
  used as it is, never changed). A subject no stream stores gets a stream of its own
  (``CORDIO_<subject>``, created on first use) only when the app consumes it (a source's
  wildcards match), declared it with ``app.publishes`` (:attr:`NatsBroker.destinations`) or
  publishes with ``declare=True``; a publish to any other subject no stream stores raises
  :class:`~cordio.messaging.connection.PublishError`, so a mistyped subject never creates an
  orphan stream. A publish waits for the JetStream ack and
  carries ``Nats-Msg-Id``, so the server drops a duplicate sent within the stream's
  de-duplication window. Publishes go through the publish gate and are sent again (same
  ``Nats-Msg-Id``, so never stored twice) when the connection drops before the ack. Every
  failure raises :class:`~cordio.messaging.connection.PublishError`, or its subclass
  :class:`~cordio.messaging.connection.InvalidMessage` for a message the server can never
  take (an invalid subject or header, over ``max_payload`` or the stream's message size).
- A subscription is a durable pull consumer named after the source (``cordio_<subject>``),
  on the stream that stores the source, filtered by it: replicas subscribing to the same
  source share it (competing consumers). Each replica holds at most ``prefetch`` unsettled
  deliveries (its fetch size); all replicas together at most ``broker.max_ack_pending``.
- Request/reply: a request to a subject a stream stores is published to the stream with
  ``Reply-To`` (``<inbox>.<correlation id>``) and ``Correlation-Id`` headers, and the
  handler answers there; a request to a subject no stream stores is a core NATS request
  (the message's reply subject), so any NATS responder answers, and none raises
  ``PublishError`` at once (the server's "no responders"); it creates no stream.
- The attempt number is the server's delivery count; ``nack(delay)`` is a NAK with that
  delay; ``dead_letter`` publishes to ``<subject><suffix>`` and terminates the original.
- While a handler runs, ``in_progress`` is sent every half ``ack_wait``, so a slow handler
  keeps its message instead of seeing it redelivered.
- nats-py reconnects forever, attempts spaced by exponential backoff with jitter up to
  ``broker.reconnect_max_delay`` seconds; fetching resumes once it is back. A durable
  consumer or stream deleted on the server is created again within a few seconds.
- ``pause`` stops fetching; ``cancel`` also NAKs what is unsettled, for prompt redelivery.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import re
from typing import Any

from cordio.errors import require_extra
from cordio.messaging.broker import Handler, unknown_destination
from cordio.messaging.codec import JSON
from cordio.messaging.connection import ConnectionState, InvalidMessage, PublishError
from cordio.messaging.message import ATTEMPT, Message, check_size
from cordio.messaging.rpc import Replies, wait_reply
from cordio.messaging.settings import BrokerSettings, StreamSettings

log = logging.getLogger("cordio.messaging")

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
_IDLE_CHECK = 5  # empty fetches (1 s each) between checks that the consumer still exists


def _name(subject: str) -> str:
    return _UNSAFE.sub("_", subject)


def subject_matches(pattern: str, subject: str) -> bool:
    """Whether ``subject`` matches a NATS subject ``pattern`` (``*`` one token, ``>`` one
    or more trailing tokens; NATS documentation, "Subject-Based Messaging", wildcards)."""
    want, got = pattern.split("."), subject.split(".")
    for i, token in enumerate(want):
        if token == ">":
            return len(got) > i
        if i >= len(got) or (token != "*" and token != got[i]):
            return False
    return len(want) == len(got)


def check_subject(subject: str, *, wildcards: bool) -> str | None:
    """Why ``subject`` is not a valid NATS subject, or ``None``: tokens separated by ``.``,
    none empty, no whitespace or control characters; ``*`` and ``>`` are wildcards, ``>``
    only last, and allowed only with ``wildcards`` (a consumer's source, not a publish)
    (NATS documentation, "Subject-Based Messaging", characters allowed)."""
    if not subject:
        return "a subject is needed"
    if _BAD_CHARACTERS.search(subject):
        return "subjects have no whitespace or control characters"
    if subject[0] == "." or subject[-1] == "." or ".." in subject:
        return "subject tokens (between dots) cannot be empty"
    if "*" in subject or ">" in subject:
        tokens = subject.split(".")
        for i, token in enumerate(tokens):
            if token in ("*", ">") and not wildcards:
                return "a publish goes to one subject: wildcards '*' and '>' are for consumers"
            if token == ">" and i != len(tokens) - 1:
                return "'>' can only be the last token"
    return None


_BAD_CHARACTERS = re.compile(r"[\s\x00-\x1f\x7f]")
#: header names NATS can carry (an RFC 9110 token; nats-py refuses others)
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def _check_headers(message: Message, destination: str) -> None:
    for name, value in message.headers.items():
        if not _HEADER_NAME.fullmatch(name):
            raise InvalidMessage(
                f"message for {destination!r}, header {name!r}: NATS header names are"
                " letters, digits and !#$%&'*+-.^_`|~ only",
                destination=destination,
            )
        if "\r" in value or "\n" in value:
            raise InvalidMessage(
                f"message for {destination!r}, header {name!r}: NATS header values cannot"
                " hold line breaks",
                destination=destination,
            )


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


def _ack_fields(reply: str) -> tuple[str, str, str]:
    """``(stream, delivery count, stream sequence)`` from a JetStream ack subject, or empty
    strings. ``$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<time>.<pending>``, or
    with ``<domain>.<account hash>`` after ``ACK`` (ADR-15); cheaper than nats-py's
    ``metadata``, which also builds a datetime."""
    tokens = reply.split(".")
    if len(tokens) == 9 and tokens[1] == "ACK":
        return tokens[2], tokens[4], tokens[5]
    if len(tokens) >= 11 and tokens[1] == "ACK":
        return tokens[4], tokens[6], tokens[7]
    return "", "", ""


# set by cordio (and nats-py's ``stream=``) for the transport, not for handlers
_TRANSPORT_HEADERS = frozenset({"Nats-Msg-Id", "Content-Type", "Nats-Expected-Stream"})


def _any_case(raw: dict[str, str], name: str) -> str | None:
    """Header ``name`` in any letter case (NATS header names are case-sensitive; other
    clients write ``content-type``)."""
    lowered = name.lower()
    return next((value for key, value in raw.items() if key.lower() == lowered), None)


def _from_nats(msg: Any) -> Message:
    raw = msg.headers
    stream, delivered, sequence = _ack_fields(msg.reply or "")
    attempt = int(delivered) if delivered.isdigit() else 1
    if raw:
        get = raw.get
        # a message from a client that set no id gets one stable over redeliveries
        message_id = get("Nats-Msg-Id") or (f"{stream}:{sequence}" if stream else "")
        content_type = get("Content-Type")
        if content_type is not None:  # cordio's spelling, so the others are too
            reply_to, correlation_id = get("Reply-To"), get("Correlation-Id")
        else:
            content_type = _any_case(raw, "Content-Type") or "application/json"
            reply_to = _any_case(raw, "Reply-To")
            correlation_id = _any_case(raw, "Correlation-Id")
        headers = {k: v for k, v in raw.items() if k not in _TRANSPORT_HEADERS}
    else:
        message_id = f"{stream}:{sequence}" if stream else ""
        content_type, reply_to, correlation_id, headers = "application/json", None, None, {}
    return Message(
        msg.data,
        headers,
        message_id,
        content_type,
        reply_to,
        correlation_id,
        attempt > 1,
        attempt,
    )


_WRONG_STREAM = 10060  # JetStream: "expected stream does not match"
_TOO_LARGE = 10054  # JetStream: "message size exceeds maximum allowed"
# 503 answers that are refusals, not a JetStream restart: the stream could not store it
# (its max_msgs, max_bytes or per-subject limit with discard=new), insufficient resources
_REFUSED = frozenset({10077, 10023})


class _StreamChanged(Exception):
    """The subject is stored by another stream than the one it was known by: send again."""


def _reply_from_nats(msg: Any) -> Message:
    """A reply as :class:`Message`: its correlation id from the ``Correlation-Id`` header,
    else the last token of the reply subject (``<inbox>.<correlation id>``)."""
    raw = dict(msg.headers or {})
    correlation_id = raw.get("Correlation-Id") or _any_case(raw, "Correlation-Id")
    return Message(
        body=msg.data,
        headers=raw,
        content_type=raw.get("Content-Type") or _any_case(raw, "Content-Type") or JSON,
        correlation_id=correlation_id or msg.subject.rsplit(".", 1)[-1],
    )


class NatsDelivery:
    """A delivery from JetStream; its subscription keeps it alive with ``in_progress``."""

    __slots__ = ("_broker", "_msg", "_owner", "_subject", "message")

    def __init__(self, broker: NatsBroker, subject: str, msg: Any, owner: NatsSubscription):
        self.message = _from_nats(msg)
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


class NatsBroker:
    """NATS JetStream through nats-py.

    Args:
        url: ``nats://host:4222`` (several comma-separated for a cluster).
        settings: the ``broker`` section (streams, ``ack_wait``, dead-letter suffix, size
            limit, publish gate); defaults when omitted.
        reconnect_wait: seconds before the first reconnect attempt (default 1); later ones
            back off up to ``broker.reconnect_max_delay``.
        destinations: subjects (wildcards allowed) the app publishes to or consumes from:
            publishing to one no stream stores creates a stream for it (as ``declare=True``
            does). Default: none.
    """

    def __init__(
        self,
        url: str,
        *,
        settings: BrokerSettings | None = None,
        reconnect_wait: float = 1.0,
        destinations: set[str] | None = None,
    ) -> None:
        self.url = url
        self.destinations: set[str] = set(destinations or ())
        self.settings = settings or BrokerSettings(url=url)
        self.dead_letter_suffix = self.settings.dead_letter_suffix
        self.max_message_bytes = self.settings.max_message_bytes
        self.reconnect_wait = reconnect_wait
        self.state = ConnectionState.for_broker("NATS", self.settings)
        self._nc: Any = None
        self._js: Any = None
        # which stream stores which subjects: literal subjects, and wildcard patterns
        self._literal: dict[str, str] = {}
        self._patterns: dict[str, str] = {}
        self._transient: tuple[type[BaseException], ...] = ()
        self._subscriptions: list[NatsSubscription] = []
        self.replies = Replies()
        self._inbox: str | None = None
        self._closing = False

    @property
    def is_connected(self) -> bool:
        """Whether the connection is up now; false while nats-py reconnects."""
        return self.state.is_connected

    async def connect(self) -> None:
        nats: Any = require_extra("nats", feature="NATS", extra="nats")
        if self.settings.exchanges:
            raise ValueError(
                "broker.exchanges: exchanges are RabbitMQ topology; NATS routes by subject"
                " (declare broker.streams with subject wildcards instead)"
            )

        async def disconnected() -> None:
            if not self._closing:
                self.state.changed(False)

        async def reconnected() -> None:
            self.state.changed(True)

        async def error(exc: Exception) -> None:
            log.debug("NATS client error: %r", exc)

        self._nc = await nats.connect(
            self.url.split(","),
            connect_timeout=10,
            max_reconnect_attempts=-1,
            reconnect_time_wait=self.reconnect_wait,
            disconnected_cb=disconnected,
            reconnected_cb=reconnected,
            error_cb=error,
        )
        self._js = self._nc.jetstream()
        options = self._nc.options

        def interval(seconds: float) -> None:
            options["reconnect_time_wait"] = seconds

        self.state.backoff(
            interval, initial=self.reconnect_wait, cap=self.settings.reconnect_max_delay
        )
        await self._declare_streams()
        self.state.changed(True)

    def _stream_config(self, name: str, options: StreamSettings) -> Any:
        api: Any = require_extra("nats.js.api", feature="NATS", extra="nats")
        return api.StreamConfig(
            name=name,
            subjects=options.subjects,
            storage=api.StorageType(options.storage),
            num_replicas=options.replicas,
            max_age=options.max_age,
            max_msgs=options.max_msgs,
            max_bytes=options.max_bytes,
            duplicate_window=options.duplicate_window,
            retention=api.RetentionPolicy(options.retention),
        )

    async def _declare_streams(self) -> None:
        js_errors: Any = require_extra("nats.js.errors", feature="NATS", extra="nats")
        for name, options in self.settings.streams.items():
            config = self._stream_config(name, options)
            try:
                try:
                    await self._js.stream_info(name)
                except js_errors.NotFoundError:
                    await self._js.add_stream(config)
                else:
                    await self._js.update_stream(config)
            except js_errors.APIError as exc:
                raise ValueError(
                    f"broker.streams.{name}: the NATS server refused the stream: {exc}"
                ) from None
            self._learn(name, options.subjects)

    async def close(self) -> None:
        self._closing = True
        self.state.closed()
        for subscription in self._subscriptions:
            with contextlib.suppress(Exception):
                await subscription.cancel()
        self._subscriptions.clear()
        if self._nc is not None:
            nc, self._nc = self._nc, None
            try:  # drain flushes what is buffered; impossible while reconnecting
                async with asyncio.timeout(5):
                    await nc.drain()
            except Exception as exc:
                log.debug("NATS drain failed (%r); closing", exc)
                with contextlib.suppress(Exception):
                    await nc.close()

    # -- which stream stores a subject ---------------------------------------------------

    def _learn(self, stream: str, subjects: list[str]) -> None:
        for pattern in subjects:
            wild = "*" in pattern.split(".") or pattern.endswith(">")
            (self._patterns if wild else self._literal)[pattern] = stream

    def _forget(self, stream: str) -> None:
        """Ask the server again next time (the stream may be gone or changed)."""
        for table in (self._literal, self._patterns):
            for pattern in [p for p, name in table.items() if name == stream]:
                del table[pattern]

    def _known(self, subject: str) -> str | None:
        stream = self._literal.get(subject)
        if stream is None:
            for pattern, name in self._patterns.items():
                if subject_matches(pattern, subject):
                    return name
        return stream

    async def _stored_by(self, subject: str) -> str | None:
        """The stream that stores ``subject`` (a source may be a wildcard: the stream
        whose subjects overlap it), known or asked from the server; ``None`` if none."""
        known = self._known(subject)
        if known is not None:
            return known
        js_errors: Any = require_extra("nats.js.errors", feature="NATS", extra="nats")
        try:
            name: str = await self._js.find_stream_name_by_subject(subject)
            info = await self._js.stream_info(name)
        except js_errors.NotFoundError:
            return None
        except js_errors.ServiceUnavailableError:
            raise  # JetStream (re)starting: send again
        except js_errors.APIError as exc:
            raise PublishError(
                f"asking the NATS server which stream stores {subject!r} failed:"
                f" {exc.description or repr(exc)}",
                destination=subject,
            ) from exc
        self._learn(name, list(info.config.subjects or ()))
        if self._known(subject) is None:  # a wildcard source the stream's subjects overlap
            self._literal[subject] = name
        return name

    async def _stream(self, subject: str) -> str:
        """The stream that stores ``subject``; one of its own is created if none does."""
        stream = await self._stored_by(subject)
        if stream is not None:
            return stream
        js_errors: Any = require_extra("nats.js.errors", feature="NATS", extra="nats")
        name = "CORDIO_" + _name(subject)
        try:
            await self._js.add_stream(name=name, subjects=[subject])
        except js_errors.ServiceUnavailableError:
            raise
        except js_errors.APIError as exc:
            # another client created a stream for the subject meanwhile: use it
            stream = await self._stored_by(subject)
            if stream is None:
                raise PublishError(
                    f"no stream stores {subject!r}, and the NATS server refused to create"
                    f" stream {name!r} for it: {exc.description or repr(exc)}",
                    destination=subject,
                ) from exc
            return stream
        self._learn(name, [subject])
        return name

    # -- publishing -----------------------------------------------------------------------

    def _check(self, destination: str, message: Message) -> None:
        """Refuse at once what can never be published (closed, invalid, too large)."""
        if self._closing:
            raise self.state.closed_error(destination)
        if self._js is None:
            raise PublishError("NATS broker is not connected", destination=destination)
        why = check_subject(destination, wildcards=False)
        if why is not None:
            raise InvalidMessage(
                f"{destination!r} is not a subject to publish to: {why}", destination=destination
            )
        check_size(message, self.max_message_bytes, destination)
        max_payload = self._nc.max_payload
        if len(message.body) > max_payload:
            raise InvalidMessage(
                f"message for {destination!r} is {len(message.body)} bytes, over the NATS"
                f" server's max_payload of {max_payload}",
                destination=destination,
            )
        if message.headers:
            _check_headers(message, destination)

    async def publish(
        self,
        destination: str,
        message: Message,
        *,
        routing_key: str | None = None,
        declare: bool = False,
    ) -> None:
        if routing_key is not None:
            raise InvalidMessage(
                f"routing_key given for {destination!r}: routing keys are RabbitMQ's;"
                " NATS routes by the subject",
                destination=destination,
            )
        self._check(destination, message)
        create = declare or any(
            subject_matches(pattern, destination) for pattern in self.destinations
        )
        await self._send(destination, message, create=create)

    async def _send(self, destination: str, message: Message, *, create: bool = True) -> None:
        """Publish through the gate, without the size check (dead-letter copies keep the
        evidence, however large). ``create``: a stream is created if none stores the
        subject; else that raises :class:`PublishError`."""
        headers = _to_headers(message)
        headers.pop(ATTEMPT, None)
        js_errors: Any = require_extra("nats.js.errors", feature="NATS", extra="nats")
        nats_errors: Any = require_extra("nats.errors", feature="NATS", extra="nats")
        per_try = min(2.0, self.settings.publish_timeout)

        async def attempt() -> None:
            if create:
                stream = await self._stream(destination)
            else:
                found = await self._stored_by(destination)
                if found is None:
                    raise unknown_destination(destination, subject=True)
                stream = found
            try:
                await self._js.publish(
                    destination, message.body, timeout=per_try, stream=stream, headers=dict(headers)
                )
            except js_errors.NoStreamResponseError:
                self._forget(stream)  # deleted, or JetStream restarting: ask again
                raise
            except js_errors.APIError as exc:
                if isinstance(exc, js_errors.ServiceUnavailableError) and (
                    exc.err_code not in _REFUSED
                ):
                    raise  # JetStream (re)starting: send again
                if exc.err_code == _WRONG_STREAM:  # the subject moved to another stream
                    self._forget(stream)
                    raise _StreamChanged(stream) from exc
                kind = InvalidMessage if exc.err_code == _TOO_LARGE else PublishError
                raise kind(
                    f"stream {stream!r} refused the message for {destination!r}:"
                    f" {exc.description or repr(exc)}",
                    destination=destination,
                ) from exc
            except (nats_errors.MaxPayloadError, nats_errors.BadHeaderError) as exc:
                raise InvalidMessage(
                    f"the message for {destination!r} cannot be sent: {exc!r}",
                    destination=destination,
                ) from exc
            except js_errors.Error as exc:
                raise PublishError(
                    f"publish to {destination!r} (stream {stream!r}) failed: {exc!r}",
                    destination=destination,
                ) from exc

        # no ack in time or the connection dropped: send again; the same Nats-Msg-Id makes
        # JetStream drop a copy it already stored
        await self.state.send(attempt, destination, transient=self._transient_errors())

    def _transient_errors(self) -> tuple[type[BaseException], ...]:
        """Exceptions meaning "connection trouble, send again"."""
        if not self._transient:
            nats_errors: Any = require_extra("nats.errors", feature="NATS", extra="nats")
            js_errors: Any = require_extra("nats.js.errors", feature="NATS", extra="nats")
            self._transient = (
                nats_errors.TimeoutError,
                nats_errors.ConnectionClosedError,
                nats_errors.ConnectionReconnectingError,
                nats_errors.NoRespondersError,
                nats_errors.StaleConnectionError,
                nats_errors.OutboundBufferLimitError,
                js_errors.NoStreamResponseError,  # JetStream still starting after a restart
                js_errors.ServiceUnavailableError,
                _StreamChanged,
            )
        return self._transient

    # -- request/reply ----------------------------------------------------------------------

    async def request(self, destination: str, message: Message, *, timeout: float) -> Message:
        self._check(destination, message)
        found: list[str | None] = []

        async def lookup() -> None:
            found.append(await self._stored_by(destination))

        await self.state.send(lookup, destination, transient=self._transient_errors())
        if found[-1] is None:
            return await self._core_request(destination, message, timeout)
        try:
            inbox = await self.reply_address()
        except Exception as exc:  # the client refused to subscribe (closed meanwhile)
            raise PublishError(
                f"request to {destination!r}: subscribing to the reply subject failed: {exc!r}",
                destination=destination,
            ) from exc
        message.correlation_id, future = self.replies.expect()
        message.reply_to = f"{inbox}.{message.correlation_id}"
        try:
            await self._send(destination, message)
            return await wait_reply(future, destination, timeout)
        finally:
            self.replies.forget(message.correlation_id)

    async def _core_request(self, destination: str, message: Message, timeout: float) -> Message:
        """A core NATS request: the reply subject is the client's own inbox."""
        nats_errors: Any = require_extra("nats.errors", feature="NATS", extra="nats")
        from cordio.messaging.rpc import RequestTimeout

        try:
            msg = await self._nc.request(
                destination, message.body, timeout=timeout, headers=_to_headers(message)
            )
        except nats_errors.NoRespondersError as exc:
            raise PublishError(
                f"no responder for {destination!r}: no stream stores the subject and no NATS"
                " subscriber listens on it",
                destination=destination,
            ) from exc
        except nats_errors.TimeoutError:
            raise RequestTimeout(destination, timeout) from None
        except nats_errors.Error as exc:
            raise PublishError(
                f"request to {destination!r} failed: {exc!r}", destination=destination
            ) from exc
        return _reply_from_nats(msg)

    async def reply_address(self) -> str:
        """The prefix of this connection's reply subjects: a request's replies go to
        ``<prefix>.<correlation id>``."""
        if self._inbox is None:
            inbox = self._nc.new_inbox()

            async def on_reply(msg: Any) -> None:
                self.replies.resolve(_reply_from_nats(msg))

            await self._nc.subscribe(inbox + ".*", cb=on_reply)
            self._inbox = inbox
        return self._inbox

    async def reply(self, to: str, message: Message) -> None:
        await self._nc.publish(to, message.body, headers=_to_headers(message))

    async def _pull_subscribe(self, source: str, prefetch: int) -> Any:
        api: Any = require_extra("nats.js.api", feature="NATS", extra="nats")
        why = check_subject(source, wildcards=True)
        if why is not None:
            raise ValueError(f"{source!r} is not a NATS subject to consume: {why}")
        known = self._known(source)
        if known is not None:  # it may be gone: ask the server again
            self._forget(known)
        stream = await self._stream(source)
        durable = "cordio_" + _name(source)
        config = api.ConsumerConfig(
            ack_policy=api.AckPolicy.EXPLICIT,
            # consumer-wide, over all replicas; each replica holds at most ``prefetch``
            max_ack_pending=max(self.settings.max_ack_pending, prefetch),
            ack_wait=self.settings.ack_wait,
            max_deliver=-1,
        )
        return await self._js.pull_subscribe(source, durable=durable, stream=stream, config=config)

    async def subscribe(
        self, source: str, handler: Handler, *, prefetch: int, concurrency: int | None = None
    ) -> NatsSubscription:
        sub = await self._pull_subscribe(source, prefetch)
        workers = min(concurrency or prefetch, prefetch)
        subscription = NatsSubscription(self, source, sub, handler, prefetch, workers)
        self._subscriptions.append(subscription)
        return subscription
