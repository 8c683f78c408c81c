"""Handlers: an event source's function with its parameters resolved once, called per event.

An :class:`Invoker` is built at start-up from the handler's resolved dependencies. Per call
it merges the prepared static arguments (settings sections and app-scoped resources) with
the event's arguments, enters event-scoped resources, tracks the call as in flight and sets
the :class:`~cordio.context.Context` for logging. There is no reflection per call.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import inspect
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

from cordio.config.loader import Config
from cordio.context import Context, _current, attach_context
from cordio.inject import Dep
from cordio.instances import ResourceSlot
from cordio.resource import ResourceSpec
from cordio.tasks import InFlight


@dataclass
class HandlerSpec:
    """A handler as registered by a transport.

    Attributes:
        name: unique handler name (the function's name unless given).
        func: the handler function (async; a plain function runs in a worker thread).
        transport: ``"http"``, ``"timer"``, ...
        binder: the transport's :class:`~cordio.inject.EventBinder`, or ``None``.
        meta: transport details (HTTP path and methods, ...).
        localns: names of the function that registered it, for resolving annotations.
    """

    name: str
    func: Callable[..., Any]
    transport: str
    binder: Any = None
    meta: dict[str, Any] = field(default_factory=dict)
    localns: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        # a policy decorator written above the registration decorator wraps ``func`` after
        # this; it finds the spec here and puts its wrapper in (see cordio.policy.marks)
        specs = getattr(self.func, REGISTERED, None)
        if not isinstance(specs, list):
            specs = []
            with contextlib.suppress(AttributeError, TypeError):
                setattr(self.func, REGISTERED, specs)
        specs.append(self)


#: The attribute of a registered function listing its :class:`HandlerSpec` s.
REGISTERED = "__cordio_handlers__"


#: The thread pool plain (sync) handlers run in; ``None``: the loop's default executor.
#: A transport sets it per call (e.g. a consumer's own bounded pool, ``threads=N``).
handler_executor: contextvars.ContextVar[Executor | None] = contextvars.ContextVar(
    "cordio_handler_executor", default=None
)


def as_async(func: Callable[..., Any]) -> Callable[..., Any]:
    """Return ``func`` if it is async, else an async wrapper running it in a worker thread
    (of :data:`handler_executor`), with the caller's context variables."""
    if inspect.iscoroutinefunction(func):
        return func

    @functools.wraps(func)
    async def run_in_thread(**kwargs: Any) -> Any:
        context = contextvars.copy_context()
        call = functools.partial(context.run, func, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(handler_executor.get(), call)

    return run_in_thread


class Invoker:
    """The compiled call of one handler (or any injected function).

    Args:
        name: for errors and logs.
        func: the function to call.
        deps: its resolved parameters.
        event_specs: event-scoped resources by name, with their own resolved parameters.
        inflight: the app's tracker of running calls.
    """

    def __init__(
        self,
        name: str,
        func: Callable[..., Any],
        deps: list[Dep],
        event_specs: Mapping[str, tuple[ResourceSpec, list[Dep]]],
        inflight: InFlight,
    ) -> None:
        self.name = name
        self.func = as_async(func)
        self.deps = deps
        self.event_deps = [d for d in deps if d.kind == "event"]
        self._event_specs = event_specs
        self._inflight = inflight
        self._static: dict[str, Any] = {}
        self._context_params = tuple(d.param for d in deps if d.kind == "context")
        self._dynamic: tuple[tuple[str, ResourceSlot], ...] = ()
        self._scoped: tuple[tuple[str, str], ...] = ()
        self._slots: Mapping[str, ResourceSlot] = {}
        self._config: Config | None = None
        self._fast = False

    def prepare(self, slots: Mapping[str, ResourceSlot], config: Config) -> None:
        """Fix the static arguments once resources have started."""
        self._slots = slots
        self._config = config
        static: dict[str, Any] = {}
        dynamic = []
        scoped = []
        for dep in self.deps:
            if dep.kind == "settings":
                static[dep.param] = config.sections[dep.target]
            elif dep.kind == "resource":
                if dep.target in self._event_specs:
                    scoped.append((dep.param, dep.target))
                elif slots[dep.target].dynamic:
                    dynamic.append((dep.param, slots[dep.target]))
                else:
                    static[dep.param] = slots[dep.target].value
        self._static = static
        self._dynamic = tuple(dynamic)
        self._scoped = tuple(scoped)
        self._fast = not dynamic and not scoped and not self._context_params

    async def __call__(self, event_kwargs: dict[str, Any], ctx: Context) -> Any:
        """Call the handler with the event's arguments inside ``ctx``; return its result."""
        task = asyncio.current_task()
        assert task is not None
        inflight = self._inflight
        inflight.tasks.add(task)
        token = _current.set(ctx)
        try:
            if self._fast:
                return await self.func(**self._static, **event_kwargs)
            return await self._call_full(event_kwargs, ctx)
        except Exception as exc:  # handled after the call: logged with this context
            attach_context(exc, ctx)
            raise
        finally:
            _current.reset(token)
            inflight.discard(task)

    async def _call_full(self, event_kwargs: dict[str, Any], ctx: Context) -> Any:
        kwargs = {**self._static, **event_kwargs}
        for param in self._context_params:
            kwargs[param] = ctx
        async with contextlib.AsyncExitStack() as stack:
            for param, slot in self._dynamic:
                kwargs[param] = await slot.acquire()
                stack.callback(slot.release)
            if self._scoped:
                cache: dict[str, Any] = {}
                for param, name in self._scoped:
                    kwargs[param] = await self._enter_scoped(name, stack, ctx, cache)
            return await self.func(**kwargs)

    async def _enter_scoped(
        self, name: str, stack: contextlib.AsyncExitStack, ctx: Context, cache: dict[str, Any]
    ) -> Any:
        if name in cache:
            return cache[name]
        spec, deps = self._event_specs[name]
        assert self._config is not None
        kwargs: dict[str, Any] = {}
        for dep in deps:
            if dep.kind == "context":
                kwargs[dep.param] = ctx
            elif dep.kind == "settings":
                kwargs[dep.param] = self._config.sections[dep.target]
            elif dep.target in self._event_specs:
                kwargs[dep.param] = await self._enter_scoped(dep.target, stack, ctx, cache)
            else:
                slot = self._slots[dep.target]
                if slot.dynamic:
                    kwargs[dep.param] = await slot.acquire()
                    stack.callback(slot.release)
                else:
                    kwargs[dep.param] = slot.value
        value = await spec.enter(stack, kwargs)
        cache[name] = value
        return value
