"""The ``cordio`` command.

``cordio run TARGET [OPTIONS]``, ``cordio config show|template|check TARGET [OPTIONS]``,
``cordio docs asyncapi TARGET`` and ``cordio messaging dead-letters list|show|replay|purge
TARGET SOURCE [OPTIONS]``.
TARGET is ``pkg.module:app`` or ``path/to/file.py:app``. The options after TARGET depend on
the app: one per settings field (``--db.url``), plus the configuration options of
:mod:`cordio.config.options`; ``cordio run TARGET --help`` lists them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from cordio._version import __version__

if TYPE_CHECKING:
    from cordio.app import App

DYNAMIC = {"ignore_unknown_options": True, "allow_extra_args": True}


@click.group()
@click.version_option(__version__, prog_name="cordio")
def main() -> None:
    """cordio: run and inspect cordio services."""


def _load(target: str) -> App:
    from cordio.app import App
    from cordio.loader import TargetError, load_target

    try:
        app = load_target(target)
    except TargetError as exc:
        raise click.UsageError(str(exc)) from None
    if not isinstance(app, App):
        raise click.UsageError(f"target {target!r} is {type(app).__name__}, not a cordio App")
    return app


def _dispatch(
    ctx: click.Context,
    target: str,
    args: tuple[str, ...],
    callback: Callable[..., Any],
    params: list[click.Parameter],
    *,
    field_options: bool = True,
) -> None:
    """Load the app, build the command with its settings options, parse ``args``, run."""
    if target in ("--help", "-h"):
        click.echo(ctx.get_help())
        ctx.exit(0)
    from cordio.config.options import COMMON_OPTIONS
    from cordio.config.options import field_options as options_for
    from cordio.errors import DependencyError
    from cordio.lifecycle import Runtime

    app = _load(target)
    try:
        sections = Runtime(app).settings_sections()
    except DependencyError as exc:
        raise click.ClickException(str(exc)) from None
    all_params = [*params, *COMMON_OPTIONS, *(options_for(sections) if field_options else [])]

    def run(**kwargs: Any) -> Any:
        return callback(app, sections, **kwargs)

    command = click.Command(
        ctx.info_name or "cordio", params=all_params, callback=run, help=ctx.command.help
    )
    with command.make_context(f"{ctx.command_path} {target}", list(args), parent=ctx) as sub:
        command.invoke(sub)


def _sources(app: App, kwargs: dict[str, Any]) -> Any:
    from cordio.config.options import sources_from_options

    return sources_from_options(app.config_sources(), kwargs)


@main.command(context_settings=DYNAMIC, add_help_option=False)
@click.argument("target")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def run(ctx: click.Context, target: str, args: tuple[str, ...]) -> None:
    """Run the app TARGET ('pkg.module:app' or 'path/to/file.py:app') until SIGTERM/SIGINT.

    Exit codes: 0 clean shutdown, 1 start-up failed, 2 bad command line, 3 shutdown not
    clean, 128+N forced by a second signal N. 'cordio run TARGET --help' lists the
    settings options.
    """

    def go(app: App, sections: Any, **kwargs: Any) -> None:
        sys.exit(app.serve(sources=_sources(app, kwargs)))

    _dispatch(ctx, target, args, go, [])


@main.group()
def config() -> None:
    """Show, template and check an app's configuration."""


@config.command(context_settings=DYNAMIC, add_help_option=False)
@click.argument("target")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def show(ctx: click.Context, target: str, args: tuple[str, ...]) -> None:
    """Print every effective value of the app TARGET beside its source (secrets masked).

    A required value no source sets is shown as missing, explained on stderr; so is a policy
    or part the app does not declare; the exit code is then 1, as start-up would fail.
    """

    def go(app: App, sections: Any, *, fmt: Any, section: str | None, **kwargs: Any) -> None:
        from cordio.config.commands import show_config
        from cordio.config.loader import load_config
        from cordio.errors import ConfigError
        from cordio.observe.logging import LogSettings
        from cordio.observe.masking import Masker

        chain = _sources(app, kwargs)
        try:
            loaded = load_config(sections, chain, allow_missing=True)
        except ConfigError as exc:
            raise click.ClickException(str(exc)) from None
        masker = Masker(loaded.get(LogSettings).mask_patterns)
        try:
            click.echo(show_config(loaded, fmt=fmt, section=section, masker=masker), nl=False)
        except KeyError as exc:
            raise click.BadParameter(str(exc.args[0]), param_hint="--section") from None
        refused = False
        for name, values in loaded.sections.items():
            unknown = getattr(values, "unknown", None)  # policies the app does not declare
            for path, message in unknown() if callable(unknown) else []:
                key = ".".join((name, *path))
                click.echo(f"error: {key}: {message} ({loaded.source_of(key)})", err=True)
                refused = True
        if refused and not loaded.missing:
            sys.exit(1)
        if loaded.missing:
            try:  # every place that could set them, as a start-up would say
                load_config(sections, chain)
            except ConfigError as exc:
                for line in exc.problems:
                    click.echo(f"missing: {line}", err=True)
            sys.exit(1)

    params: list[click.Parameter] = [
        click.Option(
            ["--format", "fmt"],
            type=click.Choice(["table", "json", "yaml"]),
            default="table",
            show_default=True,
        ),
        click.Option(["--section"], help="Only this section."),
    ]
    _dispatch(ctx, target, args, go, params)


@config.command(context_settings=DYNAMIC, add_help_option=False)
@click.argument("target")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def template(ctx: click.Context, target: str, args: tuple[str, ...]) -> None:
    """Write a config template of every section and key of the app TARGET."""

    def go(
        app: App,
        sections: Any,
        *,
        fmt: Any,
        placeholders: Any,
        required_only: bool,
        output: Path | None,
        **kwargs: Any,
    ) -> None:
        from cordio.config.template import render_template

        text = render_template(
            sections,
            fmt=fmt,
            placeholders=placeholders,
            required_only=required_only,
        )
        if output is None:
            click.echo(text, nl=False)
        else:
            output.write_text(text)

    params: list[click.Parameter] = [
        click.Option(
            ["--format", "fmt"],
            type=click.Choice(["toml", "yaml", "json", "ini"]),
            default="toml",
            show_default=True,
        ),
        click.Option(
            ["--placeholders"],
            type=click.Choice(["empty", "quoted", "example", "template"]),
            default="example",
            show_default=True,
        ),
        click.Option(["--required-only"], is_flag=True, help="Only keys without a default."),
        click.Option(
            ["--output", "-o"],
            type=click.Path(dir_okay=False, path_type=Path),
            help="Write here instead of standard output.",
        ),
    ]
    _dispatch(ctx, target, args, go, params, field_options=False)


@config.command(context_settings=DYNAMIC, add_help_option=False)
@click.argument("target")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def check(ctx: click.Context, target: str, args: tuple[str, ...]) -> None:
    """Validate every config file the app TARGET would read (or the FILES given).

    Prints every error with file, line and key; exits 1 if there is any.
    """

    def go(app: App, sections: Any, *, files: tuple[Path, ...], **kwargs: Any) -> None:
        from cordio.config.commands import check_files

        errors, warnings = check_files(sections, _sources(app, kwargs), files)
        for line in warnings:
            click.echo(f"warning: {line}", err=True)
        for line in errors:
            click.echo(f"error: {line}", err=True)
        if errors:
            click.echo(f"{len(errors)} error(s)", err=True)
            sys.exit(1)
        click.echo("configuration files are valid")

    params: list[click.Parameter] = [
        click.Argument(["files"], nargs=-1, type=click.Path(dir_okay=False, path_type=Path)),
    ]
    _dispatch(ctx, target, args, go, params, field_options=False)


_OUTPUT = click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write here instead of standard output.",
)


@main.group()
def docs() -> None:
    """Write an app's API documents."""


@docs.command()
@click.argument("target")
@_OUTPUT
def asyncapi(target: str, output: Path | None) -> None:
    """Write the AsyncAPI 3.0 document of the app TARGET's message handlers."""
    _write_document(_load(target).messaging.asyncapi(), output)


@docs.command()
@click.argument("target")
@_OUTPUT
def openapi(target: str, output: Path | None) -> None:
    """Write the OpenAPI 3.1 document of the app TARGET's HTTP handlers (what it serves at
    /openapi.json), without starting it."""
    _write_document(_load(target).http.openapi(), output)


def _write_document(document: dict[str, Any], output: Path | None) -> None:
    import json

    text = json.dumps(document, indent=2) + "\n"
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text)


@main.group()
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
                loaded = load_config(sections, _sources(app, kwargs))
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
        _dispatch(ctx, target, args, go, [source, *params])


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


if __name__ == "__main__":  # pragma: no cover
    main()
