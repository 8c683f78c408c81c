"""Configuration sources: each reads one place into :class:`Layer` objects.

A layer maps key paths to values and remembers, per dotted key, where the value came from:
``file:PATH:LINE``, ``env:NAME``, ``.env:PATH:LINE``, ``cli:--db.url``. The loader merges
layers in source order, lowest priority first (see :class:`ConfigSources`).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from cordio.errors import ConfigError

log = logging.getLogger("cordio.config")

LayerKind = Literal["file", "overlay", "env", ".env", "cli"]


@dataclass(frozen=True)
class ConfigPolicy:
    """What to do about ambiguous or broken configuration (defaults as the spec gives them).

    Attributes:
        duplicate: a key set by two discovered files (overlays override on purpose):
            ``"stop"`` (default; start-up fails naming both places) or ``"last"`` (the
            later file wins, with a warning naming both).
        parse_error: a file no format parses: ``"stop"`` (default) or ``"skip"`` (the file
            is left out, with a warning).
        unknown: a key no section declares: ``"warn"`` (default), ``"stop"`` or
            ``"ignore"``.
    """

    duplicate: Literal["stop", "last"] = "stop"
    parse_error: Literal["stop", "skip"] = "stop"
    unknown: Literal["warn", "stop", "ignore"] = "warn"


@dataclass
class Layer:
    """Values read from one place.

    Attributes:
        name: the place, for messages (``"file:config/main.toml"``, ``"env"``).
        kind: ``file`` (a discovered file), ``overlay`` (a profile file or one named with
            ``--config``), ``env``, ``.env`` or ``cli``; duplicates are only looked for
            between discovered files.
        values: nested mapping ``{section: {key: value}}``.
        origins: dotted key (``"db.url"``) → where its value came from.
    """

    name: str
    kind: LayerKind = "file"
    values: dict[str, Any] = field(default_factory=dict)
    origins: dict[str, str] = field(default_factory=dict)

    def set(self, path: Sequence[str], value: Any, origin: str) -> None:
        """Store ``value`` at ``path`` (``("db", "url")``), remembering ``origin``."""
        node = self.values
        for part in path[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[path[-1]] = value
        self.origins[".".join(path)] = origin


class Source(Protocol):
    """Anything that can read configuration into layers."""

    def read(self, sections: Collection[str], policy: ConfigPolicy) -> list[Layer]:
        """Return the layers found, lowest priority first.

        Args:
            sections: names of the sections the app uses (files named after a section
                hold that section alone).
            policy: what to do about files that do not parse.

        Raises:
            ConfigError: listing every problem, each naming the place.
        """
        ...


#: ``<APP>__PROFILE`` and ``<APP>__CONFIG`` name profiles and overlay files, not settings.
OWN_VARIABLES = ("PROFILE", "CONFIG")


def env_prefix(app_name: str) -> str:
    """Return the environment variable prefix for an app name (``orders`` → ``ORDERS__``)."""
    cleaned = "".join(ch if ch.isalnum() else "_" for ch in app_name).upper()
    return f"{cleaned}__"


def _env_entry(
    name: str, raw: str, head: str, origin: str, layer: Layer, problems: list[str]
) -> None:
    if name[len(head) :].upper() in OWN_VARIABLES:
        if not origin.startswith("env:"):
            problems.append(
                f"{origin}: {name} is read from the environment only; set it there, or use"
                " --profile / --config"
            )
        return  # read by the file source: profiles and overlay files
    parts = tuple(p.lower() for p in name[len(head) :].split("__"))
    if len(parts) < 2 or not all(parts):
        problems.append(f"{origin}: expected {head}<SECTION>__<KEY>")
        return
    value: Any = raw
    if raw[:1] in "[{":
        try:
            value = json.loads(raw)
        except ValueError as exc:
            problems.append(f"{origin}: invalid JSON: {exc}")
            return
    layer.set(parts, value, origin)


@dataclass
class EnvSource:
    """Environment variables ``<PREFIX>__<SECTION>__<KEY>`` (nested further by ``__``).

    Names are matched case-insensitively; keys are lower-cased. A value that starts with
    ``[`` or ``{`` is parsed as JSON (for list and mapping fields); other values are strings
    coerced by the section's model.

    Args:
        prefix: usually the app name (``orders`` → ``ORDERS__DB__URL``).
        environ: the mapping to read; default :data:`os.environ`.
    """

    prefix: str
    environ: Mapping[str, str] | None = None

    def read(
        self, sections: Collection[str] = (), policy: ConfigPolicy | None = None
    ) -> list[Layer]:
        environ = os.environ if self.environ is None else self.environ
        head = env_prefix(self.prefix)
        layer = Layer("env", "env")
        problems: list[str] = []
        for name in sorted(environ):
            if name.upper().startswith(head):
                _env_entry(name, environ[name], head, f"env:{name}", layer, problems)
        if problems:
            raise ConfigError(problems)
        return [layer]


@dataclass
class DotEnvSource:
    """Variables ``<PREFIX>__<SECTION>__<KEY>`` from a ``.env`` file (python-dotenv syntax).

    Args:
        prefix: usually the app name.
        path: the file; default ``.env`` in the current directory. A missing file is no
            error; an unreadable or malformed one is, naming the line.
        max_bytes: a larger file is refused (default 1 MiB).
    """

    prefix: str
    path: Path | str = ".env"
    max_bytes: int = 1 << 20

    def read(
        self, sections: Collection[str] = (), policy: ConfigPolicy | None = None
    ) -> list[Layer]:
        from dotenv.parser import parse_stream

        path = Path(self.path).absolute()
        if not path.exists():
            return []
        from cordio.config.files import read_text

        text = read_text(path, self.max_bytes)
        head = env_prefix(self.prefix)
        layer = Layer(f".env:{path}", ".env")
        problems: list[str] = []
        import io

        for binding in parse_stream(io.StringIO(text)):
            origin = f".env:{path}:{binding.original.line}"
            if binding.error:
                problems.append(f"{origin}: cannot parse this line")
                continue
            if binding.key is None or binding.value is None:
                continue
            if binding.key.upper().startswith(head):
                _env_entry(binding.key, binding.value, head, origin, layer, problems)
        if problems:
            raise ConfigError(problems)
        return [layer]


@dataclass
class CliSource:
    """Values given on the command line.

    Args:
        values: ``(key path, value, option)`` triples, e.g.
            ``(("db", "url"), "postgresql://...", "--db.url")``.
    """

    values: list[tuple[tuple[str, ...], Any, str]] = field(default_factory=list)

    def read(
        self, sections: Collection[str] = (), policy: ConfigPolicy | None = None
    ) -> list[Layer]:
        layer = Layer("cli", "cli")
        for path, value, option in self.values:
            layer.set(path, value, f"cli:{option}")
        return [layer] if self.values else []
