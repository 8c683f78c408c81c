"""Resource definitions: what a resource is built from and how it is set up and torn down.

A resource is an injectable dependency with a lifecycle. It may be defined by

- an async generator function (setup, ``yield`` the instance, teardown),
- a generator function (the same, synchronous),
- an async function or a plain function returning the instance,
- a class: instantiated with injected arguments; entered with ``async with`` when it is an
  async context manager (``__aenter__`` / ``__aexit__``),
- any other value, used as it is.

The parameters of a factory are injected like a handler's: other resources and settings
sections (and, for event-scoped resources, the :class:`~cordio.context.Context`).
"""

from __future__ import annotations

import contextlib
import enum
import inspect
import sys
import typing
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Generator, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from cordio.errors import DependencyError


class Scope(enum.IntEnum):
    """How long one instance of a resource lives, longest first: ``APP`` (while the app
    runs) outlives ``EVENT`` (one handler call). A resource may depend only on resources
    of its own scope or a longer-lived one. ``Scope("app")`` reads the public spelling."""

    APP = 0
    EVENT = 1

    @classmethod
    def _missing_(cls, value: object) -> Scope | None:
        if isinstance(value, str):
            return cls.__members__.get(value.upper())
        return None

    def __str__(self) -> str:
        return self.name.lower()


ScopeName = Literal["app", "event"] | Scope
Kind = Literal["asyncgen", "gen", "async", "sync", "class", "asynccm", "value"]

_ITERATOR_ORIGINS = (AsyncIterator, AsyncGenerator, Iterator, Generator)


@dataclass(frozen=True)
class Reconnect:
    """How often to retry a resource's setup when it raises.

    Waits ``min(max_delay, initial_delay * 2**n)`` seconds with full jitter between attempts
    (exponential backoff, "Exponential Backoff And Jitter", AWS Architecture Blog, 2015).

    Args:
        attempts: setup attempts in all, the first included (default 5; at least 1).
        initial_delay: seconds before the second attempt (default 0.1).
        max_delay: upper bound of one wait in seconds (default 5.0).
        on: exception types that are retried (default: :class:`OSError`, which covers
            refused and reset connections, and :class:`TimeoutError`).
    """

    attempts: int = 5
    initial_delay: float = 0.1
    max_delay: float = 5.0
    on: tuple[type[BaseException], ...] = (OSError, TimeoutError)

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"Reconnect.attempts must be at least 1, got {self.attempts}")
        if self.initial_delay < 0 or self.max_delay < 0:
            raise ValueError("Reconnect delays must not be negative")


Check = Callable[[Any], Awaitable[object]]


@dataclass
class ResourceSpec:
    """A registered resource.

    Attributes:
        name: unique name; parameters with this name receive the resource.
        factory: the function, class or value the resource is built from.
        kind: how ``factory`` is set up (see the module docstring).
        provides: the type of the instance (from the return annotation, the class, or the
            value's type); parameters annotated with it (or a base class) receive it.
        scope: ``"app"`` (one instance while the app runs) or ``"event"`` (one per handler
            call, torn down after it, also when the handler raises).
        idle_timeout: seconds without use after which an app-scoped resource is torn down;
            set up again on next use. ``None`` keeps it for the app's lifetime.
        reconnect: retry schedule for a failing setup, or ``None`` for one attempt.
        check: async callable given the instance; raising or returning ``False`` marks the
            resource down in ``/health/ready``.
        check_timeout: seconds a check may take before it counts as failed.
    """

    name: str
    factory: Any
    kind: Kind
    provides: type | None
    scope: Scope = Scope.APP
    idle_timeout: float | None = None
    reconnect: Reconnect | None = None
    check: Check | None = None
    check_timeout: float = 2.0
    hints: dict[str, Any] = field(default_factory=dict)

    @property
    def signature(self) -> inspect.Signature | None:
        """The factory's signature whose parameters are injected, or ``None`` for a value."""
        if self.kind == "value":
            return None
        target = self.factory
        return inspect.signature(target)

    async def enter(self, stack: contextlib.AsyncExitStack, kwargs: dict[str, Any]) -> Any:
        """Set the resource up with injected ``kwargs``; register its teardown on ``stack``."""
        factory = self.factory
        kind = self.kind
        if kind == "asyncgen":
            return await stack.enter_async_context(
                contextlib.asynccontextmanager(factory)(**kwargs)
            )
        if kind == "gen":
            return stack.enter_context(contextlib.contextmanager(factory)(**kwargs))
        if kind == "async":
            return await factory(**kwargs)
        if kind == "sync":
            return factory(**kwargs)
        if kind == "asynccm":
            return await stack.enter_async_context(factory(**kwargs))
        if kind == "class":
            return factory(**kwargs)
        return factory


def caller_locals(depth: int = 2) -> dict[str, Any] | None:
    """Return the local names of the function ``depth`` frames up, or ``None`` at module
    level; annotations naming classes defined inside a function resolve through them."""
    frame = sys._getframe(depth)
    if frame.f_locals is frame.f_globals:
        return None
    return dict(frame.f_locals)


def resolve_hints(func: Any, owner: str, localns: dict[str, Any] | None = None) -> dict[str, Any]:
    """Return ``func``'s evaluated annotations (``from __future__ import annotations`` too).

    Args:
        localns: extra names to resolve annotations with (see :func:`caller_locals`).

    Raises:
        DependencyError: an annotation names something that cannot be resolved.
    """
    target = func.__init__ if inspect.isclass(func) else func
    try:
        return typing.get_type_hints(target, localns=localns, include_extras=True)
    except Exception as exc:
        raise DependencyError(
            f"{owner}: cannot evaluate the annotations of {getattr(func, '__qualname__', func)}:"
            f" {exc}; import the annotated types at module level, not under TYPE_CHECKING"
        ) from None


def _unwrap_provided(annotation: Any) -> type | None:
    origin = typing.get_origin(annotation)
    if origin in _ITERATOR_ORIGINS:
        args = typing.get_args(annotation)
        return _unwrap_provided(args[0]) if args else None
    if origin is not None:
        return origin if isinstance(origin, type) else None
    return annotation if isinstance(annotation, type) else None


def make_spec(
    factory: Any,
    *,
    name: str | None = None,
    provides: type | None = None,
    scope: ScopeName = "app",
    idle_timeout: float | None = None,
    reconnect: Reconnect | None = None,
    check: Check | None = None,
    check_timeout: float = 2.0,
    localns: dict[str, Any] | None = None,
) -> ResourceSpec:
    """Describe ``factory`` as a resource: detect its kind and the type it provides.

    Raises:
        ValueError: the arguments contradict each other (an idle timeout on an event-scoped
            resource, a value without a name, a non-positive timeout).
        DependencyError: the factory's annotations cannot be evaluated.
    """
    try:
        level = Scope(scope)  # type: ignore[arg-type]  # names are read by _missing_
    except ValueError:
        raise ValueError(f"scope must be 'app' or 'event', got {scope!r}") from None
    if idle_timeout is not None and (level is Scope.EVENT or idle_timeout <= 0):
        raise ValueError("idle_timeout must be a positive number of seconds on an app resource")
    hints: dict[str, Any] = {}
    kind: Kind
    if inspect.isasyncgenfunction(factory):
        kind = "asyncgen"
    elif inspect.isgeneratorfunction(factory):
        kind = "gen"
    elif inspect.iscoroutinefunction(factory):
        kind = "async"
    elif inspect.isclass(factory):
        kind = "asynccm" if hasattr(factory, "__aenter__") else "class"
    elif inspect.isfunction(factory) or inspect.ismethod(factory):
        kind = "sync"
    else:
        kind = "value"
    if kind == "value":
        if name is None:
            raise ValueError(f"a plain value resource needs a name: {factory!r}")
        found: type | None = type(factory)
    else:
        label = f"resource {name or factory.__name__!r}"
        hints = resolve_hints(factory, label, localns)
        found = factory if kind in ("class", "asynccm") else _unwrap_provided(hints.get("return"))
    return ResourceSpec(
        name=name or factory.__name__,
        factory=factory,
        kind=kind,
        provides=provides or found,
        scope=level,
        idle_timeout=idle_timeout,
        reconnect=reconnect,
        check=check,
        check_timeout=check_timeout,
        hints=hints,
    )
