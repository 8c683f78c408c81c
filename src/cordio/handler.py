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
from time import perf_counter
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from cordio.config.loader import Config
from cordio.context import Context, _current, attach_context
from cordio.errors import ResourceUnavailableError
from cordio.inject import Dep, DepKind
from cordio.instances import PER_CALL, Provider, ResourceSlot
from cordio.outcome import Outcome, Settle
from cordio.policy.errors import PolicyError
from cordio.policy.onerror import ErrorAction, ErrorResponse, apply, find_action
from cordio.resource import ResourceSpec
from cordio.tasks import InFlight

if TYPE_CHECKING:
    from cordio.handler_class import HandlerClass
    from cordio.observe.metrics import HandlerMetrics
    from cordio.observe.tracing import HandlerTracing


M = TypeVar("M")


@dataclass
class HandlerSpec(Generic[M]):
    """A handler as registered by a transport.

    Attributes:
        name: unique handler name (the function's name unless given).
        func: the handler function (async; a plain function runs in a worker thread).
        transport: the transport's name: ``"http"``, ``"messaging"``, ``"timers"``...
        binder: the transport's :class:`~cordio.inject.EventBinder`, or ``None``.
        meta: the transport's details, a value object of its own (an HTTP route's path
            and methods, a consumer's source...).
        localns: names of the function that registered it, for resolving annotations.
        owner: the :class:`~cordio.handler_class.HandlerClass` whose method this is, or
            ``None`` for a plain function.
        attr: the method's attribute name on ``owner``.
        answers: exception types that are the transport's own answers (HTTP:
            ``ProblemError``, Starlette's ``HTTPException``): the error pipeline leaves
            them to the transport, untouched by app-wide ``OnError`` mappings.
    """

    name: str
    func: Callable[..., Any]
    transport: str
    meta: M
    binder: Any = None
    localns: dict[str, Any] | None = None
    owner: HandlerClass | None = field(default=None, compare=False)
    attr: str = ""
    answers: tuple[type[BaseException], ...] = ()

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
    """The compiled call of one handler (or any injected function), and the error
    pipeline around it (:meth:`run`).

    Args:
        name: for errors and logs.
        func: the function to call.
        deps: its resolved parameters.
        event_specs: event-scoped resources by name, with their own resolved parameters.
        inflight: the app's tracker of running calls.
        on_error: the app-wide ``OnError`` mappings, in order (see :mod:`cordio.outcome`).
        answers: exception types the transport answers itself (see
            :attr:`HandlerSpec.answers`).
    """

    def __init__(
        self,
        name: str,
        func: Callable[..., Any],
        deps: list[Dep],
        event_specs: Mapping[str, tuple[ResourceSpec, list[Dep]]],
        inflight: InFlight,
        on_error: tuple[Mapping[type[BaseException], ErrorAction], ...] = (),
        answers: tuple[type[BaseException], ...] = (),
    ) -> None:
        self.name = name
        self.on_error = on_error
        self.answers = answers
        self.where = f"handler {name}"
        self.func = as_async(func)
        self.deps = deps
        self.event_deps = [d for d in deps if d.kind is DepKind.EVENT]
        self._event_specs = event_specs
        self._inflight = inflight
        self._static: dict[str, Any] = {}
        self._per_call: tuple[Dep, ...] = ()
        self._provider: Provider | None = None
        self._fast = False
        #: the handler's series (:mod:`cordio.observe.metrics`), when measured
        self.metrics: HandlerMetrics | None = None
        #: the handler's spans (:mod:`cordio.observe.tracing`), when traced
        self.tracing: HandlerTracing | None = None

    def prepare(self, slots: Mapping[str, ResourceSlot], config: Config) -> None:
        """Fix the static arguments once resources have started."""
        provider = Provider(config.sections, slots, self._event_specs)
        static: dict[str, Any] = {}
        per_call = []
        for dep in self.deps:
            if dep.kind is DepKind.EVENT:
                continue
            value = provider.static(dep)
            if value is PER_CALL:
                per_call.append(dep)
            else:
                static[dep.param] = value
        self._provider = provider
        self._static = static
        self._per_call = tuple(per_call)
        self._fast = not per_call

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

    async def run(self, event_kwargs: dict[str, Any], ctx: Context) -> Outcome:
        """Call the handler and decide what it came to (see :mod:`cordio.outcome`): the
        value, a :class:`~cordio.outcome.Settle` signal, or an error after the app-wide
        ``OnError`` mappings had their say. Raises only ``asyncio.CancelledError``.

        The call itself is :meth:`__call__`'s, written out here: this is every event's
        path, and one coroutine less per event is measurable."""
        task = asyncio.current_task()
        assert task is not None
        inflight = self._inflight
        inflight.tasks.add(task)
        token = _current.set(ctx)
        failure: Exception | None = None
        metrics = self.metrics
        if metrics is not None:
            metrics.in_flight.inc()
            started = perf_counter()
        tracing = self.tracing
        if tracing is not None:
            span, attached = tracing.start(ctx)
        try:
            if self._fast:
                value = await self.func(**self._static, **event_kwargs)
            else:
                value = await self._call_full(event_kwargs, ctx)
        except Exception as exc:
            attach_context(exc, ctx)
            failure = exc
        finally:
            if tracing is not None:
                settled = failure is None or isinstance(failure, Settle)
                tracing.end(span, attached, None if settled else failure, ctx)
            _current.reset(token)
            inflight.discard(task)
            if metrics is not None:
                metrics.duration.observe(perf_counter() - started)
                metrics.in_flight.dec()
                metrics.calls.inc()
                if failure is not None and not isinstance(failure, Settle):
                    error = failure.error if isinstance(failure, ErrorResponse) else failure
                    metrics.error(error)
        if failure is None:
            if isinstance(value, Settle):
                return Outcome(signal=value)
            return Outcome(value)
        if isinstance(failure, Settle):
            return Outcome(signal=failure)
        if isinstance(failure, ErrorResponse):  # the handler's own OnError chose an answer
            return Outcome(error=failure.error, response=failure, recorded=True)
        return self._decide(failure)

    def _decide(self, exc: Exception) -> Outcome:
        if self.answers and isinstance(exc, self.answers):
            return Outcome(error=exc)
        action = find_action(self.on_error, exc) if self.on_error else None
        if action is not None:
            try:
                value = apply(action, exc, self.where)
            except ErrorResponse as answer:
                return Outcome(error=exc, response=answer, recorded=True)
            except Exception:  # the rule let it go on: recorded, the call failed
                return Outcome(error=exc, recorded=True)
            return Outcome(value=value, recorded=True)
        if isinstance(exc, PolicyError | ResourceUnavailableError):
            return Outcome(error=exc, unavailable=True)
        return Outcome(error=exc)

    async def _call_full(self, event_kwargs: dict[str, Any], ctx: Context) -> Any:
        kwargs = {**self._static, **event_kwargs}
        provider = self._provider
        assert provider is not None
        async with contextlib.AsyncExitStack() as stack:
            cache: dict[str, Any] = {}
            for dep in self._per_call:
                kwargs[dep.param] = await provider.value(dep, stack, ctx, cache)
            return await self.func(**kwargs)
