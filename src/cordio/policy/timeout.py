"""Timeout: bound how long a call may take."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import ParamSpec, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from cordio.policy.errors import PolicyTimeoutError
from cordio.policy.marks import mark
from cordio.policy.scopes import CallStack

P = ParamSpec("P")
T = TypeVar("T")


class TimeoutSettings(BaseModel):
    """``policies.<name>.timeout``: ``seconds`` (> 0, default 10)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    seconds: float = Field(10.0, gt=0)


class Timeout:
    """Cancel a call that runs longer than ``seconds`` and raise
    :class:`~cordio.policy.errors.PolicyTimeoutError` (a :class:`TimeoutError`).

    Usable as a decorator and as ``async with Timeout(2):``. Built on
    :func:`asyncio.timeout`; a cancellation from outside is never turned into a timeout.
    One ``Timeout`` may be shared by any number of concurrent tasks: each call has its
    own limit, counted from its own start.

    ``timed_out`` counts the calls that took too long.

    Args:
        seconds: the limit (default 10).
        name: for configuration (``policies.<name>.timeout``).
    """

    def __init__(self, seconds: float = 10.0, *, name: str = "timeout") -> None:
        self.settings = TimeoutSettings(seconds=seconds)
        self.name = name
        self.timed_out = 0
        self._scopes: CallStack[asyncio.Timeout] = CallStack(name)

    def configure(self, settings: TimeoutSettings) -> None:
        self.settings = settings

    def __call__(self, func: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
        @functools.wraps(func)
        async def limited(*args: P.args, **kwargs: P.kwargs) -> T:
            scope = asyncio.timeout(self.settings.seconds)
            try:
                async with scope:
                    return await func(*args, **kwargs)
            except TimeoutError as exc:
                if scope.expired():
                    raise self._error() from exc
                raise  # a timeout inside the call (a socket's, say): not ours

        mark(limited, self)
        return limited

    def _error(self) -> PolicyTimeoutError:
        self.timed_out += 1
        return PolicyTimeoutError(f"{self.name}: took longer than {self.settings.seconds} s")

    async def __aenter__(self) -> Timeout:
        scope = asyncio.timeout(self.settings.seconds)
        await scope.__aenter__()
        self._scopes.push(scope)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        scope = self._scopes.pop()
        try:
            await scope.__aexit__(exc_type, exc, tb)
        except TimeoutError as error:
            if scope.expired():
                raise self._error() from error
            raise
