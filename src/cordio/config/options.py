"""Command-line options for settings: one per field, plus the configuration options.

For every field of every section the app uses, ``--section.field VALUE`` (booleans as
``--section.flag/--no-section.flag``); and for all commands that load configuration:

- ``--set section.key=value`` (repeatable; nested keys with more dots),
- ``--config PATH`` (repeatable; an overlay above the discovered files),
- ``--profile NAME`` (repeatable; the profile's files as overlays),
- ``--env-file PATH`` (instead of ``./.env``),
- ``--on-duplicate stop|last``, ``--on-parse-error stop|skip``,
  ``--on-unknown warn|stop|ignore`` (the :class:`~cordio.config.ConfigPolicy`).

Values are passed as text (JSON for list and mapping fields) and validated by the
section's model like every other source, so errors read the same.
"""

from __future__ import annotations

import json
import typing
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import click

from cordio.config.loader import ConfigSources
from cordio.config.sources import CliSource, ConfigPolicy
from cordio.settings import Settings

F = Callable[..., Any]


def _is_bool(annotation: Any) -> bool:
    if annotation is bool:
        return True
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    return typing.get_origin(annotation) in (typing.Union, __import__("types").UnionType) and (
        args == [bool]
    )


def _param(section: str, field: str) -> str:
    return f"cfg__{section}__{field}"


def field_options(sections: Iterable[type[Settings]]) -> list[click.Option]:
    """One click option per field of each section (``--db.url``, ``--db.flag/--no-db.flag``)."""
    options = []
    for cls in sorted(sections, key=lambda c: c.__section__):
        section = cls.__section__
        for name, info in cls.model_fields.items():
            flag = f"--{section}.{name}"
            help_text = (info.description or "").strip()
            if _is_bool(info.annotation):
                options.append(
                    click.Option(
                        [f"{flag}/--no-{section}.{name}", _param(section, name)],
                        default=None,
                        help=help_text,
                    )
                )
            else:
                options.append(
                    click.Option(
                        [flag, _param(section, name)],
                        default=None,
                        metavar="VALUE",
                        help=help_text,
                    )
                )
    return options


COMMON_OPTIONS = [
    click.Option(
        ["--set", "cfg_set"],
        multiple=True,
        metavar="KEY=VALUE",
        help="Set any key, e.g. --set db.url=postgresql://... (repeatable).",
    ),
    click.Option(
        ["--config", "cfg_files"],
        multiple=True,
        type=click.Path(dir_okay=False, path_type=Path),
        help="An overlay config file: overrides the discovered files key by key"
        " (repeatable; later ones win).",
    ),
    click.Option(
        ["--profile", "cfg_profiles"],
        multiple=True,
        metavar="NAME",
        help="Read the profile's files (config/main.NAME.toml, etc/db.NAME.toml...) as"
        " overlays (repeatable, or comma-separated).",
    ),
    click.Option(
        ["--env-file", "cfg_env_file"],
        type=click.Path(dir_okay=False, path_type=Path),
        help="Read variables from this file instead of ./.env.",
    ),
    click.Option(
        ["--on-duplicate", "cfg_duplicate"],
        type=click.Choice(["stop", "last"]),
        help="A key set by two files: stop (default) or let the last win.",
    ),
    click.Option(
        ["--on-parse-error", "cfg_parse_error"],
        type=click.Choice(["stop", "skip"]),
        help="A file that does not parse: stop (default) or skip it.",
    ),
    click.Option(
        ["--on-unknown", "cfg_unknown"],
        type=click.Choice(["warn", "stop", "ignore"]),
        help="A key no section declares: warn (default), stop or ignore.",
    ),
]


def _cli_value(raw: str) -> Any:
    if raw[:1] in "[{":
        try:
            return json.loads(raw)
        except ValueError:
            return raw
    return raw


def sources_from_options(base: ConfigSources, params: dict[str, Any]) -> ConfigSources:
    """Build the configuration sources a command runs with from its parsed options.

    Consumes (pops) every configuration parameter from ``params``.

    Raises:
        click.BadParameter: a ``--set`` without ``=`` or without a dotted key.
    """
    values: list[tuple[tuple[str, ...], Any, str]] = []
    for key in sorted(k for k in params if k.startswith("cfg__")):
        value = params.pop(key)
        if value is None:
            continue
        _, section, field = key.split("__", 2)
        flag = f"--{section}.{field}" if value is not False else f"--no-{section}.{field}"
        values.append(
            ((section, field), _cli_value(value) if isinstance(value, str) else value, flag)
        )
    for item in params.pop("cfg_set", ()):
        key, sep, raw = item.partition("=")
        path = tuple(p.strip() for p in key.split("."))
        if not sep or len(path) < 2 or not all(path):
            raise click.BadParameter(f"{item!r}: expected section.key=value", param_hint="--set")
        values.append((path, _cli_value(raw), f"--set {key.strip()}"))
    old = base.policy
    policy = ConfigPolicy(
        duplicate=params.pop("cfg_duplicate", None) or old.duplicate,
        parse_error=params.pop("cfg_parse_error", None) or old.parse_error,
        unknown=params.pop("cfg_unknown", None) or old.unknown,
    )
    return base.with_command_line(
        CliSource(values),
        config_files=list(params.pop("cfg_files", ())),
        profiles=[
            p.strip() for v in params.pop("cfg_profiles", ()) for p in v.split(",") if p.strip()
        ],
        env_file=params.pop("cfg_env_file", None),
        policy=policy,
    )
