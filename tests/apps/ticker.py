"""A small app without HTTP handlers: a service and a resource, admin endpoints only."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from cordio import App

log = logging.getLogger("ticker")

app = App("ticker", version="0.0.1")


class Clock:
    ticks = 0


@app.resource
async def clock() -> AsyncIterator[Clock]:
    log.info("clock set up")
    yield Clock()
    log.info("clock torn down")


class Ticker:
    """A service whose start() runs until stop() is called."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.started = asyncio.Event()
        self._stop = asyncio.Event()

    async def start(self) -> None:
        self.started.set()
        log.info("ticker started")
        while not self._stop.is_set():
            self.clock.ticks += 1
            try:
                await asyncio.wait_for(self._stop.wait(), 0.05)
            except TimeoutError:
                pass

    async def stop(self) -> None:
        self._stop.set()
        log.info("ticker stopped")


app.add(Ticker)
