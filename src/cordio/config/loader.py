"""Merge configuration layers and validate them into settings sections."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import SecretBytes, SecretStr, ValidationError

from cordio.config.sources import Layer, Source
from cordio.errors import ConfigError
from cordio.settings import Settings

log = logging.getLogger("cordio.config")

S = TypeVar("S", bound=Settings)


@dataclass
class Config:
    """The effective configuration of an app: validated sections and where values came from.

    Attributes:
        sections: section name → validated, frozen :class:`Settings` instance.
        origins: dotted key (``"db.url"``) → source of the value (``default``,
            ``file:PATH``, ``env:NAME``).
    """

    sections: dict[str, Settings] = field(default_factory=dict)
    origins: dict[str, str] = field(default_factory=dict)

    def get(self, cls: type[S]) -> S:
        """Return the loaded section of type ``cls``.

        Raises:
            KeyError: the section was not loaded (it is not used by the app).
        """
        section = self.sections[cls.__section__]
        assert isinstance(section, cls)
        return section

    def explain(self, key: str) -> str:
        """Return where the value of a dotted key (``"db.url"``) came from.

        Returns ``"default"`` for a value nobody set.

        Raises:
            KeyError: no loaded section has this key.
        """
        if key in self.origins:
            return self.origins[key]
        section, _, name = key.partition(".")
        model = self.sections.get(section)
        if model is None or name.split(".")[0] not in type(model).model_fields:
            raise KeyError(key)
        return "default"

    def items(self) -> list[tuple[str, str, str]]:
        """Return ``(dotted key, value as text, source)`` for every field; secrets masked."""
        rows = []
        for name, section in sorted(self.sections.items()):
            for key in type(section).model_fields:
                value = getattr(section, key)
                text = "**********" if isinstance(value, SecretStr | SecretBytes) else repr(value)
                dotted = f"{name}.{key}"
                rows.append((dotted, text, self.origins.get(dotted, "default")))
        return rows


def _merge(into: dict[str, Any], new: Mapping[str, Any]) -> None:
    for key, value in new.items():
        old = into.get(key)
        if isinstance(old, dict) and isinstance(value, Mapping):
            _merge(old, value)
        else:
            into[key] = dict(value) if isinstance(value, Mapping) else value


def _origin_of(loc: Sequence[int | str], section: str, origins: Mapping[str, str]) -> str:
    """Find the most specific origin for a pydantic error location."""
    parts = [section, *(str(p) for p in loc)]
    while len(parts) > 1:
        found = origins.get(".".join(parts))
        if found:
            return found
        parts.pop()
    return "default"


def load_config(
    sections: Iterable[type[Settings]], sources: Sequence[Source], *, unknown: str = "warn"
) -> Config:
    """Read every source, merge the layers in order and validate each section.

    Args:
        sections: the section classes the app uses.
        sources: configuration sources, lowest priority first.
        unknown: what to do with a key no section declares: ``"warn"`` (default, logs a
            warning naming the key and its source), ``"ignore"`` or ``"stop"``.

    Returns:
        The validated :class:`Config`.

    Raises:
        ConfigError: listing every problem: unreadable files, invalid values (each with
            the dotted key, what was expected and the value's source; values are never
            echoed, so a wrong secret does not reach the logs).
    """
    by_name = {cls.__section__: cls for cls in sections}
    merged: dict[str, Any] = {}
    origins: dict[str, str] = {}
    problems: list[str] = []
    for source in sources:
        try:
            layers: list[Layer] = source.read()
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        for layer in layers:
            _merge(merged, layer.values)
            origins.update(layer.origins)

    strays = []
    for name, values in merged.items():
        cls = by_name.get(name)
        if cls is None:
            strays.append(name)
        elif isinstance(values, dict):
            strays.extend(f"{name}.{k}" for k in values if k not in cls.model_fields)
        else:
            problems.append(f"{name}: expected a table of keys, got a value ({origins[name]})")
    for key in strays:
        origin = next((o for k, o in origins.items() if k == key or k.startswith(key + ".")), "?")
        message = f"{key}: unknown key ({origin})"
        if unknown == "stop":
            problems.append(message)
        elif unknown == "warn":
            log.warning("config %s; no section declares it", message)

    config = Config(origins=origins)
    for name, cls in by_name.items():
        data = merged.get(name, {})
        if not isinstance(data, dict):
            continue
        try:
            config.sections[name] = cls.model_validate(data)
        except ValidationError as exc:
            for err in exc.errors(include_input=False, include_url=False):
                loc = err["loc"]
                key = ".".join([name, *(str(p) for p in loc)])
                problems.append(f"{key}: {err['msg']} ({_origin_of(loc, name, origins)})")
    if problems:
        raise ConfigError(problems)
    return config
