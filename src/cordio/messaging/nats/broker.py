"""The NATS JetStream broker: the connection and its state, publishing through the publish
gate with JetStream acks (every failure a :class:`~cordio.messaging.errors.PublishError`),
request/reply (through a stream, or core NATS), and subscribing with durable pull consumers
(see :mod:`cordio.messaging.nats` for the semantics).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from cordio.errors import require_extra
from cordio.messaging.broker import Handler, ServerBroker, unknown_destination
from cordio.messaging.errors import InvalidMessage, PublishError, RequestTimeout
from cordio.messaging.message import ATTEMPT, Message, check_size
from cordio.messaging.nats.subscriber import NatsSubscription
from cordio.messaging.nats.topology import NatsTopology
from cordio.messaging.nats.wire import (
    check_headers,
    check_subject,
    reply_from_nats,
    stream_name,
    subject_matches,
    to_headers,
)
from cordio.messaging.rpc import wait_reply
from cordio.messaging.settings import BrokerSettings

log = logging.getLogger("cordio.messaging")

_WRONG_STREAM = 10060  # JetStream: "expected stream does not match"
_TOO_LARGE = 10054  # JetStream: "message size exceeds maximum allowed"
# 503 answers that are refusals, not a JetStream restart: the stream could not store it
# (its max_msgs, max_bytes or per-subject limit with discard=new), insufficient resources
_REFUSED = frozenset({10077, 10023})


class _StreamChanged(Exception):
    """The subject is stored by another stream than the one it was known by: send again."""


class NatsBroker(ServerBroker, NatsTopology):
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

    server = "NATS"

    def __init__(
        self,
        url: str,
        *,
        settings: BrokerSettings | None = None,
        reconnect_wait: float = 1.0,
        destinations: set[str] | None = None,
    ) -> None:
        super().__init__(url, settings=settings, destinations=destinations)
        self.reconnect_wait = reconnect_wait
        self._nc: Any = None
        self._js: Any = None
        # which stream stores which subjects: literal subjects, and wildcard patterns
        self._literal: dict[str, str] = {}
        self._patterns: dict[str, str] = {}
        self._transient: tuple[type[BaseException], ...] = ()
        self._subscriptions: list[NatsSubscription] = []
        self._inbox: str | None = None

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

    # -- publishing -----------------------------------------------------------------------

    def _check(self, destination: str, message: Message) -> None:
        """Refuse at once what can never be published (closed, invalid, too large)."""
        self._check_open(destination, connected=self._js is not None)
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
            check_headers(message, destination)

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
        headers = to_headers(message)
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
        try:
            msg = await self._nc.request(
                destination, message.body, timeout=timeout, headers=to_headers(message)
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
        return reply_from_nats(msg)

    async def reply_address(self) -> str:
        """The prefix of this connection's reply subjects: a request's replies go to
        ``<prefix>.<correlation id>``."""
        if self._inbox is None:
            inbox = self._nc.new_inbox()

            async def on_reply(msg: Any) -> None:
                self.replies.resolve(reply_from_nats(msg))

            await self._nc.subscribe(inbox + ".*", cb=on_reply)
            self._inbox = inbox
        return self._inbox

    async def reply(self, to: str, message: Message) -> None:
        await self._nc.publish(to, message.body, headers=to_headers(message))

    async def _pull_subscribe(self, source: str, prefetch: int) -> Any:
        api: Any = require_extra("nats.js.api", feature="NATS", extra="nats")
        why = check_subject(source, wildcards=True)
        if why is not None:
            raise ValueError(f"{source!r} is not a NATS subject to consume: {why}")
        known = self._known(source)
        if known is not None:  # it may be gone: ask the server again
            self._forget(known)
        stream = await self._stream(source)
        durable = "cordio_" + stream_name(source)
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
