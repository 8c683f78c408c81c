"""Circuit breaker: stop calling a dependency that keeps failing, try again later.

States (M. Nygard, "Release It!", 2nd ed., ch. 5 "Circuit Breaker"; M. Fowler,
"CircuitBreaker", 2014):

- **closed**: calls go through; outcomes are recorded in a sliding window of the last
  ``window`` calls. When at least ``min_calls`` are recorded and the share of failures
  reaches ``failure_ratio`` — or, if ``consecutive_failures`` is set, after that many
  failures in a row — the breaker opens.
- **open**: calls fail at once with :class:`~cordio.policy.errors.CircuitOpenError` for
  ``recovery_time`` seconds, then the breaker is half-open.
- **half-open**: up to ``half_open_calls`` trial calls go through; if they all succeed the
  breaker closes (with an empty window), the first failure opens it again.

Only failures of the dependency count (:mod:`cordio.policy.failures`): connection errors,
timeouts, 5xx answers, an unavailable resource, and the types in ``failure_types``. Any
other exception — a caller's bad input above all — passes through without touching the
breaker's state, as do the types in ``ignore_types`` and cancellations. Every state change
is logged once at WARNING and passed to listeners; calls rejected while the breaker is open
are counted (``rejected``), not logged one by one.
"""

from __future__ import annotations

import collections
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Literal, ParamSpec, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from cordio.policy.errors import CircuitOpenError
from cordio.policy.failures import FailureRule, exception_type, exception_types
from cordio.policy.marks import mark

log = logging.getLogger("cordio.policy")

P = ParamSpec("P")
T = TypeVar("T")
State = Literal["closed", "open", "half_open"]


class BreakerSettings(BaseModel):
    """The tunable parameters of a :class:`CircuitBreaker` (``policies.<name>.breaker``).

    Attributes:
        window: calls in the sliding window (default 20).
        min_calls: calls recorded before the failure ratio applies (default 10).
        failure_ratio: share of failures in the window that opens the breaker, in (0, 1]
            (default 0.5).
        consecutive_failures: if set, open after this many failures in a row instead of
            by ratio (default unset).
        recovery_time: seconds the breaker stays open (default 30).
        half_open_calls: trial calls in half-open (default 1).
        failure_types: names of more exception types that count as failures (builtins
            like ``"LookupError"`` or dotted paths like ``"myapp.PricingDown"``); unset
            keeps the code's choice.
        ignore_types: names of exception types that never count; unset keeps the code's
            choice.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    window: int = Field(20, ge=1, le=10_000)
    min_calls: int = Field(10, ge=1)
    failure_ratio: float = Field(0.5, gt=0, le=1)
    consecutive_failures: int | None = Field(None, ge=1)
    recovery_time: float = Field(30.0, gt=0)
    half_open_calls: int = Field(1, ge=1)
    failure_types: tuple[str, ...] | None = None
    ignore_types: tuple[str, ...] | None = None

    @field_validator("failure_types", "ignore_types")
    @classmethod
    def _exception_names(cls, names: tuple[str, ...] | None) -> tuple[str, ...] | None:
        for name in names or ():
            exception_type(name)
        return names


Listener = Callable[[str, State, State], None]


class CircuitBreaker:
    """A circuit breaker around async calls: decorator, :meth:`call` or ``async with``.

    Args:
        name: for logs, errors and configuration (``policies.<name>.breaker``).
        window, min_calls, failure_ratio, consecutive_failures, recovery_time,
            half_open_calls: see :class:`BreakerSettings`.
        failure_types: exception types that count as failures besides the defaults of
            :mod:`cordio.policy.failures` (e.g. a client's ``PricingUnavailable``).
        ignore_types: exception types that never count, even if the defaults say so.
        clock: seconds, monotonic; default :func:`time.monotonic` (tests pass a fake one).

    Raises:
        pydantic.ValidationError: invalid parameters.
    """

    def __init__(
        self,
        name: str = "breaker",
        *,
        window: int = 20,
        min_calls: int = 10,
        failure_ratio: float = 0.5,
        consecutive_failures: int | None = None,
        recovery_time: float = 30.0,
        half_open_calls: int = 1,
        failure_types: tuple[type[BaseException], ...] = (),
        ignore_types: tuple[type[BaseException], ...] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.counts = FailureRule(failure_types, ignore_types)
        self.rejected = 0
        self._clock = clock
        self.listeners: list[Listener] = []
        self.last_failure: BaseException | None = None
        self.settings = BreakerSettings(
            window=window,
            min_calls=min_calls,
            failure_ratio=failure_ratio,
            consecutive_failures=consecutive_failures,
            recovery_time=recovery_time,
            half_open_calls=half_open_calls,
        )
        self._reset()
        self._state: State = "closed"
        self._opened_at = 0.0

    def configure(self, settings: BreakerSettings) -> None:
        """Replace the tunable parameters (from configuration), exception types included;
        the window starts afresh."""
        self.settings = settings
        failure_types, ignore_types = self.counts.failure_types, self.counts.ignore_types
        if settings.failure_types is not None:
            failure_types = exception_types(settings.failure_types)
        if settings.ignore_types is not None:
            ignore_types = exception_types(settings.ignore_types)
        self.counts = FailureRule(failure_types, ignore_types)
        self._reset()

    def _reset(self) -> None:
        self._outcomes: collections.deque[bool] = collections.deque(maxlen=self.settings.window)
        self._failures = 0
        self._in_a_row = 0
        self._permits = 0
        self._trial_successes = 0

    # -- state --------------------------------------------------------------------------

    @property
    def state(self) -> State:
        """``closed``, ``open`` or ``half_open`` (an open breaker past its recovery time
        reads as half-open)."""
        if self._state == "open" and self._clock() - self._opened_at >= self.settings.recovery_time:
            self._change("half_open")
        return self._state

    def _change(self, new: State) -> None:
        old, self._state = self._state, new
        if new == "open":
            self._opened_at = self._clock()
        if new == "half_open":
            self._permits = self.settings.half_open_calls
            self._trial_successes = 0
        if new == "closed":
            self._reset()
        log.warning("circuit breaker %s: %s -> %s", self.name, old, new)
        for listener in self.listeners:
            listener(self.name, old, new)

    def _before(self) -> None:
        state = self.state
        if state == "open":
            self.rejected += 1
            retry_after = self.settings.recovery_time - (self._clock() - self._opened_at)
            raise CircuitOpenError(self.name, retry_after, self.last_failure)
        if state == "half_open":
            if self._permits <= 0:
                self.rejected += 1
                raise CircuitOpenError(self.name, 0.0, self.last_failure)
            self._permits -= 1

    def _success(self) -> None:
        if self._state == "closed":
            self._in_a_row = 0
            if self.settings.consecutive_failures is None:
                self._record(False)
        elif self._state == "half_open":
            self._trial_successes += 1
            if self._trial_successes >= self.settings.half_open_calls:
                self._change("closed")

    def _failure(self, exc: BaseException) -> None:
        if not self.counts(exc):
            if self._state == "half_open":
                self._permits += 1  # the trial did not happen; give the permit back
            return
        self.last_failure = exc
        if self._state == "half_open":
            self._change("open")
            return
        if self._state != "closed":
            return
        settings = self.settings
        if settings.consecutive_failures is not None:
            self._in_a_row += 1
            if self._in_a_row >= settings.consecutive_failures:
                self._change("open")
            return
        self._record(True)
        count = len(self._outcomes)
        if count >= settings.min_calls and self._failures >= settings.failure_ratio * count:
            self._change("open")

    def _record(self, failed: bool) -> None:
        outcomes = self._outcomes
        if len(outcomes) == outcomes.maxlen and outcomes[0]:
            self._failures -= 1
        outcomes.append(failed)
        if failed:
            self._failures += 1

    # -- use ----------------------------------------------------------------------------

    def __call__(self, func: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
        """Decorate an async function."""

        @functools.wraps(func)
        async def guarded(*args: P.args, **kwargs: P.kwargs) -> T:
            if self._state != "closed":
                self._before()
            try:
                result = await func(*args, **kwargs)
            except BaseException as exc:
                self._failure(exc)
                raise
            self._success()
            return result

        mark(guarded, self)
        return guarded

    async def call(self, func: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """``await func(*args, **kwargs)`` through the breaker.

        Raises:
            CircuitOpenError: the breaker is open (``func`` was not called).
        """
        return await self(func)(*args, **kwargs)

    async def __aenter__(self) -> CircuitBreaker:
        if self._state != "closed":
            self._before()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self._success()
        else:
            self._failure(exc)

    def snapshot(self) -> dict[str, Any]:
        """State for diagnostics: ``{"name", "state", "calls", "failures", "rejected"}``
        (calls and failures in the current window; calls rejected since start)."""
        return {
            "name": self.name,
            "state": self.state,
            "calls": len(self._outcomes),
            "failures": self._failures,
            "rejected": self.rejected,
        }
