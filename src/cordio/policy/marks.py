"""Which policies wrap a function: each policy decorator marks the wrapper it returns.

Transports read the marks to describe a handler without calling it (the HTTP transport
documents 503 for an operation behind a breaker, bulkhead or timeout, and the statuses of
its ``OnError`` mappings).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

ATTRIBUTE = "__cordio_policy__"


def mark(wrapper: Callable[..., Any], policy: object) -> None:
    """Record on ``wrapper`` that ``policy`` made it.

    When the wrapped function is a registered handler already (the policy decorator is
    written above ``@app.http.get(...)``, ``@app.consume(...)``...), the handler calls
    ``wrapper`` from now on: policies apply in either order.
    """
    setattr(wrapper, ATTRIBUTE, policy)
    wrapped = getattr(wrapper, "__wrapped__", None)
    for spec in getattr(wrapped, "__cordio_handlers__", None) or ():
        # the handler calls ``wrapped``, or a wrapper of it this policy calls (a layer's
        # OnError, made from the same function just before)
        if wrapped in (spec.func, getattr(spec.func, "__wrapped__", None)):
            spec.func = wrapper


def policies_of(func: Callable[..., Any]) -> list[object]:
    """The policies wrapping ``func``, outermost first, found along its ``__wrapped__``
    chain (``functools.wraps``). Returns an empty list for an undecorated function."""
    found: list[object] = []
    seen: set[int] = set()
    current: Any = func
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        policy = getattr(current, ATTRIBUTE, None)
        if policy is not None and (not found or found[-1] is not policy):
            found.append(policy)
        current = getattr(current, "__wrapped__", None)
    return found
