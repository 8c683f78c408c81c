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
from typing import Any

import httpx

from cordio.app import App
from cordio.config.loader import ConfigSources
from cordio.config.sources import Source
from cordio.lifecycle import Runtime


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

    Attributes:
        runtime: the running app's state while inside ``async with``.
    """

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        app: App,
        *,
        overrides: Mapping[Any, Any] | None = None,
        config: ConfigSources | list[Source] | None = None,
        base_url: str = "http://testserver",
        **client_options: Any,
    ) -> None:
        self.app = app
        self._overrides = dict(overrides or {})
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
        self._saved = dict(self.app.overrides)
        for target, replacement in self._overrides.items():
            self.app.override(target, replacement)
        runtime = Runtime(self.app, serve=False, sources=self._config)
        try:
            await runtime.start()
        except BaseException:
            self.app.overrides = self._saved
            raise
        self.runtime = runtime
        await super().__aenter__()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        try:
            await super().__aexit__(*exc_info)
        finally:
            runtime, self.runtime = self.runtime, None
            self.app.overrides = self._saved
            if runtime is not None:
                await runtime.stop()
