"""Custom layers: a named block of calls with its own error policy.

Every call runs in a layer: the handler layer (a handler and the decorators on it), the
resource layer (a resource's methods and the policies on them) and named custom layers::

    @layer("pricing", on_error={PricingUnavailable: fallback(None)})
    async def quote(...): ...

    async with layer("checkout", on_error={CardDeclined: respond(402)}):
        ...

An exception that escapes a layer meets that layer's ``on_error`` mapping; one the mapping
does not name goes on to the enclosing layer (finally the handler's and the app's). The
current layer's name is in every log line written inside it (``layer`` attribute).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar, Token
from types import TracebackType
from typing import ParamSpec, TypeVar

from cordio.policy.marks import mark
from cordio.policy.onerror import ErrorAction, OnError
from cordio.policy.scopes import CallStack

P = ParamSpec("P")
T = TypeVar("T")

_current: ContextVar[tuple[str, ...]] = ContextVar("cordio_layer", default=())


def current_layers() -> tuple[str, ...]:
    """The names of the custom layers the running code is in, outermost first."""
    return _current.get()


class layer:
    """A named custom layer; a decorator and an ``async with`` block.

    One ``layer`` may be entered by any number of concurrent tasks; each sees only its own
    layers.

    Args:
        name: the layer's name (in logs).
        on_error: exception class → action for exceptions escaping the layer (see
            :mod:`cordio.policy.onerror`).
    """

    def __init__(
        self, name: str, *, on_error: Mapping[type[BaseException], ErrorAction] | None = None
    ) -> None:
        self.name = name
        self.on_error = OnError(on_error or {})
        self._tokens: CallStack[Token[tuple[str, ...]]] = CallStack(f"layer_{name}")

    def __call__(self, func: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
        handled = self.on_error(func)

        @functools.wraps(func)
        async def in_layer(*args: P.args, **kwargs: P.kwargs) -> T:
            token = _current.set((*_current.get(), self.name))
            try:
                return await handled(*args, **kwargs)
            finally:
                _current.reset(token)

        mark(in_layer, self)
        return in_layer

    async def __aenter__(self) -> layer:
        self._tokens.push(_current.set((*_current.get(), self.name)))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        _current.reset(self._tokens.pop())
        return await self.on_error.__aexit__(exc_type, exc, tb)
