"""Named policies: a retry, breaker, timeout and bulkhead applied together and tuned from
configuration under ``policies.<name>``.

::

    pricing = app.policy(
        "pricing",
        breaker=CircuitBreaker(consecutive_failures=5, recovery_time=30),
        retry=Retry(attempts=3),
        timeout=Timeout(2.0),
    )

    @pricing
    async def fetch_price(item: str) -> Price: ...

The parts wrap a call in this order, outermost first: breaker, retry, timeout, bulkhead —
the breaker counts one outcome per retried call, each attempt has its own time limit, and
the bulkhead bounds the calls actually running. An operator overrides any parameter,
e.g. ``ORDERS__POLICIES__PRICING__RETRY__ATTEMPTS=5`` or ``--set
policies.pricing.breaker.recovery_time=60``; invalid values stop start-up naming the key.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ParamSpec, TypeVar

from pydantic import ConfigDict

from cordio.policy.breaker import CircuitBreaker
from cordio.policy.bulkhead import Bulkhead
from cordio.policy.retry import Retry
from cordio.policy.timeout import Timeout
from cordio.settings import Settings

P = ParamSpec("P")
T = TypeVar("T")

ORDER = ("bulkhead", "timeout", "retry", "breaker")  # innermost first


class PoliciesSettings(Settings, section="policies"):
    """The ``policies`` section: ``policies.<name>.<part>.<parameter>`` for every named
    policy, e.g. ``policies.pricing.retry.attempts = 5``. Parts: ``retry``, ``breaker``,
    ``timeout``, ``bulkhead``."""

    model_config = ConfigDict(frozen=True, extra="allow")


class Policy:
    """A named combination of policies; a decorator for async functions.

    Args:
        name: the key under ``policies`` in configuration.
        retry, breaker, timeout, bulkhead: the parts (each optional). Their own ``name``
            is set to this one's.
    """

    def __init__(
        self,
        name: str,
        *,
        retry: Retry | None = None,
        breaker: CircuitBreaker | None = None,
        timeout: Timeout | None = None,
        bulkhead: Bulkhead | None = None,
    ) -> None:
        self.name = name
        given = {"retry": retry, "breaker": breaker, "timeout": timeout, "bulkhead": bulkhead}
        self.parts: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
        for part in self.parts.values():
            part.name = name
        self._defaults = {kind: part.settings for kind, part in self.parts.items()}

    @property
    def retry(self) -> Retry | None:
        return self.parts.get("retry")

    @property
    def breaker(self) -> CircuitBreaker | None:
        return self.parts.get("breaker")

    def __call__(self, func: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
        wrapped = func
        for kind in ORDER:
            part = self.parts.get(kind)
            if part is not None:
                wrapped = part(wrapped)
        return wrapped

    def configure(self, overrides: Mapping[str, Any]) -> list[tuple[tuple[str, ...], str]]:
        """Apply ``{part: {parameter: value}}`` over the defaults given in code.

        Returns:
            ``(key path under policies.<name>, message)`` for every problem; nothing is
            applied unless there are none.
        """
        problems: list[tuple[tuple[str, ...], str]] = []
        chosen = {}
        for kind, values in overrides.items():
            part = self.parts.get(kind)
            if part is None:
                known = sorted(self.parts) or ["none"]
                problems.append(((kind,), f"policy {self.name!r} has no {kind}; it has {known}"))
                continue
            if not isinstance(values, Mapping):
                problems.append(((kind,), "expected a table of parameters"))
                continue
            default = self._defaults[kind]
            try:
                chosen[kind] = type(default).model_validate({**default.model_dump(), **values})
            except Exception as exc:
                errors = getattr(exc, "errors", None)
                if errors is None:
                    problems.append(((kind,), str(exc)))
                    continue
                for err in errors(include_input=False, include_url=False):
                    loc = tuple(str(p) for p in err["loc"])
                    problems.append(((kind, *loc), err["msg"]))
        if not problems:
            for kind, part in self.parts.items():
                part.configure(chosen.get(kind, self._defaults[kind]))
        return problems
