"""Bulkhead: bound how many calls run at once and how many wait (M. Nygard, "Release It!",
2nd ed., ch. 5 "Bulkheads")."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, ParamSpec, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from cordio.policy.errors import BulkheadFullError
from cordio.policy.marks import mark
from cordio.policy.scopes import CallStack

log = logging.getLogger("cordio.policy")

P = ParamSpec("P")
T = TypeVar("T")


class BulkheadSettings(BaseModel):
    """``policies.<name>.bulkhead``: ``max_concurrent`` (≥ 1, default 10) and ``max_queued``
    (≥ 0, default 100)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_concurrent: int = Field(10, ge=1)
    max_queued: int = Field(100, ge=0)


class Bulkhead:
    """At most ``max_concurrent`` calls run at once, at most ``max_queued`` wait; beyond
    that a call fails at once with :class:`~cordio.policy.errors.BulkheadFullError`.

    Usable as a decorator and as ``async with``, shared by any number of tasks. Being full
    is an expected outcome, not an error of the code: the first rejection logs one WARNING,
    the first call let in after rejections logs another, and rejections in between are
    only counted (``rejected``).

    Args:
        max_concurrent, max_queued: see :class:`BulkheadSettings`.
        name: for logs, errors and configuration (``policies.<name>.bulkhead``).
    """

    def __init__(
        self, max_concurrent: int = 10, max_queued: int = 100, *, name: str = "bulkhead"
    ) -> None:
        self.settings = BulkheadSettings(max_concurrent=max_concurrent, max_queued=max_queued)
        self.name = name
        self._semaphore = asyncio.Semaphore(max_concurrent)
        self._held: CallStack[asyncio.Semaphore] = CallStack(name)
        self.waiting = 0
        self.rejected = 0
        self._rejecting = False

    def snapshot(self) -> dict[str, Any]:
        """State for diagnostics: ``{"name", "running", "waiting", "rejected",
        "max_concurrent", "max_queued"}`` (``rejected`` since start)."""
        limit = self.settings.max_concurrent
        return {
            "name": self.name,
            "running": limit - self._semaphore._value,
            "waiting": self.waiting,
            "rejected": self.rejected,
            "max_concurrent": limit,
            "max_queued": self.settings.max_queued,
        }

    def configure(self, settings: BulkheadSettings) -> None:
        self.settings = settings
        self._semaphore = asyncio.Semaphore(settings.max_concurrent)

    async def __aenter__(self) -> Bulkhead:
        self._held.push(await self._acquire())
        return self

    async def _acquire(self) -> asyncio.Semaphore:
        semaphore = self._semaphore  # configure() may replace it while this call runs
        if semaphore.locked():
            if self.waiting >= self.settings.max_queued:
                self._reject()
            self.waiting += 1
            try:
                await semaphore.acquire()
            finally:
                self.waiting -= 1
        else:
            await semaphore.acquire()
        if self._rejecting:
            self._rejecting = False
            log.warning("bulkhead %s: accepting calls again", self.name)
        return semaphore

    def _reject(self) -> None:
        self.rejected += 1
        running, waiting = self.settings.max_concurrent, self.waiting
        if not self._rejecting:
            self._rejecting = True
            log.warning(
                "bulkhead %s: full (%d running, %d waiting); rejecting calls",
                self.name,
                running,
                waiting,
            )
        raise BulkheadFullError(f"{self.name}: {running} calls running and {waiting} waiting")

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._held.pop().release()

    def __call__(self, func: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
        @functools.wraps(func)
        async def bounded(*args: P.args, **kwargs: P.kwargs) -> T:
            semaphore = await self._acquire()
            try:
                return await func(*args, **kwargs)
            finally:
                semaphore.release()

        mark(bounded, self)
        return bounded
