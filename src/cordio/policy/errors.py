"""Errors raised by policies.

::

    CordioError
    └── PolicyError
        ├── CircuitOpenError      the breaker is open: the call failed fast, not attempted
        ├── BulkheadFullError     too many calls running and waiting
        └── PolicyTimeoutError(TimeoutError)  the call took longer than its Timeout
"""

from __future__ import annotations

from cordio.errors import CordioError


class PolicyError(CordioError):
    """Base class of the errors policies raise themselves."""


class CircuitOpenError(PolicyError):
    """The circuit breaker is open; the call was not attempted.

    Attributes:
        name: the breaker's name.
        retry_after: seconds until the breaker lets a trial call through.
        last_failure: the exception that last counted as a failure, if any.
    """

    def __init__(self, name: str, retry_after: float, last_failure: BaseException | None):
        self.name = name
        self.retry_after = retry_after
        self.last_failure = last_failure
        cause = f"; last failure: {last_failure!r}" if last_failure is not None else ""
        super().__init__(f"circuit {name!r} is open for {retry_after:.2f} s more{cause}")


class BulkheadFullError(PolicyError):
    """The bulkhead has no room: ``max_concurrent`` calls run and ``max_queued`` wait."""


class PolicyTimeoutError(PolicyError, TimeoutError):
    """The call took longer than its :class:`~cordio.policy.Timeout` allowed."""
