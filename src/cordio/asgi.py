"""``app.asgi``: the app as an ASGI application whose lifespan starts and stops it, so any
ASGI server (uvicorn, granian, hypercorn) can host it. Listeners are the host's."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from starlette.types import Receive, Scope, Send

from cordio.http.problem import problem
from cordio.lifecycle import Runtime

if TYPE_CHECKING:
    from cordio.app import App

log = logging.getLogger("cordio.asgi")


class LifespanApp:
    """ASGI app: lifespan startup runs the app's start-up (no listeners of its own);
    shutdown runs its shutdown; requests go to its HTTP handlers and admin endpoints.

    Requests that arrive while the app is not running get a 503 problem response.
    """

    def __init__(self, app: App) -> None:
        self.app = app
        self.runtime: Runtime | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        runtime = self.runtime
        if runtime is None or runtime.http_app is None:
            if scope["type"] == "http":
                await problem(503, f"{self.app.name} is not running")(scope, receive, send)
            return
        await runtime.http_app(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                runtime = Runtime(self.app, serve=False)
                try:
                    await runtime.start()
                except Exception as exc:
                    log.error("%s", exc)
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                self.runtime = runtime
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                running, self.runtime = self.runtime, None
                clean = await running.stop() if running is not None else True
                if clean:
                    await send({"type": "lifespan.shutdown.complete"})
                else:
                    await send(
                        {
                            "type": "lifespan.shutdown.failed",
                            "message": "shutdown was not clean; see the log",
                        }
                    )
                return
