"""The ``cordio`` command.

``cordio run TARGET [OPTIONS]``, ``cordio config show|template|check TARGET [OPTIONS]``,
``cordio docs openapi|asyncapi TARGET``, and the commands of each installed transport
(``cordio messaging dead-letters list|show|replay|purge TARGET SOURCE [OPTIONS]``).
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


def dispatch(
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
    from cordio.plan import build_plan

    app = _load(target)
    try:
        sections = list(build_plan(app).sections.values())
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


def sources(app: App, kwargs: dict[str, Any]) -> Any:
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
        sys.exit(app.serve(sources=sources(app, kwargs)))

    dispatch(ctx, target, args, go, [])


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
        from cordio.observe.masking import masker_for

        chain = sources(app, kwargs)
        try:
            loaded = load_config(sections, chain, allow_missing=True)
        except ConfigError as exc:
            raise click.ClickException(str(exc)) from None
        masker = masker_for(loaded)
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
    dispatch(ctx, target, args, go, params)


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
    dispatch(ctx, target, args, go, params, field_options=False)


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

        errors, warnings = check_files(sections, sources(app, kwargs), files)
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
    dispatch(ctx, target, args, go, params, field_options=False)


_OUTPUT = click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write here instead of standard output.",
)


@main.group()
def docs() -> None:
    """Write an app's API documents."""


def _write_document(document: dict[str, Any], output: Path | None) -> None:
    import json

    text = json.dumps(document, indent=2) + "\n"
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text)


def _add_transport_commands() -> None:
    """Add each installed transport's command group (``cordio messaging ...``) and a
    ``cordio docs NAME`` command for each document a transport publishes."""
    from cordio.transport import installed

    for name, entry in sorted(installed().items()):
        try:
            cls = entry.load()
        except ImportError:  # its extra is not installed: its commands are not offered
            continue
        group = cls.commands()
        if group is not None:
            main.add_command(group, name)
        for document in getattr(cls, "documents_published", ()):
            if document not in docs.commands:
                docs.add_command(_docs_command(document, name))


def _docs_command(document: str, transport: str) -> click.Command:
    @click.command(
        document,
        help=f"Write the {document} document of the app TARGET ({transport} handlers),"
        " as the running app serves it at /" + document + ".json, without starting it.",
    )
    @click.argument("target")
    @_OUTPUT
    def write(target: str, output: Path | None) -> None:
        from cordio.errors import DependencyError
        from cordio.plan import build_plan

        app = _load(target)
        try:
            plan = build_plan(app)
        except DependencyError as exc:
            raise click.ClickException(str(exc)) from None
        found: dict[str, Any] = {}
        for each in plan.transports:
            found.update(each.documents(plan))
        if document not in found:
            raise click.ClickException(f"app {app.name!r} has no {transport} handlers")
        _write_document(found[document](), output)

    return write


_add_transport_commands()
