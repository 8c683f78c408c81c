"""Background tasks and in-flight handler calls, both tracked so shutdown can wait for them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

log = logging.getLogger("cordio.tasks")

T = TypeVar("T")


class TaskGroup:
    """Named background tasks of an app: tracked, cancelled at shutdown, failures logged.

    Attributes:
        failed: how many tasks ended with an exception (other than cancellation).
    """

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[Any]] = set()
        self.failed = 0
        self.closed = False

    def spawn(self, coro: Coroutine[Any, Any, T], *, name: str) -> asyncio.Task[T]:
        """Run ``coro`` as a named task until it ends or the app stops.

        An exception that ends the task is logged at ERROR with its traceback and counted
        in :attr:`failed`; it is never lost silently.

        Raises:
            RuntimeError: the app is shutting down or not running (the coroutine is closed).
        """
        if self.closed:
            coro.close()
            raise RuntimeError(f"cannot spawn task {name!r}: the app is not running")
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self.tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self.failed += 1
            log.error("background task %r failed", task.get_name(), exc_info=(type(exc), exc, None))

    def running(self) -> list[dict[str, Any]]:
        """Describe each running task: ``{"name": str, "coroutine": str}``."""
        return [
            {"name": t.get_name(), "coroutine": getattr(t.get_coro(), "__qualname__", "?")}
            for t in sorted(self.tasks, key=lambda t: t.get_name())
        ]

    async def aclose(self) -> None:
        """Refuse new tasks, cancel the running ones and wait until they have ended."""
        self.closed = True
        pending = list(self.tasks)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)


class InFlight:
    """The handler calls running now, so shutdown can drain them and cancel the rest."""

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[Any]] = set()
        self._idle: asyncio.Event | None = None

    def __len__(self) -> int:
        return len(self.tasks)

    def discard(self, task: asyncio.Task[Any]) -> None:
        """Forget a finished call."""
        self.tasks.discard(task)
        if not self.tasks and self._idle is not None:
            self._idle.set()

    async def drain(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for running calls to end.

        Returns:
            ``True`` if none are left, ``False`` if the timeout passed first.
        """
        if not self.tasks:
            return True
        self._idle = asyncio.Event()
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    async def cancel(self, timeout: float = 5.0) -> int:
        """Cancel the calls still running and wait up to ``timeout`` s; return how many."""
        pending = list(self.tasks)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=timeout)
        return len(pending)
