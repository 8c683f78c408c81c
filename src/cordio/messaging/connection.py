"""A broker connection's state, its listeners, and the publish gate every broker shares.

States: ``connected`` (the first time), ``disconnected``, ``reconnected``. Readiness follows
:attr:`ConnectionState.is_connected`.

The publish gate: a publish returns only once the broker confirmed it. While the connection
is down it waits for the connection to come back — at most ``publish_buffer`` publishes wait
at once, one more raises at once — and a publish interrupted by a dropped connection is sent
again after reconnect (same message id). Past ``publish_timeout`` seconds it raises
:class:`PublishError`. Nothing is dropped silently: every publish either returns (confirmed)
or raises.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Literal

from cordio.messaging.errors import InvalidMessage as InvalidMessage
from cordio.messaging.errors import PublishError as PublishError

if TYPE_CHECKING:
    from cordio.messaging.settings import BrokerSettings

log = logging.getLogger("cordio.messaging")

State = Literal["connected", "disconnected", "reconnected"]
Listener = Callable[[State], Any]


class ConnectionState:
    """The up/down state of one broker connection.

    Args:
        broker: the broker's name for messages (``RabbitMQ``, ``NATS``, ``memory``).
        publish_timeout: seconds a publish may take in all (default 5).
        publish_buffer: publishes that may wait for the connection at once (default 1000).
    """

    def __init__(
        self, broker: str, *, publish_timeout: float = 5.0, publish_buffer: int = 1000
    ) -> None:
        self.broker = broker
        self.publish_timeout = publish_timeout
        self.publish_buffer = publish_buffer
        self.waiting = 0
        self._up = asyncio.Event()
        self._down = asyncio.Event()
        self._down.set()
        self._usable = asyncio.Event()  # up, or closed: a waiting publish has its answer
        self._ever_up = False
        self._closed = False
        self._listeners: list[Listener] = []
        self._tasks: set[asyncio.Task[Any]] = set()

    @classmethod
    def for_broker(cls, broker: str, settings: BrokerSettings) -> ConnectionState:
        """The state of a ``broker`` connection, with the publish gate's bounds from the
        ``broker`` settings section (``publish_timeout``, ``publish_buffer``)."""
        return cls(
            broker,
            publish_timeout=settings.publish_timeout,
            publish_buffer=settings.publish_buffer,
        )

    @property
    def is_connected(self) -> bool:
        """Whether the connection is up now."""
        return self._up.is_set()

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(state)`` on every change; it may be a coroutine function (run as
        a task). Its exceptions are logged, never raised into the broker."""
        self._listeners.append(listener)

    def changed(self, up: bool) -> None:
        """Record that the connection went up or down (idempotent)."""
        if up == self._up.is_set():
            return
        state: State
        if up:
            self._closed = False
            state = "reconnected" if self._ever_up else "connected"
            self._ever_up = True
            self._up.set()
            self._usable.set()
            self._down.clear()
        else:
            state = "disconnected"
            self._up.clear()
            self._usable.clear()
            self._down.set()
        (log.info if up else log.warning)("%s broker %s", self.broker, state)
        for listener in self._listeners:
            try:
                result = listener(state)
            except Exception:
                log.exception("%s connection listener %r failed", self.broker, listener)
                continue
            if inspect.isawaitable(result):
                task = asyncio.ensure_future(result)
                self._tasks.add(task)
                task.add_done_callback(self._listener_done)

    def _listener_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s connection listener failed", self.broker, exc_info=task.exception())

    def backoff(
        self,
        apply: Callable[[float], None],
        *,
        initial: float = 0.5,
        cap: float = 10.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """Space the client's reconnect attempts with exponential backoff and jitter.

        While the connection is down, every ``delay`` seconds (``initial``, doubling up to
        ``cap``) ``apply(interval)`` sets the client's reconnect interval to a random value in
        ``[delay / 2, delay]`` ("equal jitter", so replicas do not reconnect in lock-step;
        M. Brooker, "Exponential Backoff And Jitter", AWS Architecture Blog, 2015); once it
        is up again the interval goes back to ``initial``.

        Args:
            apply: sets the client's reconnect interval (seconds).
            initial: first delay in seconds (default 0.5).
            cap: largest delay in seconds (default 10).
            sleep: the sleep function (for tests).
        """

        async def schedule() -> None:
            delay = initial
            while not self._up.is_set():
                apply(random.uniform(delay / 2, delay))
                await sleep(delay)
                delay = min(delay * 2, cap)
            apply(initial)

        def on_change(state: State) -> None:
            if state == "disconnected":
                task = asyncio.ensure_future(schedule())
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

        apply(initial)
        self.add_listener(on_change)

    def closed(self) -> None:
        """Record that the broker was closed on purpose (no listeners are called); publishes
        raise :class:`PublishError` at once from now on."""
        self._closed = True
        self._up.clear()
        self._down.set()
        self._usable.set()
        for task in self._tasks:
            task.cancel()

    async def send(
        self,
        attempt: Callable[[], Awaitable[None]],
        destination: str,
        transient: tuple[type[BaseException], ...] = (ConnectionError,),
    ) -> None:
        """Run ``attempt`` (one confirmed publish) through the gate (module docstring).

        Args:
            attempt: sends the message once and returns when the broker confirmed it.
            destination: for error messages.
            transient: exception types meaning "connection trouble, send again".

        Raises:
            PublishError: not confirmed within ``publish_timeout`` seconds, the buffer is
                full while the broker is down, or the broker was closed.
        """
        if self._closed:
            raise self.closed_error(destination)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.publish_timeout
        queued = False
        last: BaseException | None = None
        try:
            while True:
                if not self._up.is_set():
                    if not queued:
                        if self.waiting >= self.publish_buffer:
                            raise PublishError(
                                f"{self.broker} broker is down and {self.waiting} publishes"
                                f" already wait (broker.publish_buffer); publish to"
                                f" {destination!r} refused",
                                destination=destination,
                            )
                        self.waiting += 1
                        queued = True
                    try:
                        async with asyncio.timeout_at(deadline):
                            await self._usable.wait()
                    except TimeoutError:
                        raise self._timed_out(destination, last) from last
                    if self._closed:
                        raise self.closed_error(destination)
                try:
                    async with asyncio.timeout_at(deadline):
                        await attempt()
                    return
                except PublishError:  # the broker refused it: sending again cannot help
                    raise
                except transient as exc:
                    last = exc
                    if loop.time() >= deadline:
                        raise self._timed_out(destination, exc) from exc
                    log.debug("publish to %s interrupted, again: %r", destination, exc)
                    try:  # give the client a moment to notice the connection is gone
                        async with asyncio.timeout_at(min(deadline, loop.time() + 0.1)):
                            await self._down.wait()
                    except TimeoutError:
                        if loop.time() >= deadline:
                            raise self._timed_out(destination, exc) from exc
                except TimeoutError as exc:  # the deadline passed while sending
                    raise self._timed_out(destination, last or exc) from exc
        finally:
            if queued:
                self.waiting -= 1

    def closed_error(self, destination: str) -> PublishError:
        """The error of a publish to ``destination`` after the broker was closed."""
        return PublishError(
            f"{self.broker} broker is closed; publish to {destination!r} refused",
            destination=destination,
        )

    def _timed_out(self, destination: str, cause: BaseException | None) -> PublishError:
        why = f" (last error: {cause!r})" if cause is not None else ""
        state = "" if self._up.is_set() else f"{self.broker} broker is down; "
        return PublishError(
            f"{state}publish to {destination!r} not confirmed within"
            f" {self.publish_timeout} s (broker.publish_timeout){why}",
            destination=destination,
        )
