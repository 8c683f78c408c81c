"""Test kit: run an app in-process, full lifecycle, with an httpx client bound to it.

Example::

    from cordio.testing import TestApp

    async def test_create_order():
        async with TestApp(app, overrides={db_adapter: memory_adapter}) as client:
            response = await client.post("/orders", json={"item": "tea", "qty": 2})
            assert response.status_code == 201
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import httpx

from cordio.app import App
from cordio.clock import FakeClock
from cordio.config.loader import ConfigSources
from cordio.config.sources import Source
from cordio.lifecycle import Runtime
from cordio.plan import switch_on_transports

if TYPE_CHECKING:
    from cordio.messaging import MemoryBroker, Publisher


class TestApp(httpx.AsyncClient):
    """An :class:`httpx.AsyncClient` whose ``async with`` starts and stops ``app``.

    No port is opened: requests go straight to the app's ASGI handler. Resources, services
    and background tasks run as in production.

    Args:
        app: the app under test.
        overrides: resource (factory, type or name) → replacement (value or factory).
        config: configuration sources to use instead of the app's (e.g. an
            :class:`~cordio.config.EnvSource` over a dict); default: the app's.
        base_url: default ``http://testserver``.
        memory_broker: run the app's messaging on the in-memory broker whatever
            ``broker.url`` says (topology settings still apply); default false. The
            spelling of ``doubles=("messaging",)``.
        doubles: names of transports to run on their test doubles (see
            :meth:`cordio.transport.Transport.test_double`).
        clock: the app's clock (default: a :class:`~cordio.clock.FakeClock` starting at
            the current wall time).

    Attributes:
        runtime: the running app's state while inside ``async with``.
        clock: the app's clock, a :class:`~cordio.clock.FakeClock`: time moves only with
            :meth:`advance`, so timers fire when a test says so.
    """

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        app: App,
        *,
        overrides: Mapping[Any, Any] | None = None,
        config: ConfigSources | list[Source] | None = None,
        base_url: str = "http://testserver",
        memory_broker: bool = False,
        doubles: tuple[str, ...] = (),
        clock: FakeClock | None = None,
        **client_options: Any,
    ) -> None:
        self.app = app
        self.clock = clock or FakeClock()
        self._overrides = dict(overrides or {})
        self._doubles = (*doubles, "messaging") if memory_broker else doubles
        self._config = config
        self._saved: dict[str, Any] = {}
        self.runtime: Runtime | None = None
        super().__init__(
            transport=httpx.ASGITransport(app=self._dispatch), base_url=base_url, **client_options
        )

    async def _dispatch(self, scope: Any, receive: Any, send: Any) -> None:
        if self.runtime is None:
            raise RuntimeError("TestApp is not running: use 'async with TestApp(app) as client'")
        await self.runtime.http_app(scope, receive, send)

    async def __aenter__(self) -> TestApp:
        app = self.app
        self._saved = dict(app.overrides)
        try:
            if self._doubles:
                switch_on_transports(app)  # an app that only publishes has messaging too
                for transport in app.transports():
                    if transport.name in self._doubles:
                        for target, replacement in transport.test_double().items():
                            app.override(target, replacement)
            for target, replacement in self._overrides.items():
                app.override(target, replacement)
            runtime = Runtime(app, serve=False, sources=self._config, clock=self.clock)
            await runtime.start()
        except BaseException:
            self._restore()
            raise
        self.runtime = runtime
        await super().__aenter__()
        return self

    @property
    def broker(self) -> MemoryBroker:
        """The running app's broker (a :class:`~cordio.messaging.MemoryBroker` with
        ``memory_broker=True`` or ``broker.url = "memory://"``)."""
        if self.runtime is None or "broker" not in self.runtime.slots:
            raise RuntimeError("the app is not running, or it has no broker")
        broker: MemoryBroker = self.runtime.slots["broker"].value
        return broker

    async def publish(self, destination: str, payload: Any, **options: Any) -> Any:
        """Publish through the app's own ``Publisher`` (options as for
        :meth:`cordio.messaging.Publisher.publish`); returns the message."""
        publisher: Publisher = self.app.get("publisher")
        return await publisher.publish(destination, payload, **options)

    async def advance(self, seconds: float) -> None:
        """Move the app's clock on by ``seconds``: every timer due on the way fires, in
        order, and runs until it waits on something other than the clock.

        Raises:
            ValueError: ``seconds`` is negative.
        """
        await self.clock.advance(seconds)

    async def drained(self, timeout: float = 5.0) -> None:
        """Wait until the in-memory broker has nothing left to deliver: every message
        published so far was handled (acked, dead-lettered, or its retries done).

        Raises:
            TimeoutError: still busy after ``timeout`` seconds.
        """
        await self.broker.drained(timeout)

    async def __aexit__(self, *exc_info: Any) -> None:
        try:
            await super().__aexit__(*exc_info)
        finally:
            runtime, self.runtime = self.runtime, None
            try:
                if runtime is not None:
                    await runtime.stop()
            finally:
                self._restore()

    def _restore(self) -> None:
        """Put the app's overrides back as they were."""
        self.app.overrides = self._saved
