"""``cordio messaging ...``: commands that work on an app's broker.

``cordio messaging dead-letters list|show|replay|purge TARGET SOURCE [OPTIONS]``; added to
the ``cordio`` command by the messaging transport (:meth:`MessagingTransport.commands`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from cordio.cli import DYNAMIC, dispatch, sources

if TYPE_CHECKING:
    from cordio.app import App


@click.group()
def messaging() -> None:
    """Inspect an app's messaging on its broker."""


@messaging.group("dead-letters")
def dead_letters() -> None:
    """List, show, replay or purge the dead-letter queue of a SOURCE (a queue or subject the
    app consumes) on the app's broker (broker.url: RabbitMQ or NATS; the memory broker is
    in-process, so it cannot be read from here). Each command takes the app's settings
    options, e.g. --broker.url."""


def _dead_letter_command(
    name: str, help: str, params: list[click.Parameter], action: Callable[..., Any]
) -> None:
    """Register ``cordio messaging dead-letters NAME TARGET SOURCE ...``; ``action(queue,
    **options)`` runs with the open :class:`~cordio.messaging.deadletters.DeadLetterQueue`."""

    @dead_letters.command(name, context_settings=DYNAMIC, add_help_option=False, help=help)
    @click.argument("target")
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    @click.pass_context
    def command(ctx: click.Context, target: str, args: tuple[str, ...]) -> None:
        def go(app: App, sections: Any, *, source: str, **kwargs: Any) -> None:
            import asyncio

            from cordio.config.loader import load_config
            from cordio.errors import ConfigError
            from cordio.messaging.connection import PublishError
            from cordio.messaging.deadletters import DeadLetterError, open_dead_letters
            from cordio.messaging.settings import BrokerSettings

            options = {k: kwargs.pop(k) for k in [p.name for p in params] if k in kwargs}
            try:
                loaded = load_config(sections, sources(app, kwargs))
                settings = loaded.get(BrokerSettings)
            except ConfigError as exc:
                raise click.ClickException(str(exc)) from None
            except KeyError:
                raise click.ClickException(f"app {app.name!r} uses no broker") from None

            async def main() -> None:
                async with open_dead_letters(settings, source) as queue:
                    await action(queue, **options)

            try:
                asyncio.run(main())
            except (DeadLetterError, PublishError) as exc:
                raise click.ClickException(str(exc)) from None

        source = click.Argument(["source"])
        dispatch(ctx, target, args, go, [source, *params])


def _ids(ids: tuple[str, ...], every: bool) -> set[str] | None:
    if every == bool(ids):
        raise click.UsageError("give message ids, or --all (not both)")
    return None if every else set(ids)


async def _list(queue: Any, *, limit: int, fmt: str) -> None:
    import json

    found = await queue.list(limit)
    if fmt == "json":
        rows = [
            {
                "position": d.position,
                "message_id": d.message_id,
                "attempts": d.attempts,
                "reason": d.reason,
            }
            for d in found
        ]
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo(f"{len(found)} message(s) in {queue.name}")
    for dead in found:
        attempts = "-" if dead.attempts is None else str(dead.attempts)
        click.echo(f"{dead.position:>6}  {dead.message_id}  attempts {attempts}  {dead.reason}")


async def _show(queue: Any, *, ids: tuple[str, ...]) -> None:
    wanted = set(ids)
    if not wanted:
        raise click.UsageError("give the id of at least one message (see 'list')")
    found = {d.message_id: d for d in await queue.list() if d.message_id in wanted}
    missing = sorted(wanted - set(found))
    if missing:
        raise click.ClickException(f"{queue.name}: no dead-lettered message with id {missing}")
    for message_id in ids:
        dead = found[message_id]
        message = dead.message
        click.echo(f"message {message_id} (position {dead.position} in {queue.name})")
        click.echo(f"  reason: {dead.reason}")
        click.echo(f"  attempts: {dead.attempts}")
        click.echo(f"  content type: {message.content_type}")
        click.echo("  headers:")
        for key, value in sorted(message.headers.items()):
            click.echo(f"    {key}: {value}")
        try:
            body = message.body.decode("utf-8")
        except UnicodeDecodeError:
            body = repr(message.body)
        click.echo(f"  body ({len(message.body)} bytes): {body}")


async def _replay(queue: Any, *, ids: tuple[str, ...], every: bool) -> None:
    count = await queue.replay(_ids(ids, every))
    click.echo(f"replayed {count} message(s) from {queue.name} to {queue.source}")


async def _purge(queue: Any, *, ids: tuple[str, ...], every: bool) -> None:
    count = await queue.purge(_ids(ids, every))
    click.echo(f"purged {count} message(s) from {queue.name}")


def _every() -> click.Option:
    return click.Option(["--all", "every"], is_flag=True, help="Every message in the queue.")


_dead_letter_command(
    "list",
    "List the dead-lettered messages of SOURCE: position, id, attempts, reason.",
    [
        click.Option(["--limit"], type=click.IntRange(min=1), default=100, show_default=True),
        click.Option(["--format", "fmt"], type=click.Choice(["table", "json"]), default="table"),
    ],
    _list,
)
_dead_letter_command(
    "show",
    "Show dead-lettered messages of SOURCE by id: reason, attempts, headers, body.",
    [click.Argument(["ids"], nargs=-1)],
    _show,
)
_dead_letter_command(
    "replay",
    "Publish dead-lettered messages (ids, or --all) to SOURCE again, as first attempts,"
    " and remove them from the dead-letter queue.",
    [click.Argument(["ids"], nargs=-1), _every()],
    _replay,
)
_dead_letter_command(
    "purge",
    "Remove dead-lettered messages (ids, or --all) of SOURCE for good.",
    [click.Argument(["ids"], nargs=-1), _every()],
    _purge,
)
