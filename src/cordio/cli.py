"""The ``cordio`` command."""

from __future__ import annotations

import sys

import click

from cordio._version import __version__


@click.group()
@click.version_option(__version__, prog_name="cordio")
def main() -> None:
    """cordio: run and inspect cordio services."""


@main.command()
@click.argument("target")
def run(target: str) -> None:
    """Run the app TARGET ('pkg.module:app' or 'path/to/file.py:app') until SIGTERM/SIGINT.

    Exit codes: 0 clean shutdown, 1 start-up failed, 3 shutdown not clean, 128+N forced by
    a second signal N.
    """
    from cordio.app import App
    from cordio.loader import TargetError, load_target

    try:
        app = load_target(target)
    except TargetError as exc:
        raise click.UsageError(str(exc)) from None
    if not isinstance(app, App):
        raise click.UsageError(f"target {target!r} is {type(app).__name__}, not a cordio App")
    sys.exit(app.serve())


if __name__ == "__main__":  # pragma: no cover
    main()
