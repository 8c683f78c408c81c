"""Bulkhead: bound how many calls run at once and how many wait."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import ParamSpec, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from cordio.policy.errors import BulkheadFullError
from cordio.policy.marks import mark

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

    Usable as a decorator and as ``async with``.
    """

    def __init__(
        self, max_concurrent: int = 10, max_queued: int = 100, *, name: str = "bulkhead"
    ) -> None:
        self.settings = BulkheadSettings(max_concurrent=max_concurrent, max_queued=max_queued)
        self.name = name
        self._semaphore = asyncio.Semaphore(max_concurrent)
        self.waiting = 0

    def configure(self, settings: BulkheadSettings) -> None:
        self.settings = settings
        self._semaphore = asyncio.Semaphore(settings.max_concurrent)

    async def __aenter__(self) -> Bulkhead:
        if self._semaphore.locked():
            if self.waiting >= self.settings.max_queued:
                raise BulkheadFullError(
                    f"{self.name}: {self.settings.max_concurrent} calls running and"
                    f" {self.waiting} waiting"
                )
            self.waiting += 1
            try:
                await self._semaphore.acquire()
            finally:
                self.waiting -= 1
        else:
            await self._semaphore.acquire()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._semaphore.release()

    def __call__(self, func: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
        @functools.wraps(func)
        async def bounded(*args: P.args, **kwargs: P.kwargs) -> T:
            async with self:
                return await func(*args, **kwargs)

        mark(bounded, self)
        return bounded
