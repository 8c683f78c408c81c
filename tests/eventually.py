"""One bounded wait for conditions that another task, thread or process makes true.

Tests wait on events where they can; where the condition lives in another process or a
server (a queue's depth, a log file, an HTTP answer), they poll it with :func:`eventually`,
which always has a deadline and says what it was waiting for when that passes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(
    check: Callable[[], T | Awaitable[T]],
    *,
    timeout: float = 10.0,
    interval: float = 0.02,
    what: str = "",
) -> T:
    """Call ``check`` until it returns a truthy value, and return that value.

    ``check`` may be a plain or an async function. ``timeout`` and ``interval`` are seconds.
    Raises ``AssertionError`` naming ``what`` (or ``check``) and the last value seen when
    ``timeout`` passes first; an exception raised by ``check`` propagates at once.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if isinstance(value, Awaitable):
            value = await value
        if value:
            return value
        if time.monotonic() >= deadline:
            name = what or getattr(check, "__name__", repr(check))
            raise AssertionError(f"still waiting after {timeout} s for {name}; last: {value!r}")
        await asyncio.sleep(interval)


def eventually_sync(
    check: Callable[[], T], *, timeout: float = 10.0, interval: float = 0.02, what: str = ""
) -> T:
    """The same as :func:`eventually` for code outside an event loop."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            name = what or getattr(check, "__name__", repr(check))
            raise AssertionError(f"still waiting after {timeout} s for {name}; last: {value!r}")
        time.sleep(interval)
