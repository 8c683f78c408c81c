"""The timers transport: ``@app.every(seconds=...)`` and ``@app.cron("...")`` handlers.

The smallest transport, and the one to read first: it uses nothing but the transport
contract (:mod:`cordio.transport`). It registers handlers with a value object of options
(:class:`TimerMeta`), brings the ``timers`` settings section, checks nothing the decorator
has not checked already, and runs one :class:`~cordio.timers.service.TimerService` per
timer, which reads the app's clock.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar

from cordio.handler import HandlerSpec
from cordio.resource import caller_locals
from cordio.settings import Settings
from cordio.timers.schedule import Cron, Every
from cordio.transport import RunContext, TransportBase

if TYPE_CHECKING:
    from cordio.app import App

F = TypeVar("F", bound=Callable[..., Any])

Overlap = Literal["skip", "queue", "allow"]
Missed = Literal["skip", "catch_up"]


@dataclass(frozen=True)
class TimerMeta:
    """A timer's options (its :attr:`~cordio.handler.HandlerSpec.meta`); see
    :meth:`TimerTransport.every` for what each means.

    Exactly one of ``seconds`` and ``cron`` is set.
    """

    seconds: float | None = None
    cron: str | None = None
    tz: str = "UTC"
    start_immediately: bool = False
    jitter: float = 0.0
    overlap: Overlap = "skip"
    timeout: float | None = None
    missed: Missed = "skip"
    misfire_grace: float = 1.0
    enabled: bool = True


class TimerTransport(TransportBase):
    """``app.timers`` (``app.every``, ``app.cron``): run handlers on a schedule."""

    name: ClassVar[str] = "timers"

    def __init__(self, app: App) -> None:
        super().__init__(app)
        self.timers: list[HandlerSpec[TimerMeta]] = []

    def every(
        self,
        seconds: float,
        *,
        name: str | None = None,
        start_immediately: bool = False,
        jitter: float = 0.0,
        overlap: Overlap = "skip",
        timeout: float | None = None,
        missed: Missed = "skip",
        misfire_grace: float = 1.0,
        enabled: bool = True,
    ) -> Callable[[F], F]:
        """Run the handler every ``seconds`` (on the monotonic clock, so wall clock
        changes do not move it)::

            @app.every(seconds=60)
            async def expire_unpaid(db: OrderStore) -> None: ...

        Args:
            seconds: the interval (> 0); ``timers.<name>.seconds`` overrides it.
            name: handler name, and the key under ``timers`` (default: the function's).
            start_immediately: first run as soon as the app is ready (default: after one
                interval).
            jitter: up to this many seconds (>= 0) added at random to each run's time, so
                replicas do not all fire at once (default 0).
            overlap: when a run is due while the previous one still runs: ``"skip"`` it
                (default; counted in :attr:`TimerService.skipped` and logged), ``"queue"``
                it (it starts when the running one ends; at most one waits, more are
                skipped), or ``"allow"`` it to run beside.
            timeout: seconds a run may take before it is cancelled and logged (default:
                no limit).
            missed: a run whose time passed more than ``misfire_grace`` seconds ago (the
                process was paused, the loop blocked, the wall clock jumped) is
                ``"skip"`` ped (default; counted in :attr:`TimerService.missed`) or run
                once for all that were missed (``"catch_up"``).
            misfire_grace: seconds (>= 0) a run may start late and still count as on time
                (default 1).
            enabled: false: never fire (``timers.<name>.enabled`` overrides it).

        Raises:
            ValueError: an invalid option, naming the handler: a non-positive interval,
                a negative jitter, timeout or grace, an unknown overlap or missed policy,
                or a name that is taken.
        """
        return self._register(
            name,
            caller_locals(3 if _via_shortcut() else 2),
            seconds=seconds,
            start_immediately=start_immediately,
            jitter=jitter,
            overlap=overlap,
            timeout=timeout,
            missed=missed,
            misfire_grace=misfire_grace,
            enabled=enabled,
        )

    def cron(
        self,
        expression: str,
        *,
        tz: str = "UTC",
        name: str | None = None,
        jitter: float = 0.0,
        overlap: Overlap = "skip",
        timeout: float | None = None,
        missed: Missed = "skip",
        misfire_grace: float = 1.0,
        enabled: bool = True,
    ) -> Callable[[F], F]:
        """Run the handler at the times a cron expression names, in a time zone (see
        :mod:`cordio.timers.schedule` for daylight saving time)::

            @app.cron("*/5 * * * *", tz="Europe/Berlin")
            async def send_digest(mailer: Mailer) -> None: ...

        Args:
            expression: crontab(5) fields; ``timers.<name>.cron`` overrides it.
            tz: IANA zone name (default ``"UTC"``); ``timers.<name>.tz`` overrides it.
            name, jitter, overlap, timeout, missed, misfire_grace, enabled: as for
                :meth:`every`.

        Raises:
            ValueError: an invalid expression, zone or option, naming the handler.
        """
        return self._register(
            name,
            caller_locals(3 if _via_shortcut() else 2),
            cron=expression,
            tz=tz,
            jitter=jitter,
            overlap=overlap,
            timeout=timeout,
            missed=missed,
            misfire_grace=misfire_grace,
            enabled=enabled,
        )

    def _register(
        self, name: str | None, localns: dict[str, Any] | None, **options: Any
    ) -> Callable[[F], F]:
        def register(func: F) -> F:
            handler = str(name or getattr(func, "__name__", ""))
            try:
                meta = _checked(TimerMeta(**options))
            except ValueError as exc:
                raise ValueError(f"timer {handler!r}: {exc}") from None
            if any(h.name == handler for h in self.app.all_handlers()):
                raise ValueError(f"handler name {handler!r} is already used")
            self.timers.append(
                HandlerSpec(
                    name=handler, func=func, transport=self.name, meta=meta, localns=localns
                )
            )
            return func

        return register

    # -- the transport contract ---------------------------------------------------------

    def handlers(self) -> list[HandlerSpec[Any]]:
        return list(self.timers)

    def sections(self) -> list[type[Settings]]:
        if not self.timers:
            return []
        from cordio.timers.settings import timers_settings

        return [timers_settings({spec.name: spec.meta for spec in self.timers})]

    def services(self, run: RunContext) -> list[Any]:
        if not self.timers:
            return []
        from cordio.timers.service import TimerService
        from cordio.timers.settings import TimersSettings

        section = run.section(TimersSettings)
        services = []
        for spec in self.timers:
            configured = getattr(section, spec.name)
            services.append(
                TimerService(
                    spec.name,
                    _configured(spec.meta, configured),
                    run.invoker(spec.name),
                    run.clock,
                )
            )
        return services


def _configured(meta: TimerMeta, configured: Any) -> TimerMeta:
    """``meta`` with what configuration set (``timers.<name>``)."""
    values = configured.model_dump()
    return TimerMeta(**{**meta.__dict__, **values})


def _checked(meta: TimerMeta) -> TimerMeta:
    if meta.cron is not None:
        Cron(meta.cron, meta.tz)
    else:
        assert meta.seconds is not None
        Every(meta.seconds)
    for option in ("jitter", "misfire_grace"):
        value = getattr(meta, option)
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"{option} must be a number of seconds >= 0, got {value!r}")
    if meta.timeout is not None and not (math.isfinite(meta.timeout) and meta.timeout > 0):
        raise ValueError(f"timeout must be a positive number of seconds, got {meta.timeout!r}")
    if meta.overlap not in ("skip", "queue", "allow"):
        raise ValueError(f"overlap must be 'skip', 'queue' or 'allow', got {meta.overlap!r}")
    if meta.missed not in ("skip", "catch_up"):
        raise ValueError(f"missed must be 'skip' or 'catch_up', got {meta.missed!r}")
    return meta


def _via_shortcut() -> bool:
    """Whether ``every``/``cron`` was called through ``app.every``/``app.cron``."""
    caller = inspect.currentframe()
    frame = caller.f_back.f_back if caller and caller.f_back else None
    return frame is not None and frame.f_code.co_filename.endswith("cordio/app.py")
