"""Errors to Sentry (extra ``cordio[sentry]``): configured from the ``sentry`` section at
start, scrubbed by the run's masker.

With ``sentry.dsn`` set, the app initialises sentry-sdk when it starts, inside the running
event loop (sentry-python #2328: its asyncio integration patches the loop that runs when
``init`` is called; uvloop's too), and closes it, sending what is queued, when it stops.

**What reaches Sentry** is what an ``OnError`` rule reports (``respond(500, report=True)``,
``record(report=True)``: the commit part of the policy, :mod:`cordio.policy.commit`), and
nothing else: sentry-sdk's logging integration keeps log lines as breadcrumbs but sends no
event of its own, integrations that would hook libraries on their own are off, and an
exception the asyncio integration sees escaping a task is left to whoever handles it.

**Every event** carries the tags ``trace_id`` (cordio's, as in the log lines and problem
bodies), ``handler`` and ``transport`` of the handler call the exception came from
(:func:`cordio.context.context_of`), and is scrubbed by the run's
:class:`~cordio.observe.masking.Masker` in ``before_send``: known secret values anywhere,
values under secret keys (a stack frame's ``password`` variable, an ``Authorization``
header), URL passwords, and the values of secret options in ``sys.argv``.

sentry-sdk has one client per process: two apps running in one process share the one the
last of them started.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from pydantic import Field, SecretStr

from cordio.context import Context, context_of, current_context
from cordio.observe.masking import MASK, Masker
from cordio.settings import Settings

log = logging.getLogger("cordio.sentry")

#: Seconds the events still queued at shutdown get to be sent.
FLUSH = 5.0

#: sentry-sdk's ``transport`` option: ``None`` for its HTTP transport to the DSN; a
#: :class:`sentry_sdk.transport.Transport` subclass to send elsewhere (tests capture
#: envelopes with one).
TRANSPORT: Any = None


class SentrySettings(Settings, section="sentry"):
    """The ``sentry`` section.

    Attributes:
        dsn: the project's DSN (a secret); unset: no Sentry.
        environment: ``production``, ``staging``...; default sentry-sdk's
            (``SENTRY_ENVIRONMENT``, else ``production``).
        release: default the app's version.
        sample_rate: the share of error events sent (0 to 1).
        traces_sample_rate: the share of transactions sent to Sentry's performance
            monitoring (default 0: none; traces go to OpenTelemetry).
        send_default_pii: let sentry-sdk add personal data (client IPs, cookies, users);
            default false.
    """

    dsn: SecretStr | None = None
    environment: str | None = None
    release: str | None = None
    sample_rate: float = Field(1.0, ge=0.0, le=1.0)
    traces_sample_rate: float = Field(0.0, ge=0.0, le=1.0)
    send_default_pii: bool = False


class Scrubber:
    """sentry-sdk's ``before_send`` of a run: tags the event with the handler call's
    context and masks it."""

    def __init__(self, masker: Masker) -> None:
        self.masker = masker

    def __call__(self, event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any] | None:
        exc_info = hint.get("exc_info") if hint else None
        exc = exc_info[1] if exc_info else None
        if exc is not None and _from_task(event):
            return None  # escaped a task: reported, or not, where it is handled
        ctx: Context | None = context_of(exc) if exc is not None else current_context()
        if ctx is not None:
            tags = event.setdefault("tags", {})
            if isinstance(tags, dict):
                tags.update(trace_id=ctx.trace_id, handler=ctx.handler, transport=ctx.transport)
        extra = event.get("extra")
        if isinstance(extra, dict) and isinstance(extra.get("sys.argv"), list):
            extra["sys.argv"] = mask_argv(self.masker, extra["sys.argv"])
        masked: dict[str, Any] = self.masker.data(event)
        return masked

    def transaction(self, event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
        """``before_send_transaction``: masked, as events are."""
        masked: dict[str, Any] = self.masker.data(event)
        return masked


def _from_task(event: dict[str, Any]) -> bool:
    values = (event.get("exception") or {}).get("values") or []
    return any((v.get("mechanism") or {}).get("type") == "asyncio" for v in values)


def mask_argv(masker: Masker, argv: list[Any]) -> list[Any]:
    """A command line with the value of every secret option masked: ``--db.password X``,
    ``--db.password=X``, ``--set db.password=X`` (and the known secrets anywhere)."""
    out: list[Any] = []
    hide_next = False
    for arg in argv:
        if not isinstance(arg, str):
            out.append(arg)
            continue
        if hide_next:
            out.append(MASK)
            hide_next = False
            continue
        name, eq, _ = arg.lstrip("-").partition("=")
        if arg.startswith("-") and not eq and masker.is_secret_key(name):
            hide_next = True  # the value is the next argument
        out.append(masker.text(arg))
    return out


def start(settings: SentrySettings, *, version: str | None, masker: Masker) -> Any:
    """Initialise sentry-sdk for this run when ``settings.dsn`` is set (call inside the
    running loop); return its client, or ``None``.

    Raises:
        MissingExtraError: a DSN is set and sentry-sdk is not installed.
    """
    if settings.dsn is None:
        return None
    from cordio.policy.commit import require_sentry

    require_sentry()
    import sentry_sdk
    from sentry_sdk.integrations.logging import LoggingIntegration

    asyncio.get_running_loop()  # RuntimeError outside a loop: #2328
    scrub = Scrubber(masker)
    options: dict[str, Any] = {
        "dsn": settings.dsn.get_secret_value(),
        "release": settings.release or version,
        "sample_rate": settings.sample_rate,
        "traces_sample_rate": settings.traces_sample_rate,
        "before_send": scrub,
        "before_send_transaction": scrub.transaction,
        "auto_enabling_integrations": False,
        "integrations": [LoggingIntegration(level=logging.INFO, event_level=None)],
    }
    if settings.send_default_pii:  # unset is sentry-sdk's "no" (newer ones warn of the option)
        options["send_default_pii"] = True
    if settings.environment is not None:
        options["environment"] = settings.environment
    if TRANSPORT is not None:
        options["transport"] = TRANSPORT
    sentry_sdk.init(**options)
    _instrument_loop()
    return sentry_sdk.get_client()


def _instrument_loop() -> None:
    """sentry-sdk's asyncio integration on the running loop (a scope of its own for each
    task: the breadcrumbs of one call stay out of another's events), also on the loop of
    a second run in the process, which ``init`` alone would leave out."""
    try:
        from sentry_sdk.integrations.asyncio import enable_asyncio_integration
    except ImportError:  # an older sentry-sdk
        from sentry_sdk.integrations.asyncio import patch_asyncio

        patch_asyncio()
    else:
        enable_asyncio_integration()


async def stop(client: Any) -> None:
    """Send what ``client`` still holds (at most :data:`FLUSH` seconds) and close it, in a
    thread: sentry-sdk blocks."""
    if client is None:
        return

    import sentry_sdk

    def close() -> None:
        client.close(timeout=FLUSH)

    if sentry_sdk.get_client() is client:  # no other app started its own since
        sentry_sdk.get_global_scope().set_client(None)

    try:
        await asyncio.wait_for(asyncio.to_thread(close), FLUSH + 1)
    except Exception:
        log.warning("events still queued at shutdown could not be sent", exc_info=True)
