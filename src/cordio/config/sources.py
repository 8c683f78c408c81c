"""Configuration sources: each reads one place into a :class:`Layer` of nested values.

A layer maps dotted keys to values and remembers, per key, where the value came from
(``file:config/main.toml``, ``env:ORDERS__DB__URL``). The loader merges layers in order.
"""

from __future__ import annotations

import glob
import json
import os
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from cordio.errors import ConfigError

#: Files larger than this are refused, so a stray log file matching a glob cannot hang start-up.
MAX_FILE_BYTES = 1 << 20


@dataclass
class Layer:
    """Values read from one source.

    Attributes:
        name: the source, for messages (``"file:config/main.toml"``, ``"env"``).
        values: nested mapping ``{section: {key: value}}``.
        origins: dotted key (``"db.url"``) → where its value came from.
    """

    name: str
    values: dict[str, Any] = field(default_factory=dict)
    origins: dict[str, str] = field(default_factory=dict)

    def set(self, path: tuple[str, ...], value: Any, origin: str) -> None:
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
    """Anything that can read configuration into a :class:`Layer`."""

    def read(self) -> list[Layer]:
        """Return the layers this source found, lowest priority first.

        Raises:
            ConfigError: a file could not be read or parsed (names the file).
        """


def _flatten(values: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for key, value in values.items():
        path = (*prefix, str(key))
        if isinstance(value, Mapping) and value:
            yield from _flatten(value, path)
        else:
            yield path


@dataclass
class FileSource:
    """TOML config files found by glob patterns, taken in alphabetical order of base names.

    Args:
        patterns: glob patterns, relative to ``root`` unless absolute; ``**`` recurses.
            Default ``config/**/main.toml``.
        root: directory relative patterns start from; default the current directory.
        max_bytes: a file larger than this is refused (default 1 MiB).
    """

    patterns: tuple[str, ...] = ("config/**/main.toml",)
    root: Path | None = None
    max_bytes: int = MAX_FILE_BYTES

    def paths(self) -> list[Path]:
        """Return the files the patterns match, sorted by base name then full path."""
        root = self.root or Path.cwd()
        found: set[Path] = set()
        for pattern in self.patterns:
            full = pattern if os.path.isabs(pattern) else str(root / pattern)
            found.update(Path(p) for p in glob.glob(full, recursive=True))
        return sorted(found, key=lambda p: (p.name, str(p)))

    def read(self) -> list[Layer]:
        layers = []
        for path in self.paths():
            values = self._parse(path)
            layer = Layer(f"file:{path}")
            for key in _flatten(values):
                node: Any = values
                for part in key:
                    node = node[part]
                layer.set(key, node, f"file:{path}")
            layers.append(layer)
        return layers

    def _parse(self, path: Path) -> dict[str, Any]:
        if path.is_dir():
            raise ConfigError([f"{path}: is a directory, not a config file"])
        try:
            size = path.stat().st_size
            if size > self.max_bytes:
                raise ConfigError([f"{path}: {size} bytes is over the limit of {self.max_bytes}"])
            raw = path.read_bytes()
        except OSError as exc:
            raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from None
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ConfigError([f"{path}: not UTF-8 at byte {exc.start}"]) from None
        if "\x00" in text:
            raise ConfigError([f"{path}: contains NUL bytes"])
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError([f"{path}: invalid TOML: {exc}"]) from None


@dataclass
class EnvSource:
    """Environment variables ``<PREFIX>__<SECTION>__<KEY>`` (nested further by ``__``).

    Names are matched case-insensitively; keys are lower-cased. A value that starts with
    ``[`` or ``{`` is parsed as JSON (for list and mapping fields), other values are passed
    as strings and coerced by the section's model.

    Args:
        prefix: usually the app name (``orders`` → ``ORDERS__DB__URL``).
        environ: the mapping to read; default :data:`os.environ`.
    """

    prefix: str
    environ: Mapping[str, str] | None = None

    def read(self) -> list[Layer]:
        environ = os.environ if self.environ is None else self.environ
        head = env_prefix(self.prefix)
        layer = Layer("env")
        problems = []
        for name in sorted(environ):
            if not name.upper().startswith(head):
                continue
            parts = tuple(p.lower() for p in name[len(head) :].split("__"))
            if len(parts) < 2 or not all(parts):
                problems.append(f"env:{name}: expected {head}<SECTION>__<KEY>")
                continue
            raw = environ[name]
            value: Any = raw
            if raw[:1] in "[{":
                try:
                    value = json.loads(raw)
                except ValueError as exc:
                    problems.append(f"env:{name}: invalid JSON: {exc}")
                    continue
            layer.set(parts, value, f"env:{name}")
        if problems:
            raise ConfigError(problems)
        return [layer]


def env_prefix(app_name: str) -> str:
    """Return the environment variable prefix for an app name (``orders`` → ``ORDERS__``)."""
    cleaned = "".join(ch if ch.isalnum() else "_" for ch in app_name).upper()
    return f"{cleaned}__"
