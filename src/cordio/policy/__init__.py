"""Policies for calls that fail: Retry, CircuitBreaker, Timeout, Bulkhead.

Compose them as decorators, outermost first, in the documented order — the breaker outside
the retry outside the timeout — so a breaker counts one failure per retried call and each
attempt has its own time limit::

    @CircuitBreaker("pricing", consecutive_failures=5)
    @Retry(attempts=3, on=(OSError, PolicyTimeoutError))
    @Timeout(2.0)
    async def fetch_price(item: str) -> Price: ...
"""

from cordio.policy.breaker import BreakerSettings, CircuitBreaker
from cordio.policy.bulkhead import Bulkhead, BulkheadSettings
from cordio.policy.errors import (
    BulkheadFullError,
    CircuitOpenError,
    PolicyError,
    PolicyTimeoutError,
)
from cordio.policy.layer import current_layers, layer
from cordio.policy.named import PoliciesSettings, Policy
from cordio.policy.onerror import (
    ErrorAction,
    ErrorResponse,
    OnError,
    fallback,
    ignore,
    record,
    respond,
)
from cordio.policy.retry import Attempt, Retry, RetrySettings
from cordio.policy.timeout import Timeout, TimeoutSettings

__all__ = [
    "Attempt",
    "BreakerSettings",
    "Bulkhead",
    "BulkheadFullError",
    "BulkheadSettings",
    "CircuitBreaker",
    "CircuitOpenError",
    "ErrorAction",
    "ErrorResponse",
    "OnError",
    "PoliciesSettings",
    "Policy",
    "PolicyError",
    "PolicyTimeoutError",
    "Retry",
    "RetrySettings",
    "Timeout",
    "TimeoutSettings",
    "current_layers",
    "fallback",
    "ignore",
    "layer",
    "record",
    "respond",
]
