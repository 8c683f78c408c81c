"""Per-call state of a policy used as ``async with``, kept out of the shared policy object.

A policy is declared once and entered by many tasks at once; what one ``async with`` needs
between ``__aenter__`` and ``__aexit__`` (a timeout scope, a context-variable token, the
semaphore it acquired) belongs to that call. :class:`CallStack` keeps it in a context
variable of the policy's own, so every task sees only its own entries, and nested blocks of
one task unwind in order.
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class CallStack(Generic[T]):
    """A last-in-first-out stack of per-call values, one per task (context).

    Args:
        name: for the context variable (diagnostics only).
    """

    __slots__ = ("_var",)

    def __init__(self, name: str) -> None:
        self._var: ContextVar[tuple[tuple[T, Token[Any]], ...]] = ContextVar(
            f"cordio_call_{name}", default=()
        )

    def push(self, value: T) -> None:
        """Remember ``value`` for this task's innermost block."""
        stack = self._var.get()
        token = self._var.set(())  # replaced below; the token restores the state before
        self._var.set((*stack, (value, token)))

    def pop(self) -> T:
        """Take back this task's innermost value, restoring the state before its
        :meth:`push` (nothing is left in the context once the outermost block ends).

        Raises:
            RuntimeError: this task has no block open (``__aexit__`` without
                ``__aenter__``, or called from another task).
        """
        stack = self._var.get()
        if not stack:
            raise RuntimeError("leaving a policy block that this task did not enter")
        value, token = stack[-1]
        self._var.reset(token)
        return value
