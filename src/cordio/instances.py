"""Running resources: setup with reconnect, teardown, idle timeout, health checks.

One :class:`ResourceSlot` holds one app-scoped resource while the app runs. Slots start in
waves (see :func:`cordio.inject.start_order`) and are torn down in reverse. A slot with an
``idle_timeout`` — or one that depends on such a slot — is *dynamic*: every use acquires
it (setting it up again if it was torn down) and releases it afterwards; a watcher tears it
down, dependents first, once nobody has used it for ``idle_timeout`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import Any

from cordio.config.loader import Config
from cordio.context import Context
from cordio.errors import ResourceUnavailableError
from cordio.inject import Dep, DepKind
from cordio.resource import ResourceSpec

log = logging.getLogger("cordio.resource")


class ResourceSlot:
    """The running state of one app-scoped resource.

    Attributes:
        spec: the resource definition.
        deps: how the factory's parameters are filled.
        value: the instance while :attr:`live`.
        dynamic: whether uses must :meth:`acquire` / :meth:`release` it.
    """

    def __init__(self, spec: ResourceSpec, deps: list[Dep]) -> None:
        self.spec = spec
        self.deps = deps
        self.value: Any = None
        self.live = False
        self.dynamic = spec.idle_timeout is not None
        self.users = 0
        self.last_used = 0.0
        self.setups = 0
        self.dep_slots: list[ResourceSlot] = []
        self.dependents: list[ResourceSlot] = []
        self._stack: contextlib.AsyncExitStack | None = None
        self._lock = asyncio.Lock()
        self._config: Config | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    def bind(self, slots: dict[str, ResourceSlot], config: Config) -> None:
        """Link the slots this one depends on; called once before start."""
        self._config = config
        self.dep_slots = [slots[d.target] for d in self.deps if d.kind is DepKind.RESOURCE]
        for dep in self.dep_slots:
            dep.dependents.append(self)

    async def setup(self) -> None:
        """Set the resource up, retrying as its ``reconnect`` says (with tenacity).

        Raises:
            Exception: whatever the factory raised on the last attempt, or at once for an
                exception type ``reconnect.on`` does not list.
        """
        async with self._lock:
            if self.live:
                return
            reconnect = self.spec.reconnect
            if reconnect is None or reconnect.attempts == 1:
                await self._setup_once()
                return
            import tenacity

            def report(state: tenacity.RetryCallState) -> None:
                outcome = state.outcome
                log.warning(
                    "resource %s: setup attempt %d/%d failed: %r; retrying in %.2f s",
                    self.name,
                    state.attempt_number,
                    reconnect.attempts,
                    outcome.exception() if outcome is not None else None,
                    state.upcoming_sleep,
                )

            retrying = tenacity.AsyncRetrying(
                stop=tenacity.stop_after_attempt(reconnect.attempts),
                wait=tenacity.wait_random_exponential(
                    multiplier=reconnect.initial_delay, max=reconnect.max_delay
                ),
                retry=tenacity.retry_if_exception_type(reconnect.on),
                before_sleep=report,
                reraise=True,
            )
            await retrying(self._setup_once)

    async def _setup_once(self) -> None:
        assert self._config is not None
        provider = Provider(self._config.sections, {s.name: s for s in self.dep_slots}, {})
        stack = contextlib.AsyncExitStack()
        try:
            kwargs = {d.param: await provider.value(d, stack, hold=False) for d in self.deps}
            value = await self.spec.enter(stack, kwargs)
        except BaseException:
            await stack.aclose()
            raise
        self._stack = stack
        self.value = value
        self.live = True
        self.setups += 1
        self.last_used = asyncio.get_running_loop().time()

    async def teardown(self) -> None:
        """Tear the resource down (its dependents first, if they are live).

        Raises:
            Exception: whatever the teardown raised; the slot is marked down regardless.
        """
        for dependent in reversed(self.dependents):
            if dependent.live:
                await dependent.teardown()
        async with self._lock:
            if not self.live:
                return
            stack, self._stack = self._stack, None
            self.live = False
            self.value = None
            if stack is not None:
                await stack.aclose()

    async def acquire(self) -> Any:
        """Mark the resource in use and return it, setting it up again if it idled out."""
        for dep in self.dep_slots:
            if dep.dynamic:
                await dep.acquire()
        if not self.live:
            await self.setup()
        self.users += 1
        return self.value

    def release(self) -> None:
        """End a use begun by :meth:`acquire`."""
        self.users -= 1
        self.last_used = asyncio.get_running_loop().time()
        for dep in self.dep_slots:
            if dep.dynamic:
                dep.release()

    async def watch_idle(self, clock: Callable[[], float] | None = None) -> None:
        """Tear the resource down whenever it has been unused for ``idle_timeout`` seconds.

        Runs until cancelled (the app runs it as a background task).
        """
        timeout = self.spec.idle_timeout
        assert timeout is not None
        now = clock or asyncio.get_running_loop().time
        while True:
            remaining = self.last_used + timeout - now()
            if remaining > 0:
                await asyncio.sleep(remaining)
                continue
            if self.live and self.users == 0:
                log.info("resource %s: idle for %.1f s, tearing down", self.name, timeout)
                try:
                    await self.teardown()
                except Exception:
                    log.exception("resource %s: teardown after idle timeout failed", self.name)
            await asyncio.sleep(timeout)

    async def check(self) -> tuple[bool, str]:
        """Run the health check; return ``(up, detail)``. Never raises."""
        if not self.live:
            return (self.dynamic, "idle" if self.dynamic else "not started")
        check = self.spec.check
        if check is None:
            return True, "up"
        try:
            async with asyncio.timeout(self.spec.check_timeout):
                result = await check(self.value)
        except TimeoutError:
            return False, f"check timed out after {self.spec.check_timeout} s"
        except Exception as exc:
            return False, f"check failed: {type(exc).__name__}"
        return (result is not False), ("up" if result is not False else "check returned False")


#: :meth:`Provider.static`'s answer for a parameter that needs work per call.
PER_CALL = object()


class Provider:
    """Turns a resolved parameter (:class:`~cordio.inject.Dep`) into its value; the one
    place that knows where each kind of value comes from.

    Args:
        sections: section name → loaded settings section.
        slots: resource name → running app-scoped resource.
        event_specs: event-scoped resources by name, with their own parameters.
    """

    def __init__(
        self,
        sections: Mapping[str, Any],
        slots: Mapping[str, ResourceSlot],
        event_specs: Mapping[str, tuple[ResourceSpec, list[Dep]]],
    ) -> None:
        self.sections = sections
        self.slots = slots
        self.event_specs = event_specs

    def static(self, dep: Dep) -> Any:
        """The value of ``dep`` if it is fixed for the whole run (a settings section, a
        started app-scoped resource that never idles out); else :data:`PER_CALL`."""
        if dep.kind is DepKind.SETTINGS:
            return self.sections[dep.target]
        if dep.kind is DepKind.RESOURCE and dep.target not in self.event_specs:
            slot = self.slots[dep.target]
            if not slot.dynamic:
                return slot.value
        return PER_CALL

    async def value(
        self,
        dep: Dep,
        stack: contextlib.AsyncExitStack,
        ctx: Context | None = None,
        cache: dict[str, Any] | None = None,
        *,
        hold: bool = True,
    ) -> Any:
        """The value of ``dep`` for one use, whose clean-up goes on ``stack``: an
        event-scoped resource is entered (once per ``cache``), a resource that may idle
        out is acquired and released on exit (``hold``; else only set up when down).

        Raises:
            ResourceUnavailableError: ``dep`` asks for the event ``Context`` outside of an
                event.
            Exception: whatever setting a resource up raised.
        """
        if dep.kind is DepKind.SETTINGS:
            return self.sections[dep.target]
        if dep.kind is DepKind.CONTEXT:
            if ctx is None:
                raise ResourceUnavailableError(
                    f"parameter {dep.param!r} needs an event; only event-scoped resources"
                    " can take the Context"
                )
            return ctx
        if dep.kind is not DepKind.RESOURCE:
            raise ResourceUnavailableError(f"parameter {dep.param!r} is event data")
        if dep.target in self.event_specs:
            return await self._enter(dep.target, stack, ctx, {} if cache is None else cache)
        slot = self.slots[dep.target]
        if hold and slot.dynamic:
            value = await slot.acquire()
            stack.callback(slot.release)
            return value
        if not slot.live:
            await slot.setup()
        return slot.value

    async def _enter(
        self,
        name: str,
        stack: contextlib.AsyncExitStack,
        ctx: Context | None,
        cache: dict[str, Any],
    ) -> Any:
        if name not in cache:
            spec, deps = self.event_specs[name]
            kwargs = {d.param: await self.value(d, stack, ctx, cache) for d in deps}
            cache[name] = await spec.enter(stack, kwargs)
        return cache[name]
