"""Retry: call again after a failure, with exponential backoff and full jitter.

The wait before retry ``n`` (1-based) is uniform in ``[0, min(max_delay, initial_delay *
2**(n-1))]`` ("full jitter", M. Brooker, "Exponential Backoff And Jitter", AWS Architecture
Blog, 2015). Retries stop at the attempt
limit, at ``max_elapsed`` seconds since the first call, or for an exception that is not
retried; then the last exception propagates, or the fallback answers. By default only
failures of the dependency are retried (:mod:`cordio.policy.failures`): connection errors,
timeouts, 5xx answers — never a caller's bad input (a ``ValueError``, a 4xx answer). An
exception with a ``retry_after`` attribute (seconds; e.g. from an HTTP ``Retry-After``
header, RFC 9110 section 10.2.3) makes the wait at least that long.

The success path does not enter the retry machinery: a call that succeeds the first time
costs one extra coroutine frame.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from types import TracebackType
from typing import Any, ParamSpec, TypeVar, cast

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cordio.context import shutdown_deadline
from cordio.policy.commit import summarise
from cordio.policy.failures import FailureRule, exception_type, exception_types
from cordio.policy.marks import mark

log = logging.getLogger("cordio.policy")

P = ParamSpec("P")
T = TypeVar("T")


class Attempt:
    """One attempt of a retried block (see :meth:`Retry.attempts`)."""

    def __init__(self, number: int) -> None:
        self.number = number
        self.error: Exception | None = None

    async def __aenter__(self) -> Attempt:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        if isinstance(exc, Exception):
            self.error = exc
            return True  # decided by Retry.attempts: retried, or raised from the loop
        return False


class RetrySettings(BaseModel):
    """The tunable parameters of a :class:`Retry` (``policies.<name>.retry``).

    Attributes:
        attempts: calls in all, the first included (default 3; at least 1).
        initial_delay: seconds; the cap of the first wait (default 0.1).
        max_delay: seconds; the largest wait (default 10).
        max_elapsed: seconds since the first call after which no retry starts
            (default 30).
        on: names of exception types retried besides the defaults (builtins like
            ``ConnectionError`` or dotted paths like ``httpx.TransportError``); unset keeps
            the code's choice.
        give_up_on: names of exception types never retried; unset keeps the code's choice.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    attempts: int = Field(3, ge=1, le=1000)
    initial_delay: float = Field(0.1, ge=0)
    max_delay: float = Field(10.0, ge=0)
    max_elapsed: float = Field(30.0, gt=0)
    on: tuple[str, ...] | None = None
    give_up_on: tuple[str, ...] | None = None

    @field_validator("on", "give_up_on")
    @classmethod
    def _exception_names(cls, names: tuple[str, ...] | None) -> tuple[str, ...] | None:
        for name in names or ():
            exception_type(name)
        return names

    @model_validator(mode="after")
    def _delays(self) -> RetrySettings:
        if self.max_delay < self.initial_delay:
            raise ValueError("max_delay must not be less than initial_delay")
        return self


Fallback = Callable[[BaseException], Awaitable[Any]] | Any


class Retry:
    """Retry an async call on chosen exceptions.

    Use as a decorator (``@Retry(attempts=5)``) or call :meth:`call`.

    Args:
        attempts, initial_delay, max_delay, max_elapsed: see :class:`RetrySettings`.
        on: exception types retried besides the default, the dependency failures of
            :mod:`cordio.policy.failures` (connection errors, timeouts, 5xx answers, an
            unavailable resource). A caller's error (``ValueError``, ``TypeError``, a 4xx
            answer other than 408 and 429) is never retried.
        give_up_on: exception types never retried even if ``on`` or the defaults name
            them (e.g. ``TimeoutError`` for a call that must not run twice).
        fallback: after the last failure, return this value instead of raising, or, if it
            is callable, ``await fallback(exc)``.
        name: for logs and configuration (``policies.<name>.retry``).
        sleep: ``async def sleep(seconds)``; default :func:`asyncio.sleep` (tests pass a
            fake one).
        clock: seconds, monotonic; default :func:`time.monotonic`.

    Raises:
        pydantic.ValidationError: invalid parameters (negative attempts, ...).
    """

    def __init__(
        self,
        *,
        attempts: int = 3,
        initial_delay: float = 0.1,
        max_delay: float = 10.0,
        max_elapsed: float = 30.0,
        on: tuple[type[BaseException], ...] = (),
        give_up_on: tuple[type[BaseException], ...] = (),
        fallback: Fallback = None,
        name: str = "retry",
        sleep: Callable[[float], Awaitable[None]] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = RetrySettings(
            attempts=attempts,
            initial_delay=initial_delay,
            max_delay=max_delay,
            max_elapsed=max_elapsed,
        )
        self.on = on
        self.give_up_on = give_up_on
        self._rule = FailureRule(on, give_up_on)
        self.fallback = fallback
        self.has_fallback = fallback is not None
        self.name = name
        self._sleep = sleep or asyncio.sleep
        self._clock = clock
        self._random = random.Random()
        # the end of the shutdown grace period of the app running the call, if stopping
        self.deadline: Callable[[], float | None] = shutdown_deadline

    def configure(self, settings: RetrySettings) -> None:
        """Replace the tunable parameters (from configuration), exception types included."""
        self.settings = settings
        if settings.on is not None:
            self.on = exception_types(settings.on)
        if settings.give_up_on is not None:
            self.give_up_on = exception_types(settings.give_up_on)
        self._rule = FailureRule(self.on, self.give_up_on)

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based): full jitter."""
        settings = self.settings
        cap = min(settings.max_delay, settings.initial_delay * 2 ** (attempt - 1))
        return self._random.uniform(0, cap)

    def retryable(self, exc: BaseException) -> bool:
        """Whether ``exc`` is retried (never a cancellation, never a caller's error)."""
        return self._rule(exc)

    def __call__(self, func: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
        """Decorate an async function."""

        @functools.wraps(func)
        async def retried(*args: P.args, **kwargs: P.kwargs) -> T:
            started = self._clock()
            try:
                return await func(*args, **kwargs)
            except Exception as exc:
                return cast(T, await self._after_failure(func, args, kwargs, exc, started))

        mark(retried, self)
        return retried

    async def call(self, func: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """``await func(*args, **kwargs)`` under this retry."""
        started = self._clock()
        try:
            return await func(*args, **kwargs)
        except Exception as exc:
            return cast(T, await self._after_failure(func, args, kwargs, exc, started))

    async def _after_failure(
        self,
        func: Callable[..., Awaitable[T]],
        args: Any,
        kwargs: Any,
        first: Exception,
        started: float,
    ) -> Any:
        settings = self.settings
        attempt = 1
        last: Exception = first
        while True:
            if not self.retryable(last):
                return await self._give_up(last)
            if attempt >= settings.attempts:
                if settings.attempts > 1:
                    self._gave_up(last, f"{self.name}: all {attempt} attempts failed: {last!r}")
                return await self._give_up(last)
            delay = self.delay(attempt)
            hinted = getattr(last, "retry_after", None)
            if isinstance(hinted, int | float) and hinted > delay:
                delay = float(hinted)  # the server said when to come back (Retry-After)
            now = self._clock()
            deadline = self.deadline()
            if now - started + delay > settings.max_elapsed or (
                deadline is not None and now + delay > deadline
            ):
                self._gave_up(
                    last,
                    f"{self.name}: giving up after {attempt} attempt(s) and"
                    f" {now - started:.2f} s: {last!r}",
                )
                return await self._give_up(last)
            log.info(
                "%s: attempt %d/%d failed (%r); retrying in %.3f s",
                self.name,
                attempt,
                settings.attempts,
                last,
                delay,
            )
            await self._sleep(delay)
            attempt += 1
            try:
                return await func(*args, **kwargs)
            except Exception as exc:
                last = exc

    async def attempts(self) -> AsyncIterator[Attempt]:
        """Retry a block of code::

            async for attempt in retry.attempts():
                async with attempt:
                    await send(order)

        A failure inside ``async with attempt`` that is retried is swallowed and the next
        attempt follows after the backoff; the last failure (or one not retried) is raised
        from the ``async for``. The fallback does not apply to blocks.
        """
        started = self._clock()
        number = 0
        while True:
            number += 1
            attempt = Attempt(number)
            yield attempt
            error = attempt.error
            if error is None:
                return
            if not self.retryable(error) or number >= self.settings.attempts:
                raise error
            delay = self.delay(number)
            hinted = getattr(error, "retry_after", None)
            if isinstance(hinted, int | float) and hinted > delay:
                delay = float(hinted)
            now = self._clock()
            deadline = self.deadline()
            if now - started + delay > self.settings.max_elapsed or (
                deadline is not None and now + delay > deadline
            ):
                raise error
            log.info(
                "%s: attempt %d failed (%r); retrying in %.3f s", self.name, number, error, delay
            )
            await self._sleep(delay)

    def _gave_up(self, exc: Exception, text: str) -> None:
        """One WARNING line; left to the event source's own line when the exception goes
        on to it (a consumer's "failed, dead-lettered"; see cordio.policy.commit)."""
        if self.has_fallback:
            log.warning("%s", text)
        else:
            summarise(exc, logging.WARNING, text)

    async def _give_up(self, exc: Exception) -> Any:  # returns the fallback's answer
        if not self.has_fallback:
            raise exc
        fallback = self.fallback
        if callable(fallback):
            return await fallback(exc)
        return fallback
